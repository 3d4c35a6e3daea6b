//! Benchmark of issue 12's speed target for remediation on a real mail server: "1,000 targets across
//! 100 mailboxes complete in at most 30 s on this machine". A release `parapet serve` on a fresh
//! database executes an approved `SOFT_DELETE` against a private Dovecot (`tests/common/dovecot.rs`:
//! IMAP without TLS on loopback, master-user logins, maildir). Run it with
//! `cargo bench --bench imap_actions`.
//!
//! Once: Dovecot starts with `BENCH_MAILBOXES` mailboxes (`user000@bench.test` …), the server starts
//! with a `PARAPET_SECRET_KEY` of its own, the tenant is pointed at Dovecot (`configureMailServer`) and
//! its four-eyes rule is turned off. Each run then seeds `BENCH_PER_MAILBOX` messages into every
//! mailbox's INBOX (Message-IDs unique to the run; one IMAP session per mailbox, APPENDs in a row,
//! `BENCH_SEED_CONCURRENCY` mailboxes at a time), ingests the matching mail-flow records (with their
//! `internetMessageId`, one sender per run, batches of 2,000), proposes a `SOFT_DELETE` over them by
//! Explorer filter (that sender, received in the last day) as a responder (approved at once), and
//! measures from the proposal's request to the first poll (every 20 ms) that sees the action
//! `COMPLETED`; the figure includes the job runner's pick-up (it polls its queue every 500 ms when
//! idle). The server's own startedAt->completedAt is given beside it, and the CPU the server and
//! PostgreSQL used. Each run is then checked with the harness's own IMAP sessions: no mailbox's INBOX
//! holds any of the run's messages and every `Recoverable Items` holds all of them; otherwise the bench
//! fails (non-zero exit). The report gives every run, the median and the target (<= 30 s).
//!
//! Settings (environment): `DATABASE_URL` (a PostgreSQL server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database is made on it and dropped after),
//! `BENCH_RUNS` (default 3), `BENCH_MAILBOXES` (default 100), `BENCH_PER_MAILBOX` (default 10),
//! `BENCH_SEED_CONCURRENCY` (mailboxes seeded and checked at a time, default 20), `BENCH_TARGET_SECS`
//! (default 30), `BENCH_KEEP_DB=1`, `BENCH_SERVER_BIN` (another `parapet` binary to measure). The
//! server inherits the environment, so its own settings (`PARAPET_JOB_WORKERS`,
//! `PARAPET_MAIL_TIMEOUT_SECS`, …) apply too. Needs Dovecot and root (the harness says why it cannot
//! run otherwise, and the bench exits non-zero).

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod support;
use support::*;

#[allow(dead_code)] // the bench uses part of the harness
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
use dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};

const TENANT: &str = "bench-imap";
const BATCH: usize = 2000;
const INGEST: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected } }";
const CONFIGURE: &str = "mutation($i: ConfigureMailServerInput!) { configureMailServer(input: $i) { host } }";
const FOUR_EYES_OFF: &str = "mutation { updateTenantSettings(input: { fourEyes: false }) { fourEyes } }";
const REMEDIATE: &str =
    "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id status targetCount } }";
const POLL: &str = "query($id: ID!) { action(id: $id) { status successCount } }";
const DONE: &str = "query($id: ID!) { action(id: $id) { status targetCount successCount failedCount \
    alreadyInDestinationCount notFoundCount openTargetCount error decidedAt startedAt completedAt } }";

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

/// The bench's settings.
struct Settings {
    runs: usize,
    mailboxes: usize,
    per_mailbox: usize,
    concurrency: usize,
    target: f64,
}

impl Settings {
    fn targets(&self) -> usize {
        self.mailboxes * self.per_mailbox
    }
}

fn user(m: usize) -> String {
    format!("user{m:03}@bench.test")
}

fn sender(run: usize) -> String {
    format!("it-support@phish-{run}.example")
}

/// The Message-ID (with its angle brackets) of message `i` of mailbox `m` in run `run`.
fn message_id(run: usize, m: usize, i: usize) -> String {
    format!("<bench-{run}-{m:03}-{i}@phish-{run}.example>")
}

