//! Benchmark of mail-flow ingestion (`ingestEmails`), against a real release `parapet serve` on a fresh
//! database, over loopback HTTP with a real ingestor JWT. Run it with `cargo bench --bench mail_ingest`.
//!
//! Concurrent clients (4) each send batches of 2,000 realistic records (`benches/support/mail.rs`: 2,000
//! sender domains, 20,000 recipients, 1 % of copies in campaigns, 0-5 URLs, 0-2 attachments, verdicts on a
//! few %, receive times over the last 30 days), after a warm-up batch per client and an `ANALYZE`. Every
//! request body is built before the clock starts. The report gives e-mails stored per second (records /
//! wall time), per-batch latency, the CPU the server, PostgreSQL and this load generator used, a sample of
//! what the database sessions were doing, and the mail store's indexes with their sizes. Every record
//! must come back `CREATED`, else the run fails.
//!
//! Settings (environment): `DATABASE_URL` (a PostgreSQL server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database is made on it and dropped after),
//! `BENCH_CLIENTS` (concurrent clients, default 4), `BENCH_BATCHES` (batches per client, default 10),
//! `BENCH_BATCH` (records per batch, default 2000, the most `ingestEmails` takes), `BENCH_SEED`,
//! `BENCH_KEEP_DB=1` (keep the database for inspection), `BENCH_ANALYZE=0` (no `ANALYZE` after the
//! warm-up), `BENCH_SAMPLE_MS` (how often `pg_stat_activity` is sampled, default 50), `BENCH_PERF=FILE`
//! (record the server and the database's backends with `perf record -g` during the timed part),
//! `BENCH_SERVER_BIN` (another `parapet` binary to measure).

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Instant;

mod support;
use support::mail::MailGen;
use support::*;

const INGEST: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected \
                      items { status error } } }";

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

fn body(records: Vec<Value>) -> AnyResult<Vec<u8>> {
    Ok(serde_json::to_vec(&json!({ "query": INGEST, "variables": { "e": records } }))?)
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pid: i32,
}

#[derive(diesel::QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    def: String,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    bytes: i64,
}

/// The PIDs of the database's client backends (the server's pool).
async fn backend_pids(conn: &mut AsyncPgConnection) -> AnyResult<Vec<u32>> {
    let rows: Vec<Pid> = diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.pid as u32).collect())
}

