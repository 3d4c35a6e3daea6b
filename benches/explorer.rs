//! Benchmark of Threat Explorer hunts (`emails` pages with `totalCount`, and `emailAggregate`) against a
//! real release `parapet serve` on a fresh database holding a month of mail for two tenants. Run it with
//! `cargo bench --bench explorer`.
//!
//! Seeding: `BENCH_COPIES` copies (default 1,000,000) for tenant A and as many for tenant B, from the
//! generator of `benches/support/mail.rs` (2,000 sender domains, 20,000 recipients, 1 % campaigns, ...),
//! in time order over the last 29.5 days (as a gateway pushes mail), through `ingestEmails` itself: 4
//! clients, batches of 2,000, the tenants interleaved, so the derived values and lookup keys are the
//! server's own. Then `VACUUM (ANALYZE)` (what autovacuum does to a table within minutes of a load: planner
//! statistics, the visibility map, GIN pending lists merged; `BENCH_VACUUM=0` runs `ANALYZE` alone).
//!
//! Measures, as a reader of tenant A, one request at a time, each query kind `BENCH_RUNS` times (default
//! 60) in interleaved rounds, with filter values drawn at random from a uniform sample of the copies
//! generated (so a value comes up as often as it occurs): a page of 50 newest-first with `totalCount` for
//! (1) a sender domain over the last 7 days, (2) a recipient, (3) a URL domain, (4) an attachment SHA-256,
//! (5) `subjectContains` a campaign's subject; and `emailAggregate` over the last 7 days grouped by (6)
//! `SENDER_DOMAIN` and (7) `DELIVERY_ACTION`. Reports p50, p95 and max latency, and the sizes of the
//! results (`totalCount`), per kind.
//!
//! Settings (environment): `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; a fresh
//! database is made and dropped after), `BENCH_COPIES`, `BENCH_RUNS`, `BENCH_CLIENTS` (seeding clients,
//! default 4), `BENCH_SEED`, `BENCH_VACUUM=0`, `BENCH_KEEP_DB=1` (keep the database, e.g. to EXPLAIN),
//! `BENCH_DB=<name>` (measure a database kept before instead of seeding one; it is not dropped),
//! `BENCH_COUNT=0` (pages without `totalCount`; results then show the page's size),
//! `BENCH_SERVER_BIN` (another `parapet` binary to measure).

use chrono::{Duration, SecondsFormat, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Instant;

mod support;
use support::mail::{CopyFacts, MailGen, Rng};
use support::*;

const INGEST: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected } }";
const PAGE: &str =
    "query($f: EmailFilter!) { emails(filter: $f, first: 50) { totalCount totalCountIsEstimate \
    pageInfo { hasNextPage endCursor } edges { cursor node { id receivedAt networkMessageId subject \
    senderDomain recipient deliveryAction latestDeliveryLocation threatTypes urlDomains } } } }";
/// The page alone (`BENCH_COUNT=0`): what the count costs is the difference.
const PAGE_ONLY: &str = "query($f: EmailFilter!) { emails(filter: $f, first: 50) { \
    pageInfo { hasNextPage endCursor } edges { cursor node { id receivedAt networkMessageId subject \
    senderDomain recipient deliveryAction latestDeliveryLocation threatTypes urlDomains } } } }";
const AGG: &str =
    "query($f: EmailFilter!, $g: EmailGroupBy!) { emailAggregate(filter: $f, groupBy: $g, first: 20) \
    { key count } }";
const TENANT_A: &str = "bench-explorer-a";
const TENANT_B: &str = "bench-explorer-b";
const BATCH: usize = 2000;

fn main() -> AnyResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let kept = std::env::var("BENCH_DB").ok().filter(|d| !d.is_empty());
        let db = match &kept {
            Some(name) => Database::existing(name)?,
            None => Database::create().await?,
        };
        let result = bench(&db, kept.is_none()).await;
        if kept.is_some() || std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
            println!("kept database {} (BENCH_KEEP_DB=1 or BENCH_DB)", db.name);
        } else {
            db.drop_it().await;
        }
        result
    })
}

