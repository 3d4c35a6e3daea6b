//! Benchmark of ingestion and live delivery, against a real `parapet serve` process on a fresh
//! database, over loopback HTTP and WebSockets. Run it with `cargo bench --bench live` (release build).
//!
//! 1. Ingest throughput: 4 concurrent clients send `ingestAlerts` batches of 100 realistic alerts
//!    (e-mail + URL + mailbox evidence; 40 % belong to campaigns that correlate, 60 % stand alone), and
//!    the report gives alerts ingested and correlated per second, per-batch latency, and the CPU time the
//!    server, PostgreSQL and this load generator used.
//! 2. Delivery latency: 1,000 WebSocket clients (graphql-transport-ws) each subscribe to
//!    `alertCorrelated`; alerts are then ingested one at a time and, for every subscriber, the time from
//!    just before the ingest request was sent (and, as a lower bound, from when its response came back)
//!    to the event's arrival is recorded; p50/p99/max over every delivery.
//!
//! Settings (environment): `DATABASE_URL` (a PostgreSQL server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database is made on it and dropped after),
//! `BENCH_BATCHES` (batches per client, default 25), `BENCH_SUBSCRIBERS` (default 1000),
//! `BENCH_EVENTS` (alerts ingested one at a time in part 2, default 100), `BENCH_CLIENTS` (concurrent
//! ingest clients, default 4), `BENCH_KEEP_DB=1` (keep the database for inspection), `BENCH_ANALYZE=0`
//! (skip the `ANALYZE` after the warm-up, i.e. measure with no planner statistics at all),
//! `BENCH_SAMPLE_MS` (how often part 1 samples `pg_stat_activity`, default 50).

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::{SinkExt, StreamExt};
use parapet::auth::Role;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::*;

const BATCH: usize = 100;
const CAMPAIGN_SIZE: usize = 100;

const INGEST: &str =
    "mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) { accepted rejected } }";
const SUBSCRIPTION: &str =
    "subscription { alertCorrelated { cursor kind alert { id providerAlertId } incident { id } } }";

fn main() -> AnyResult<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let fds = raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(fds))
}

/// Raises the soft open-files limit to the hard limit: 1,000 sockets here and 1,000 in the server
/// (which inherits the limit) exceed the common default of 1,024.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

async fn run(fds: libc::rlim_t) -> AnyResult<()> {
    let db = Database::create().await?;
    let result = bench(&db, fds).await;
    if std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
        println!("kept database {} (BENCH_KEEP_DB=1)", db.name);
    } else {
        db.drop_it().await;
    }
    result
}

async fn bench(db: &Database, fds: libc::rlim_t) -> AnyResult<()> {
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let server = start_server(&db.url, &secret).await?;
    let token = |tenant: &str, role: Role| support::token(&secret, tenant, role);
    let http = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb as f64 / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    println!("parapet live benchmark");
    println!("  machine: {cores} cores, {mem:.1} GiB RAM, load average {}", load_average());
    println!(
        "  server: release build, pid {}, http://{}, database {}",
        server.child.id(),
        server.addr,
        db.name
    );
    println!("  open-files limit: {fds}");

    throughput(&http, &server, &db.url, &token("bench-ingest", Role::Ingestor)?).await?;
    latency(&http, &server, &token("bench-wall", Role::Ingestor)?, &token("bench-wall", Role::Reader)?)
        .await?;
    Ok(())
}

/// Alert policies of Defender for Office 365 that fire on delivered mail.
const POLICIES: [&str; 3] = [
    "Email messages containing malicious URL removed after delivery",
    "Email messages containing malware removed after delivery",
    "Email reported by user as malware or phish",
];