async fn bench(db: &Database) -> AnyResult<()> {
    let clients = env_usize("BENCH_CLIENTS", 4).max(1);
    let batches = env_usize("BENCH_BATCHES", 10).max(1);
    let batch = env_usize("BENCH_BATCH", 2000).clamp(1, 2000);
    let seed = env_usize("BENCH_SEED", 1) as u64;
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let server = start_server(&db.url, &secret).await?;
    let token = support::token(&secret, "bench-mail", Role::Ingestor)?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("parapet mail ingest benchmark");
    println!("  machine: {cores} cores, {:.1} GiB RAM, load average {}", mem_gib(), load_average());
    println!(
        "  server: release build, pid {}, http://{}, database {}",
        server.child.id(),
        server.addr,
        db.name
    );

    let total = clients * batches * batch;
    let mut gen = MailGen::new(seed, total, chrono::Utc::now(), 0);
    // Warm-up: connections, prepared statements, partitions, caches (its own records, not counted).
    let warm: Vec<(Vec<u8>, usize)> = (0..clients)
        .map(|_| {
            let b = gen.batch(batch);
            let n = b.len();
            body(b).map(|body| (body, n))
        })
        .collect::<AnyResult<_>>()?;
    let mut tasks = vec![];
    for (body, n) in warm {
        let (http, token, addr) = (http.clone(), token.clone(), server.addr);
        tasks.push(tokio::spawn(async move { send_mail_batch(&http, addr, &token, body, n).await }));
    }
    for t in tasks {
        t.await??;
    }
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    if !std::env::var("BENCH_ANALYZE").is_ok_and(|v| v == "0") {
        conn.batch_execute("ANALYZE").await?;
    }

    // Every request body, built before the clock starts.
    let t = Instant::now();
    let mut per_client: Vec<Vec<(Vec<u8>, usize)>> =
        (0..clients).map(|_| Vec::with_capacity(batches)).collect();
    let mut bytes = 0usize;
    for _ in 0..batches {
        for c in per_client.iter_mut() {
            let b = gen.batch(batch);
            let n = b.len();
            let body = body(b)?;
            bytes += body.len();
            c.push((body, n));
        }
    }
    println!(
        "  {total} records in {} batches of {batch} built in {:.1} s ({:.0} bytes per record)",
        clients * batches,
        t.elapsed().as_secs_f64(),
        bytes as f64 / total as f64
    );

    let pids = backend_pids(&mut conn).await?;
    let perf = match std::env::var("BENCH_PERF") {
        Ok(file) if !file.is_empty() => {
            let mut list: Vec<String> = pids.iter().map(u32::to_string).collect();
            list.push(server.child.id().to_string());
            let child = std::process::Command::new("perf")
                .args(["record", "-F", "499", "-g", "-o", &file, "-p", &list.join(",")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            println!("  perf recording pids {} to {file} (perf pid {})", list.join(","), child.id());
            Some(child)
        }
        _ => None,
    };
    let load_before = load_average();
    let cpu_server = cpu_secs(server.child.id());
    let cpu_backends: Vec<(u32, f64)> = pids.iter().map(|p| (*p, cpu_secs(*p))).collect();
    let cpu_pg = postgres_cpu();
    let cpu_self = cpu_secs(std::process::id());
    let sampler = Sampler::start(&db.url).await?;
    let started = Instant::now();
    let mut tasks = vec![];
    for bodies in per_client {
        let (http, token, addr) = (http.clone(), token.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            for (body, n) in bodies {
                let t = Instant::now();
                send_mail_batch(&http, addr, &token, body, n).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(times)
        }));
    }
    let mut batch_ms = vec![];
    for t in tasks {
        batch_ms.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.stop().await;
    let cpu_server = cpu_secs(server.child.id()) - cpu_server;
    let cpu_backends: f64 = cpu_backends.iter().map(|(p, b)| cpu_secs(*p) - b).sum();
    let cpu_pg = postgres_cpu_since(&cpu_pg);
    let cpu_self = cpu_secs(std::process::id()) - cpu_self;
    if let Some(mut p) = perf {
        // SAFETY: kill sends a signal to the perf process this benchmark started.
        unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
        let _ = p.wait();
    }
    batch_ms.sort_by(f64::total_cmp);
    println!();
    println!(
        "mail ingest ({clients} concurrent clients, batches of {batch}, {total} records, every one CREATED)"
    );
    println!("  e-mails stored per second: {:.0} ({total} in {elapsed:.2} s)", total as f64 / elapsed);
    println!(
        "  batch latency: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&batch_ms, 50.0),
        percentile(&batch_ms, 95.0),
        batch_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  CPU used: server {cpu_server:.1} s, this database's backends {cpu_backends:.1} s (every postgres \
         process on the machine {cpu_pg:.1} s), load generator {cpu_self:.1} s; wall {elapsed:.1} s, {:.0} % of \
         {cores} cores",
        100.0 * (cpu_server + cpu_pg + cpu_self) / (elapsed * cores as f64)
    );
    println!(
        "  per record: server {:.0} µs, database backends {:.0} µs of CPU",
        1e6 * cpu_server / total as f64,
        1e6 * cpu_backends / total as f64
    );
    println!("  load average before {load_before}, after {}", load_average());
    print_samples(&samples);

    let rows: Vec<IndexRow> = diesel::sql_query(
        "SELECT i.relname::text AS name, pg_get_indexdef(i.oid) AS def, \
                COALESCE((SELECT sum(pg_relation_size(x.indexrelid))::bigint FROM pg_inherits h \
                          JOIN pg_index x ON x.indexrelid = h.inhrelid WHERE h.inhparent = i.oid), 0) AS bytes \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         WHERE t.relname = 'emails' ORDER BY i.relname",
    )
    .load(&mut conn)
    .await?;
    println!("  indexes of emails (sum over its partitions):");
    for r in rows {
        println!("    {:>8.1} MB  {}  {}", r.bytes as f64 / 1048576.0, r.name, r.def);
    }
    Ok(())
}

fn mem_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb as f64 / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}