/// Seeds both tenants through `ingestEmails`; returns tenant A's generator (its sample and campaigns).
async fn seed(http: &reqwest::Client, server: &Server, secret: &str, copies: usize) -> AnyResult<MailGen> {
    let clients = env_usize("BENCH_CLIENTS", 4).max(1);
    let seed = env_usize("BENCH_SEED", 1) as u64;
    let now = Utc::now();
    let mut gens = [
        (token(secret, TENANT_A, Role::Ingestor)?, MailGen::ordered(seed, copies, now, 20_000)),
        (token(secret, TENANT_B, Role::Ingestor)?, MailGen::ordered(seed + 1000, copies, now, 0)),
    ];
    let batches = copies.div_ceil(BATCH);
    let (tx, rx) = async_channel::<(String, Vec<u8>, usize)>(clients * 2);
    let mut tasks = vec![];
    for _ in 0..clients {
        let (http, addr, rx) = (http.clone(), server.addr, rx.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok((token, body, n)) = rx.recv().await {
                send_mail_batch(&http, addr, &token, body, n).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    drop(rx);
    let started = Instant::now();
    let mut sent = 0usize;
    for b in 0..batches {
        for (token, gen) in gens.iter_mut() {
            let n = BATCH.min(copies - b * BATCH);
            let records = gen.batch(n);
            let body = serde_json::to_vec(&json!({ "query": INGEST, "variables": { "e": records } }))?;
            tx.send((token.clone(), body, n)).await.map_err(|_| "every seeding client stopped")?;
            sent += n;
        }
        if (b + 1) % 50 == 0 {
            let s = started.elapsed().as_secs_f64();
            println!("    {sent} copies sent in {s:.0} s ({:.0} per second)", sent as f64 / s);
        }
    }
    drop(tx);
    for t in tasks {
        t.await??;
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "  seeded {sent} copies (2 tenants) through ingestEmails in {s:.1} s ({:.0} e-mails/s)",
        sent as f64 / s
    );
    let [(_, a), _] = gens;
    Ok(a)
}

/// A bounded multi-consumer queue on tokio's primitives (the seeding clients share one).
fn async_channel<T: Send + 'static>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap);
    (Sender(tx), Receiver(std::sync::Arc::new(tokio::sync::Mutex::new(rx))))
}

struct Sender<T>(tokio::sync::mpsc::Sender<T>);
impl<T> Sender<T> {
    async fn send(&self, v: T) -> Result<(), ()> {
        self.0.send(v).await.map_err(|_| ())
    }
}

struct Receiver<T>(std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>);
impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver(self.0.clone())
    }
}
impl<T> Receiver<T> {
    async fn recv(&self) -> Result<T, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

/// One kind of hunt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    SenderDomain7d,
    Recipient,
    UrlDomain,
    AttachmentSha256,
    CampaignSubject,
    AggSenderDomain7d,
    AggDeliveryAction7d,
}

const KINDS: [Kind; 7] = [
    Kind::SenderDomain7d,
    Kind::Recipient,
    Kind::UrlDomain,
    Kind::AttachmentSha256,
    Kind::CampaignSubject,
    Kind::AggSenderDomain7d,
    Kind::AggDeliveryAction7d,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::SenderDomain7d => "page: sender domain, last 7 days",
            Kind::Recipient => "page: recipient",
            Kind::UrlDomain => "page: URL domain",
            Kind::AttachmentSha256 => "page: attachment SHA-256",
            Kind::CampaignSubject => "page: subjectContains (campaign subject)",
            Kind::AggSenderDomain7d => "aggregate: SENDER_DOMAIN, last 7 days",
            Kind::AggDeliveryAction7d => "aggregate: DELIVERY_ACTION, last 7 days",
        }
    }

    fn is_page(self) -> bool {
        !matches!(self, Kind::AggSenderDomain7d | Kind::AggDeliveryAction7d)
    }
}

/// The query and variables of one run of `kind`, with values drawn from `sample`.
fn request(kind: Kind, rng: &mut Rng, sample: &[CopyFacts], gen: &MailGen) -> (&'static str, Value) {
    let (q, v) = request_with_count(kind, rng, sample, gen);
    if q == PAGE && std::env::var("BENCH_COUNT").is_ok_and(|v| v == "0") {
        return (PAGE_ONLY, v);
    }
    (q, v)
}