/// `n` alerts (`salt` keeps data sets apart): 40 % in campaigns of 100 (one URL, sender domain and
/// sending IP each, 100 recipients) that correlate into one incident each; the rest unrelated (own URL,
/// sender and IP; one of three policies), which correlate only when the same user already has an alert
/// of the same policy (the mailbox is a weak key; 20,000 users). Shuffled, so a campaign's alerts
/// arrive spread over clients and batches.
fn dataset(run: &str, salt: usize, n: usize) -> Vec<Value> {
    let campaign_alerts = n * 2 / 5;
    let severities = ["LOW", "MEDIUM", "HIGH", "INFORMATIONAL"];
    let mut out: Vec<Value> = (0..n)
        .map(|i| {
            let recipient = format!("user{}@contoso.example", (i * 7919 + salt * 4513) % 20_000);
            let sev = severities[i % severities.len()];
            if i < campaign_alerts {
                let c = i / CAMPAIGN_SIZE;
                alert(
                    &format!("{run}-c{c}-{i}"),
                    POLICIES[0],
                    &recipient,
                    &format!("https://campaign{c}.{run}.example/login?id={c}"),
                    &format!("billing{i}@campaign{c}.{run}.example"),
                    &format!("198.{}.{}.{}", 18 + salt, c % 250, c / 250 + 1),
                    sev,
                )
            } else {
                alert(
                    &format!("{run}-u{i}"),
                    POLICIES[i % POLICIES.len()],
                    &recipient,
                    &format!("https://site{i}.{run}.example/path/{i}"),
                    &format!("news@sender{i}.{run}.example"),
                    &format!("10.{}.{}.{}", salt, (i >> 8) & 255, i & 255),
                    sev,
                )
            }
        })
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}

async fn ingest(http: &reqwest::Client, server: &Server, token: &str, alerts: &[Value]) -> AnyResult<()> {
    ingest_at(http, server.addr, token, alerts).await
}

async fn throughput(http: &reqwest::Client, server: &Server, db_url: &str, token: &str) -> AnyResult<()> {
    let batches_per_client = env_usize("BENCH_BATCHES", 25);
    let clients = env_usize("BENCH_CLIENTS", 4).max(1);
    // Warm-up: connections, prepared statements, caches (its own alerts, not counted).
    let warm = dataset("warm", 1, clients * BATCH);
    let mut tasks = vec![];
    for chunk in warm.chunks(BATCH).map(|c| c.to_vec()) {
        let (http, token) = (http.clone(), token.to_string());
        let server_addr = server.addr;
        tasks.push(tokio::spawn(async move { ingest_at(&http, server_addr, &token, &chunk).await }));
    }
    for t in tasks {
        t.await??;
    }

    // Statistics as a running deployment has them (autovacuum analyzes growing tables within about a
    // minute); a database a few seconds old has none, and its plans are far slower.
    if !std::env::var("BENCH_ANALYZE").is_ok_and(|v| v == "0") {
        AsyncPgConnection::establish(db_url).await?.batch_execute("ANALYZE").await?;
    }
    let total = clients * batches_per_client * BATCH;
    let data = Arc::new(dataset("run", 2, total));
    let cpu_server = cpu_secs(server.child.id());
    let cpu_pg = postgres_cpu();
    let cpu_self = cpu_secs(std::process::id());
    let sampler = Sampler::start(db_url).await?;
    let started = Instant::now();
    let mut tasks = vec![];
    for c in 0..clients {
        let (http, token, data) = (http.clone(), token.to_string(), data.clone());
        let server_addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            for b in 0..batches_per_client {
                // Interleaved so concurrent clients carry alerts of the same campaigns.
                let start = (b * clients + c) * BATCH;
                let t = Instant::now();
                ingest_at(&http, server_addr, &token, &data[start..start + BATCH]).await?;
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
    let (cpu_server, cpu_pg, cpu_self) = (
        cpu_secs(server.child.id()) - cpu_server,
        postgres_cpu_since(&cpu_pg),
        cpu_secs(std::process::id()) - cpu_self,
    );
    batch_ms.sort_by(f64::total_cmp);
    println!();
    println!("ingest throughput ({clients} concurrent clients, batches of {BATCH}, {total} alerts)");
    println!(
        "  alerts ingested and correlated: {:.0} alerts/s ({total} in {elapsed:.2} s)",
        total as f64 / elapsed
    );
    println!(
        "  batch latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&batch_ms, 50.0),
        percentile(&batch_ms, 99.0),
        batch_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  CPU used during the run: server {cpu_server:.1} s, postgres {cpu_pg:.1} s, load generator {cpu_self:.1} s \
         (wall {elapsed:.1} s; {:.0} % of the machine's cores busy)",
        100.0 * (cpu_server + cpu_pg + cpu_self) / (elapsed * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64)
    );
    print_samples(&samples);
    Ok(())
}

/// Samples what the run's database sessions are doing (`pg_stat_activity` every `BENCH_SAMPLE_MS`,
async fn ingest_at(http: &reqwest::Client, addr: SocketAddr, token: &str, alerts: &[Value]) -> AnyResult<()> {
    let resp: Value = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": INGEST, "variables": { "alerts": alerts } }))
        .send()
        .await?
        .json()
        .await?;
    let r = &resp["data"]["ingestAlerts"];
    if resp.get("errors").is_some_and(|e| !e.is_null())
        || r["rejected"].as_u64() != Some(0)
        || r["accepted"].as_u64() != Some(alerts.len() as u64)
    {
        return Err(format!("ingest failed: {resp}").into());
    }
    Ok(())
}

/// One subscriber's connection: connects, authenticates, subscribes, then reports each event's
/// `providerAlertId` with the moment it arrived.
async fn subscriber(
    addr: SocketAddr,
    token: String,
    out: mpsc::UnboundedSender<(String, Instant)>,
) -> AnyResult<()> {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let init =
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["type"] == "connection_ack" {
                    break;
                }
                if v["type"] == "ping" {
                    ws.send(Message::text(json!({ "type": "pong" }).to_string())).await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("closed before connection_ack".into()),
        }
    }
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION } });
    ws.send(Message::text(sub.to_string())).await?;
    // Ready: the caller waits for all of these before measuring.
    let _ = out.send((String::new(), Instant::now()));
    while let Some(msg) = ws.next().await {
        let at = Instant::now();
        match msg? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                match v["type"].as_str() {
                    Some("next") => {
                        let id = v["payload"]["data"]["alertCorrelated"]["alert"]["providerAlertId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        if out.send((id, at)).is_err() {
                            return Ok(());
                        }
                    }
                    Some("ping") => ws.send(Message::text(json!({ "type": "pong" }).to_string())).await?,
                    Some("error") | Some("complete") => return Err(format!("subscription ended: {v}").into()),
                    _ => {}
                }
            }
            Message::Close(c) => return Err(format!("closed: {c:?}").into()),
            _ => {}
        }
    }
    Ok(())
}

