//! Benchmark of executing one remediation action, against a real release `parapet serve` on a fresh
//! database. Run it with `cargo bench --bench actions`.
//!
//! Each run ingests 10,000 copies of one campaign through `ingestEmails` (batches of 2,000, one sender
//! of its own, one copy per recipient, in the inbox, received over the last 2 days), proposes a
//! `SOFT_DELETE` over them by Explorer filter as an analyst (the four-eyes rule is on), approves it as
//! a responder, and measures from the approval's request to the first poll (every 20 ms) that sees the
//! action `COMPLETED`; the figure includes the job runner's pick-up (it polls its queue every 500 ms
//! when idle). The server's own times (approval to completion, start to completion) are given beside it,
//! and the CPU the server and PostgreSQL used. Each run must end with every copy moved. The report
//! gives every run and the median.
//!
//! Settings (environment): `DATABASE_URL` (a PostgreSQL server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database is made on it and dropped after),
//! `BENCH_COPIES` (copies per action, default 10,000), `BENCH_RUNS` (default 3), `BENCH_BACKGROUND`
//! (other tenants' copies ingested first from `benches/support/mail.rs`, so the mail store is not only
//! the campaign; default 0), `BENCH_SAMPLE=1` (sample `pg_stat_activity` during each execution, every
//! `BENCH_SAMPLE_MS`, default 50), `BENCH_PERF=FILE` (record the server and PostgreSQL with
//! `perf record -g` during the last execution), `BENCH_KEEP_DB=1`, `BENCH_SERVER_BIN` (another
//! `parapet` binary to measure).

use chrono::{DateTime, Utc};
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod support;
use support::mail::MailGen;
use support::*;

const TENANT: &str = "bench-actions";
const BATCH: usize = 2000;
const INGEST: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected } }";
const REMEDIATE: &str =
    "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id status targetCount } }";
const APPROVE: &str = "mutation($id: ID!) { approveAction(id: $id) { status } }";
const POLL: &str = "query($id: ID!) { action(id: $id) { status successCount } }";
const DONE: &str = "query($id: ID!) { action(id: $id) { status targetCount successCount failedCount \
    alreadyInDestinationCount notFoundCount openTargetCount decidedAt startedAt completedAt } }";

fn main() -> AnyResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = Database::create().await?;
        let result = bench(&db).await;
        if std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
            println!("kept database {} (BENCH_KEEP_DB=1)", db.name);
        } else {
            db.drop_it().await;
        }
        result
    })
}

/// A token for `sub` in the bench's tenant with `role`.
fn token_for(secret: &str, sub: &str, role: Role) -> AnyResult<String> {
    Ok(parapet::auth::mint_hs256(
        &parapet::auth::TokenSpec {
            tenant: TENANT.into(),
            sub: sub.into(),
            name: None,
            roles: vec![role],
            svc: None,
            ttl_secs: 4 * 3600,
        },
        secret.as_bytes(),
        "parapet",
        "parapet",
    )?)
}

/// The campaign of run `run`: `n` copies from its own sender, one per recipient, in the inbox.
fn campaign(run: usize, n: usize) -> Vec<Value> {
    let now = Utc::now();
    let sender = sender(run);
    (0..n)
        .map(|i| {
            // Ten recipients per message, as a campaign sends.
            json!({
                "networkMessageId": format!("bench-action-{run}-{}", i / 10),
                "recipient": format!("user{i}@contoso.example"),
                "envelopeSender": sender,
                "headerFrom": sender,
                "senderIp": "203.0.113.7",
                "subject": format!("Action required: your mailbox {run} is full"),
                "receivedAt": (now - chrono::Duration::seconds((i as i64 * 172_800) / n as i64 + 60)).to_rfc3339(),
                "urls": [format!("https://login.phish-{run}.example/verify?u={i}")],
                "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX",
                "threatTypes": ["PHISH"],
            })
        })
        .collect()
}

fn sender(run: usize) -> String {
    format!("it-support@phish-{run}.example")
}