fn request_with_count(
    kind: Kind,
    rng: &mut Rng,
    sample: &[CopyFacts],
    gen: &MailGen,
) -> (&'static str, Value) {
    let week = (Utc::now() - Duration::days(7)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let pick = |rng: &mut Rng, f: &dyn Fn(&CopyFacts) -> bool| loop {
        let c = &sample[rng.below(sample.len())];
        if f(c) {
            return c.clone();
        }
    };
    match kind {
        Kind::SenderDomain7d => {
            let c = pick(rng, &|_| true);
            (PAGE, json!({ "f": { "sender": c.sender_domain, "receivedAfter": week } }))
        }
        Kind::Recipient => {
            let c = pick(rng, &|_| true);
            (PAGE, json!({ "f": { "recipient": c.recipient } }))
        }
        Kind::UrlDomain => {
            let c = pick(rng, &|c| !c.url_hosts.is_empty());
            (PAGE, json!({ "f": { "url": c.url_hosts[rng.below(c.url_hosts.len())] } }))
        }
        Kind::AttachmentSha256 => {
            let c = pick(rng, &|c| !c.sha256s.is_empty());
            (PAGE, json!({ "f": { "attachmentSha256": c.sha256s[rng.below(c.sha256s.len())] } }))
        }
        Kind::CampaignSubject => {
            let c = &gen.campaigns[rng.below(gen.campaigns.len())];
            (PAGE, json!({ "f": { "subjectContains": c.subject } }))
        }
        Kind::AggSenderDomain7d => (AGG, json!({ "f": { "receivedAfter": week }, "g": "SENDER_DOMAIN" })),
        Kind::AggDeliveryAction7d => (AGG, json!({ "f": { "receivedAfter": week }, "g": "DELIVERY_ACTION" })),
    }
}

#[derive(Default)]
struct Stats {
    ms: Vec<f64>,
    totals: Vec<i64>,
    estimates: usize,
    empty: usize,
}

async fn bench(db: &Database, fresh: bool) -> AnyResult<()> {
    let copies = env_usize("BENCH_COPIES", 1_000_000).max(BATCH);
    let runs = env_usize("BENCH_RUNS", 60).max(1);
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let server = start_server(&db.url, &secret).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("parapet Threat Explorer benchmark");
    println!("  machine: {cores} cores, load average {}", load_average());
    println!(
        "  server: release build, pid {}, http://{}, database {}",
        server.child.id(),
        server.addr,
        db.name
    );

    let gen = if fresh {
        let gen = seed(&http, &server, &secret, copies).await?;
        let mut conn = AsyncPgConnection::establish(&db.url).await?;
        let t = Instant::now();
        let vacuum = !std::env::var("BENCH_VACUUM").is_ok_and(|v| v == "0");
        conn.batch_execute(if vacuum { "VACUUM (ANALYZE)" } else { "ANALYZE" }).await?;
        println!(
            "  {} in {:.1} s",
            if vacuum { "VACUUM (ANALYZE)" } else { "ANALYZE" },
            t.elapsed().as_secs_f64()
        );
        gen
    } else {
        // The data set is the generator's: replay it (without sending) for the sample and the campaigns.
        let seed = env_usize("BENCH_SEED", 1) as u64;
        let mut gen = MailGen::ordered(seed, copies, Utc::now(), 20_000);
        for _ in 0..copies.div_ceil(BATCH) {
            gen.batch(BATCH);
        }
        gen
    };
    println!("  database size: {}", db_size(&db.url).await.unwrap_or_default());

    let reader = token(&secret, TENANT_A, Role::Reader)?;
    let sample = gen.sample.clone();
    let mut rng = Rng::new(env_usize("BENCH_SEED", 1) as u64 ^ 0xE7);
    // Warm-up: one of each (connections, the catalog, the first pages of each index).
    for kind in KINDS {
        let (q, v) = request(kind, &mut rng, &sample, &gen);
        graphql(&http, server.addr, &reader, q, v).await?;
    }
    let load_before = load_average();
    let mut stats: Vec<Stats> = KINDS.iter().map(|_| Stats::default()).collect();
    for _ in 0..runs {
        for (i, kind) in KINDS.iter().enumerate() {
            let (q, v) = request(*kind, &mut rng, &sample, &gen);
            let t = Instant::now();
            let d = graphql(&http, server.addr, &reader, q, v).await?;
            stats[i].ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if kind.is_page() {
                let c = &d["emails"];
                let page = c["edges"].as_array().map_or(0, Vec::len) as i64;
                stats[i].totals.push(c["totalCount"].as_i64().unwrap_or(page));
                if c["totalCountIsEstimate"] == true {
                    stats[i].estimates += 1;
                }
                if c["edges"].as_array().is_none_or(Vec::is_empty) {
                    stats[i].empty += 1;
                }
            } else {
                let b = d["emailAggregate"].as_array().cloned().unwrap_or_default();
                stats[i].totals.push(b.iter().map(|b| b["count"].as_i64().unwrap_or(0)).sum());
            }
        }
    }
    println!();
    println!(
        "Threat Explorer, {copies} copies per tenant (2 tenants), {runs} runs per kind, one request at a time \
         (load average before {load_before}, after {})",
        load_average()
    );
    println!(
        "  {:<42} {:>8} {:>8} {:>8}   results (totalCount; aggregates: sum of the 20 buckets)",
        "", "p50", "p95", "max"
    );
    for (i, kind) in KINDS.iter().enumerate() {
        let s = &mut stats[i];
        s.ms.sort_by(f64::total_cmp);
        s.totals.sort_unstable();
        let extra = if kind.is_page() {
            format!(
                "median {}, max {}{}{}",
                s.totals[s.totals.len() / 2],
                s.totals.last().copied().unwrap_or(0),
                if s.estimates > 0 { format!(", {} estimated", s.estimates) } else { String::new() },
                if s.empty > 0 { format!(", {} empty", s.empty) } else { String::new() },
            )
        } else {
            format!("{}", s.totals[s.totals.len() / 2])
        };
        println!(
            "  {:<42} {:>6.1}ms {:>6.1}ms {:>6.1}ms   {extra}",
            kind.label(),
            percentile(&s.ms, 50.0),
            percentile(&s.ms, 95.0),
            s.ms.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Size {
    #[diesel(sql_type = diesel::sql_types::Text)]
    size: String,
}

async fn db_size(url: &str) -> AnyResult<String> {
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(url).await?;
    let rows: Vec<Size> = diesel::sql_query(
        "SELECT pg_size_pretty(pg_database_size(current_database())) || ' (emails: ' || \
         pg_size_pretty(sum(pg_total_relation_size(c.oid))) || ' with indexes)' AS size \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'emails'::regclass",
    )
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| r.size).unwrap_or_default())
}