async fn latency(http: &reqwest::Client, server: &Server, ingestor: &str, reader: &str) -> AnyResult<()> {
    let n_subs = env_usize("BENCH_SUBSCRIBERS", 1000);
    let n_events = env_usize("BENCH_EVENTS", 100);
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let opened = Instant::now();
    // Connect in waves of 100 so the server's accept queue is never overrun.
    let mut handles = Vec::with_capacity(n_subs);
    for wave in 0..n_subs.div_ceil(100) {
        for _ in (wave * 100)..((wave + 1) * 100).min(n_subs) {
            handles.push(tokio::spawn(subscriber(server.addr, reader.to_string(), tx.clone())));
        }
        let mut ready = 0;
        let want = ((wave + 1) * 100).min(n_subs) - wave * 100;
        while ready < want {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some((id, _))) if id.is_empty() => ready += 1,
                Ok(Some(_)) => {}
                _ => return Err(format!("only {} subscribers connected", wave * 100 + ready).into()),
            }
        }
    }
    drop(tx);
    // A subscription is live once the server has registered it (graphql-transport-ws acknowledges no
    // subscribe); an event committed before that is not delivered to it.
    wait_live_subscribers(http, server.addr, n_subs).await?;
    let connect_secs = opened.elapsed().as_secs_f64();

    // Every subscription is registered once each has received a first event.
    let warm = alert(
        "warm-0",
        POLICIES[0],
        "w@contoso.example",
        "https://warm.example/",
        "w@warm.example",
        "192.0.2.1",
        "LOW",
    );
    ingest(http, server, ingestor, &[warm]).await?;
    collect(&mut rx, "warm-0", n_subs, Duration::from_secs(60)).await?;

    let cpu_server = cpu_secs(server.child.id());
    let cpu_pg = postgres_cpu();
    let cpu_self = cpu_secs(std::process::id());
    let measured = Instant::now();
    let mut from_send = Vec::with_capacity(n_subs * n_events);
    let mut from_reply = Vec::with_capacity(n_subs * n_events);
    let mut call_ms = Vec::with_capacity(n_events);
    for i in 0..n_events {
        let id = format!("lat-{i}");
        let a = alert(
            &id,
            POLICIES[0],
            &format!("user{i}@contoso.example"),
            &format!("https://lat{i}.example/x"),
            &format!("x@lat{i}.example"),
            &format!("192.0.2.{}", i % 250 + 2),
            "MEDIUM",
        );
        let sent = Instant::now();
        ingest(http, server, ingestor, &[a]).await?;
        let replied = Instant::now();
        call_ms.push((replied - sent).as_secs_f64() * 1000.0);
        for at in collect(&mut rx, &id, n_subs, Duration::from_secs(30)).await? {
            from_send.push(at.saturating_duration_since(sent).as_secs_f64() * 1000.0);
            from_reply.push(at.saturating_duration_since(replied).as_secs_f64() * 1000.0);
        }
        // Quiet between events, as alerts arriving one by one would be.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = measured.elapsed().as_secs_f64();
    let (cpu_server, cpu_pg, cpu_self) = (
        cpu_secs(server.child.id()) - cpu_server,
        postgres_cpu_since(&cpu_pg),
        cpu_secs(std::process::id()) - cpu_self,
    );
    for h in &handles {
        h.abort();
    }
    from_send.sort_by(f64::total_cmp);
    from_reply.sort_by(f64::total_cmp);
    call_ms.sort_by(f64::total_cmp);
    println!();
    println!(
        "delivery latency ({n_subs} WebSocket subscribers on alertCorrelated, {n_events} alerts ingested one at a time, {} deliveries)",
        from_send.len()
    );
    println!("  subscribers connected and subscribed in {connect_secs:.1} s");
    println!(
        "  from just before the ingest request to the subscriber: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&from_send, 50.0),
        percentile(&from_send, 99.0),
        from_send.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  from the ingest response (commit done) to the subscriber: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&from_reply, 50.0),
        percentile(&from_reply, 99.0),
        from_reply.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  the ingest call itself (one alert): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&call_ms, 50.0),
        percentile(&call_ms, 99.0)
    );
    let per = |cpu: f64| 1000.0 * cpu / n_events.max(1) as f64;
    println!(
        "  CPU per ingested event: server {:.1} ms, postgres {:.1} ms, load generator ({n_subs} clients) {:.1} ms \
         (wall {wall:.1} s for {n_events} events)",
        per(cpu_server),
        per(cpu_pg),
        per(cpu_self)
    );
    Ok(())
}

/// Waits until `n` subscribers have received the event for `id`; returns their arrival times.
/// Waits until the server's `/metrics` counts `n` live subscribers.
async fn wait_live_subscribers(http: &reqwest::Client, addr: SocketAddr, n: usize) -> AnyResult<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http.get(format!("http://{addr}/metrics")).send().await?.text().await?;
        let live = text
            .lines()
            .find_map(|l| l.strip_prefix("parapet_live_subscribers "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if live >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {live} of {n} subscriptions went live").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    id: &str,
    n: usize,
    within: Duration,
) -> AnyResult<Vec<Instant>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::with_capacity(n);
    let mut other: HashMap<String, usize> = HashMap::new();
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((eid, at))) if eid == id => got.push(at),
            Ok(Some((eid, _))) => *other.entry(eid).or_default() += 1,
            Ok(None) => return Err("every subscriber stopped".into()),
            Err(_) => {
                return Err(format!(
                    "only {} of {n} subscribers received {id} (others: {other:?})",
                    got.len()
                )
                .into())
            }
        }
    }
    Ok(got)
}