/// Appends `n` messages of run `run` to mailbox `m`'s INBOX in one master-user IMAP session.
async fn seed_mailbox(dc: &Dovecot, run: usize, m: usize, n: usize) -> AnyResult<()> {
    let user = user(m);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dc.imap_port)).await?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?.ok_or("no IMAP greeting")?;
    let mut session = client
        .login(format!("{user}*{MASTER_USER}"), MASTER_PASSWORD)
        .await
        .map_err(|(e, _)| format!("IMAP master login to {user}: {e}"))?;
    let date = Utc::now().to_rfc2822();
    let from = sender(run);
    for i in 0..n {
        let message = format!(
            "Message-ID: {}\r\nDate: {date}\r\nFrom: {from}\r\nTo: {user}\r\n\
             Subject: Action required: your mailbox is full ({run}/{i})\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nVerify your account at \
             https://login.phish-{run}.example/verify today.\r\n",
            message_id(run, m, i)
        );
        session.append("INBOX", None, None, message).await.map_err(|e| format!("APPEND to {user}: {e}"))?;
    }
    session.logout().await?;
    Ok(())
}

/// Seeds every mailbox, `concurrency` at a time.
async fn seed(dc: &Dovecot, s: &Settings, run: usize) -> AnyResult<()> {
    let results: Vec<AnyResult<()>> = futures::stream::iter(0..s.mailboxes)
        .map(|m| seed_mailbox(dc, run, m, s.per_mailbox))
        .buffer_unordered(s.concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The mail-flow records of run `run`: one per seeded message, from the run's sender, in the inbox.
fn records(run: usize, s: &Settings) -> Vec<Value> {
    let now = Utc::now();
    let sender = sender(run);
    let n = s.targets() as i64;
    (0..s.mailboxes)
        .flat_map(|m| (0..s.per_mailbox).map(move |i| (m, i)))
        .enumerate()
        .map(|(k, (m, i))| {
            let received = now - chrono::Duration::seconds(3600 + (k as i64 * 3600) / n.max(1));
            json!({
                "networkMessageId": format!("bench-imap-{run}-{m:03}-{i}"),
                "internetMessageId": message_id(run, m, i),
                "recipient": user(m),
                "envelopeSender": sender,
                "headerFrom": sender,
                "senderIp": "203.0.113.7",
                "subject": format!("Action required: your mailbox is full ({run}/{i})"),
                "receivedAt": received.to_rfc3339_opts(SecondsFormat::Micros, true),
                "urls": [format!("https://login.phish-{run}.example/verify")],
                "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX",
                "threatTypes": ["PHISH"],
            })
        })
        .collect()
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

/// Checks every mailbox with the harness's own IMAP sessions: none of the run's messages left in INBOX,
/// all of them in `Recoverable Items`. The problems found, at most a few.
async fn verify(dc: &Dovecot, s: &Settings, run: usize) -> Vec<String> {
    let problems: Vec<Vec<String>> = futures::stream::iter(0..s.mailboxes)
        .map(|m| async move {
            let user = user(m);
            let expected: Vec<String> = (0..s.per_mailbox).map(|i| message_id(run, m, i)).collect();
            let inbox = dc.message_ids(&user, "INBOX").await;
            let recoverable = dc.message_ids(&user, "Recoverable Items").await;
            let left = expected.iter().filter(|id| inbox.contains(id)).count();
            let moved = expected.iter().filter(|id| recoverable.contains(id)).count();
            let mut p = vec![];
            if left > 0 {
                p.push(format!("{user}: {left} of the run's messages still in INBOX"));
            }
            if moved != expected.len() {
                p.push(format!("{user}: {moved} of {} in Recoverable Items", expected.len()));
            }
            p
        })
        .buffer_unordered(s.concurrency)
        .collect()
        .await;
    problems.into_iter().flatten().collect()
}

struct Measure {
    seed: f64,
    ingest: f64,
    wall: f64,
    server_started: f64,
    server_decided: f64,
    cpu_server: f64,
    cpu_pg: f64,
}

fn at(v: &Value) -> AnyResult<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(v.as_str().ok_or("a timestamp")?)?.with_timezone(&Utc))
}

/// One run: seed, ingest, propose (approved at once), time the execution, check the mailboxes.
async fn run(
    http: &reqwest::Client,
    server: &Server,
    dc: &Dovecot,
    secret: &str,
    s: &Settings,
    run: usize,
) -> AnyResult<Measure> {
    let gw = token(secret, TENANT, Role::Ingestor)?;
    let responder = token(secret, TENANT, Role::Responder)?;
    let targets = s.targets();
    let t = Instant::now();
    seed(dc, s, run).await?;
    let seed_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ingest(http, server, &gw, records(run, s)).await?;
    let ingest_secs = t.elapsed().as_secs_f64();
    let after = (Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let input = json!({ "i": {
        "filter": { "sender": sender(run), "receivedAfter": after },
        "action": "SOFT_DELETE",
        "comment": format!("imap_actions bench, run {}", run + 1),
    } });
    let cpu_server = cpu_secs(server.child.id());
    let cpu_pg = postgres_cpu();
    let t = Instant::now();
    let p = graphql(http, server.addr, &responder, REMEDIATE, input).await?;
    let proposed = t.elapsed().as_secs_f64();
    let id = p["remediateEmails"]["id"].as_str().ok_or("an action id")?.to_string();
    if p["remediateEmails"]["status"] != "APPROVED" || p["remediateEmails"]["targetCount"] != targets {
        return Err(format!("unexpected proposal (four-eyes off: APPROVED over {targets}): {p}").into());
    }
    let deadline = t + Duration::from_secs(600);
    loop {
        let a = graphql(http, server.addr, &responder, POLL, json!({ "id": id })).await?;
        match a["action"]["status"].as_str() {
            Some("COMPLETED") => break,
            Some("APPROVED" | "RUNNING") => {}
            other => {
                let d = graphql(http, server.addr, &responder, DONE, json!({ "id": id })).await?;
                return Err(format!("the action ended {other:?}: {d}").into());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("not completed within 600 s: {a}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu_server = cpu_secs(server.child.id()) - cpu_server;
    let cpu_pg = postgres_cpu_since(&cpu_pg);
    let d = graphql(http, server.addr, &responder, DONE, json!({ "id": id })).await?["action"].clone();
    let n = targets as i64;
    let sum: i64 = ["successCount", "failedCount", "alreadyInDestinationCount", "notFoundCount"]
        .iter()
        .map(|f| d[f].as_i64().unwrap_or(-1))
        .sum();
    if d["successCount"] != n || sum != n || d["openTargetCount"] != 0 {
        return Err(format!("the action did not move every copy once: {d}").into());
    }
    let completed = at(&d["completedAt"])?;
    let server_started = (completed - at(&d["startedAt"])?).as_seconds_f64();
    let server_decided = (completed - at(&d["decidedAt"])?).as_seconds_f64();
    let t = Instant::now();
    let problems = verify(dc, s, run).await;
    let verify_secs = t.elapsed().as_secs_f64();
    println!(
        "  run {}: seed {seed_secs:.1} s, ingest {ingest_secs:.2} s, propose {proposed:.2} s; proposal to \
         COMPLETED {wall:.2} s ({:.0} targets/s); server: decided->completed {server_decided:.2} s, \
         started->completed {server_started:.2} s; CPU server {cpu_server:.2} s, PostgreSQL {cpu_pg:.2} s; \
         mailboxes checked in {verify_secs:.1} s{}",
        run + 1,
        targets as f64 / wall,
        if problems.is_empty() {
            ", all moved".to_string()
        } else {
            format!(", {} problems", problems.len())
        }
    );
    if !problems.is_empty() {
        for p in problems.iter().take(10) {
            println!("    {p}");
        }
        return Err(format!("run {}: {} mailboxes not as expected", run + 1, problems.len()).into());
    }
    Ok(Measure {
        seed: seed_secs,
        ingest: ingest_secs,
        wall,
        server_started,
        server_decided,
        cpu_server,
        cpu_pg,
    })
}

async fn bench(db: &Database) -> AnyResult<()> {
    let s = Settings {
        runs: env_usize("BENCH_RUNS", 3).max(1),
        mailboxes: env_usize("BENCH_MAILBOXES", 100).clamp(1, 999),
        per_mailbox: env_usize("BENCH_PER_MAILBOX", 10).max(1),
        concurrency: env_usize("BENCH_SEED_CONCURRENCY", 20).max(1),
        target: env_usize("BENCH_TARGET_SECS", 30) as f64,
    };
    let users: Vec<String> = (0..s.mailboxes).map(user).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let t = Instant::now();
    let Some(dc) = Dovecot::start("imap_actions bench", &user_refs).await else {
        return Err("Dovecot cannot run here (see above)".into());
    };
    let dovecot_secs = t.elapsed().as_secs_f64();
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let key = hex::encode(uuid::Uuid::new_v4().as_bytes()) + &hex::encode(uuid::Uuid::new_v4().as_bytes());
    let server = start_server_with(&db.url, &secret, &[("PARAPET_SECRET_KEY", key.as_str())]).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(8).build()?;
    let admin = token(&secret, TENANT, Role::Admin)?;
    let mail_server = json!({ "i": {
        "host": "127.0.0.1", "port": dc.imap_port, "tls": "NONE", "masterUser": MASTER_USER,
        "masterPassword": MASTER_PASSWORD, "sievePort": dc.sieve_port,
    } });
    graphql(&http, server.addr, &admin, CONFIGURE, mail_server).await?;
    graphql(&http, server.addr, &admin, FOUR_EYES_OFF, json!({})).await?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "parapet IMAP remediation benchmark: one SOFT_DELETE over {} targets ({} mailboxes x {}) on a \
         real Dovecot, {} runs",
        s.targets(),
        s.mailboxes,
        s.per_mailbox,
        s.runs
    );
    println!("  machine: {cores} cores, load average {}", load_average());
    println!(
        "  server: release build, pid {}, http://{}, database {}; Dovecot IMAP 127.0.0.1:{} (no TLS), \
         started in {dovecot_secs:.1} s, {}",
        server.child.id(),
        server.addr,
        db.name,
        dc.imap_port,
        dc.dir.display()
    );
    let mut measures = vec![];
    for r in 0..s.runs {
        match run(&http, &server, &dc, &secret, &s, r).await {
            Ok(m) => measures.push(m),
            Err(e) => {
                let log = dc.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                println!("  Dovecot's log ends:");
                for l in tail.into_iter().rev() {
                    println!("    {l}");
                }
                return Err(e);
            }
        }
    }
    let median = |f: &dyn Fn(&Measure) -> f64| {
        let mut v: Vec<f64> = measures.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    let wall = median(&|m| m.wall);
    println!();
    println!(
        "one SOFT_DELETE over {} targets in {} mailboxes, proposal to COMPLETED (polled every 20 ms), \
         {} runs: {}",
        s.targets(),
        s.mailboxes,
        s.runs,
        measures.iter().map(|m| format!("{:.2} s", m.wall)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  median {wall:.2} s ({:.0} targets/s); server decided->completed median {:.2} s, \
         started->completed {:.2} s; CPU per run: server {:.2} s, PostgreSQL {:.2} s; seeding {:.1} s, \
         ingest {:.2} s (medians); load average now {}",
        s.targets() as f64 / wall,
        median(&|m| m.server_decided),
        median(&|m| m.server_started),
        median(&|m| m.cpu_server),
        median(&|m| m.cpu_pg),
        median(&|m| m.seed),
        median(&|m| m.ingest),
        load_average()
    );
    let met = wall <= s.target;
    println!(
        "  target: at most {:.0} s for {} targets across {} mailboxes: {}",
        s.target,
        s.targets(),
        s.mailboxes,
        if met { "met" } else { "NOT met" }
    );
    Ok(())
}