/// Sends `records` in batches of 2,000, two at a time.
async fn ingest(http: &reqwest::Client, server: &Server, token: &str, records: Vec<Value>) -> AnyResult<()> {
    let bodies: Vec<(Vec<u8>, usize)> = records
        .chunks(BATCH)
        .map(|c| Ok((serde_json::to_vec(&json!({ "query": INGEST, "variables": { "e": c } }))?, c.len())))
        .collect::<AnyResult<_>>()?;
    for pair in bodies.chunks(2) {
        let sends = pair.iter().map(|(b, n)| send_mail_batch(http, server.addr, token, b.clone(), *n));
        for r in futures::future::join_all(sends).await {
            r?;
        }
    }
    Ok(())
}

struct Measure {
    wall: f64,
    server_decided: f64,
    server_started: f64,
    cpu_server: f64,
    cpu_pg: f64,
}

fn at(v: &Value) -> AnyResult<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(v.as_str().ok_or("a timestamp")?)?.with_timezone(&Utc))
}

/// One run: ingest, propose, approve, and time the execution.
async fn run(
    http: &reqwest::Client,
    server: &Server,
    db: &Database,
    secret: &str,
    run: usize,
    copies: usize,
    perf_file: Option<&str>,
) -> AnyResult<Measure> {
    let gw = token_for(secret, "gateway@bench.example", Role::Ingestor)?;
    let analyst = token_for(secret, "analyst@bench.example", Role::Analyst)?;
    let responder = token_for(secret, "responder@bench.example", Role::Responder)?;
    let t = Instant::now();
    ingest(http, server, &gw, campaign(run, copies)).await?;
    let ingested = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let input = json!({ "i": { "filter": { "sender": sender(run) }, "action": "SOFT_DELETE" } });
    let p = graphql(http, server.addr, &analyst, REMEDIATE, input).await?;
    let proposed = t.elapsed().as_secs_f64();
    let id = p["remediateEmails"]["id"].as_str().ok_or("an action id")?.to_string();
    if p["remediateEmails"]["status"] != "PENDING" || p["remediateEmails"]["targetCount"] != copies {
        return Err(format!("unexpected proposal: {p}").into());
    }
    let perf = match perf_file {
        Some(file) => Some(start_perf(server, file)?),
        None => None,
    };
    let sampler = if std::env::var("BENCH_SAMPLE").is_ok_and(|v| v == "1") {
        Some(Sampler::start(&db.url).await?)
    } else {
        None
    };
    let cpu_server = cpu_secs(server.child.id());
    let cpu_pg = postgres_cpu();
    let t = Instant::now();
    let ok = graphql(http, server.addr, &responder, APPROVE, json!({ "id": id })).await?;
    if ok["approveAction"]["status"] != "APPROVED" {
        return Err(format!("unexpected approval: {ok}").into());
    }
    let deadline = t + Duration::from_secs(600);
    loop {
        let a = graphql(http, server.addr, &responder, POLL, json!({ "id": id })).await?;
        match a["action"]["status"].as_str() {
            Some("COMPLETED") => break,
            Some("APPROVED" | "RUNNING") => {}
            other => return Err(format!("the action ended {other:?}: {a}").into()),
        }
        if Instant::now() > deadline {
            return Err(format!("not completed within 600 s: {a}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu_server = cpu_secs(server.child.id()) - cpu_server;
    let cpu_pg = postgres_cpu_since(&cpu_pg);
    let samples = match sampler {
        Some(s) => Some(s.stop().await),
        None => None,
    };
    if let Some(mut p) = perf {
        // SIGINT, so perf writes its file out.
        // SAFETY: kill has no memory-safety preconditions; the PID is our own child's.
        unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
        p.wait()?;
    }
    let d = graphql(http, server.addr, &responder, DONE, json!({ "id": id })).await?["action"].clone();
    let n = copies as i64;
    let sum: i64 = ["successCount", "failedCount", "alreadyInDestinationCount", "notFoundCount"]
        .iter()
        .map(|f| d[f].as_i64().unwrap_or(-1))
        .sum();
    if d["successCount"] != n || sum != n || d["openTargetCount"] != 0 {
        return Err(format!("the action did not move every copy once: {d}").into());
    }
    let completed = at(&d["completedAt"])?;
    let server_decided = (completed - at(&d["decidedAt"])?).as_seconds_f64();
    let server_started = (completed - at(&d["startedAt"])?).as_seconds_f64();
    println!(
        "  run {}: ingest {ingested:.1} s, propose {proposed:.2} s; approval to COMPLETED {wall:.2} s \
         ({:.0} copies/s); server: decided->completed {server_decided:.2} s, started->completed \
         {server_started:.2} s; CPU server {cpu_server:.2} s, PostgreSQL {cpu_pg:.2} s",
        run + 1,
        copies as f64 / wall
    );
    if let Some(s) = samples {
        print_samples(&s);
    }
    Ok(Measure { wall, server_decided, server_started, cpu_server, cpu_pg })
}

/// `perf record -g` of the server and every PostgreSQL process, until SIGINT.
fn start_perf(server: &Server, file: &str) -> AnyResult<std::process::Child> {
    let mut pids: Vec<String> = postgres_cpu().keys().map(u32::to_string).collect();
    pids.push(server.child.id().to_string());
    let child = std::process::Command::new("perf")
        .args(["record", "-F", "999", "-g", "-o", file, "-p", &pids.join(",")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // perf needs a moment to attach to every process.
    std::thread::sleep(Duration::from_millis(500));
    println!("  perf recording {} processes to {file} (perf pid {})", pids.len(), child.id());
    Ok(child)
}

async fn bench(db: &Database) -> AnyResult<()> {
    let copies = env_usize("BENCH_COPIES", 10_000).max(1);
    let runs = env_usize("BENCH_RUNS", 3).max(1);
    let background = env_usize("BENCH_BACKGROUND", 0);
    let perf_file = std::env::var("BENCH_PERF").ok().filter(|f| !f.is_empty());
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let server = start_server(&db.url, &secret).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(8).build()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("parapet remediation action benchmark: one SOFT_DELETE over {copies} copies, {runs} runs");
    println!("  machine: {cores} cores, load average {}", load_average());
    println!(
        "  server: release build, pid {}, http://{}, database {}",
        server.child.id(),
        server.addr,
        db.name
    );
    if background > 0 {
        let gw = token(&secret, "bench-actions-background", Role::Ingestor)?;
        let mut gen = MailGen::ordered(1, background, Utc::now(), 0);
        let t = Instant::now();
        let mut left = background;
        while left > 0 {
            let n = left.min(BATCH);
            ingest(&http, &server, &gw, gen.batch(n)).await?;
            left -= n;
        }
        println!("  {background} background copies (another tenant) in {:.1} s", t.elapsed().as_secs_f64());
    }
    let mut measures = vec![];
    for r in 0..runs {
        let perf = perf_file.as_deref().filter(|_| r + 1 == runs);
        measures.push(run(&http, &server, db, &secret, r, copies, perf).await?);
    }
    let median = |f: &dyn Fn(&Measure) -> f64| {
        let mut v: Vec<f64> = measures.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    let wall = median(&|m| m.wall);
    println!();
    println!(
        "one action over {copies} copies, approval to COMPLETED (polled every 20 ms), {runs} runs: {}",
        measures.iter().map(|m| format!("{:.2} s", m.wall)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  median {wall:.2} s ({:.0} copies/s); server decided->completed median {:.2} s, \
         started->completed {:.2} s; CPU per run: server {:.2} s, PostgreSQL {:.2} s (medians); \
         load average now {}",
        copies as f64 / wall,
        median(&|m| m.server_decided),
        median(&|m| m.server_started),
        median(&|m| m.cpu_server),
        median(&|m| m.cpu_pg),
        load_average()
    );
    Ok(())
}
