//! What the benchmarks share: a fresh database, a release `parapet serve` on it, tokens, and alerts.

#![allow(dead_code)] // each bench uses its own part of this module

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mail.rs"]
pub mod mail;

pub type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A whole-number setting from the environment.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server child process, killed by its PID when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database made for this run, dropped afterwards.
pub struct Database {
    server_url: String,
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// Makes it on `DATABASE_URL` (default: the local server).
    pub async fn create() -> AnyResult<Database> {
        let server_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("parapet_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(&server_url).await?;
        conn.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        if std::env::var("BENCH_LOG_LOCK_WAITS").is_ok_and(|v| v == "1") {
            // Diagnosis: the server's log then names every lock wait longer than deadlock_timeout (1 s).
            conn.batch_execute(&format!("ALTER DATABASE {name} SET log_lock_waits = on")).await?;
        }
        let mut url = url::Url::parse(&server_url)?;
        url.set_path(&format!("/{name}"));
        Ok(Database { server_url, name, url: url.to_string() })
    }

    /// One made before (kept with `BENCH_KEEP_DB=1`), on the same server.
    pub fn existing(name: &str) -> AnyResult<Database> {
        let server_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut url = url::Url::parse(&server_url)?;
        url.set_path(&format!("/{name}"));
        Ok(Database { server_url, name: name.to_string(), url: url.to_string() })
    }

    /// Drops it.
    pub async fn drop_it(&self) {
        if let Ok(mut c) = AsyncPgConnection::establish(&self.server_url).await {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
        }
    }
}

/// Starts `parapet serve` (release build, or `BENCH_SERVER_BIN` to measure another build beside it) on
/// `db_url`, and waits until it is ready.
pub async fn start_server(db_url: &str, secret: &str) -> AnyResult<Server> {
    start_server_with(db_url, secret, &[]).await
}

/// `start_server` with `env` set besides the defaults.
pub async fn start_server_with(db_url: &str, secret: &str, env: &[(&str, &str)]) -> AnyResult<Server> {
    // A free loopback port (the tiny race with another process binding it meanwhile is acceptable here).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let child = Command::new(
        std::env::var("BENCH_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_parapet").to_string()),
    )
    .arg("serve")
    .env("DATABASE_URL", db_url)
    .env("PARAPET_JWT_SECRET", secret)
    .env("PARAPET_LISTEN", addr.to_string())
    .env("RUST_LOG", "warn")
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()?;
    let server = Server { child, addr };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("http://{addr}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            return Err("the server did not become ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a GraphQL request as `token` against the server at `addr`: its data, or the whole response as
/// the error when it carries errors.
pub async fn graphql(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    query: &str,
    vars: Value,
) -> AnyResult<Value> {
    let resp: Value = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": vars }))
        .send()
        .await?
        .json()
        .await?;
    if resp.get("errors").is_some_and(|e| !e.is_null()) {
        return Err(format!("{query}: {resp}").into());
    }
    Ok(resp["data"].clone())
}

/// Sends one `ingestEmails` batch (a serialised request body of `n` records); checks that all `n` were
/// accepted and, when the request asked for the items, that every one came back `CREATED`.
pub async fn send_mail_batch(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    body: Vec<u8>,
    n: usize,
) -> AnyResult<()> {
    let resp: Value = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    if resp.get("errors").is_some_and(|e| !e.is_null()) {
        return Err(format!("ingestEmails failed: {resp}").into());
    }
    let r = &resp["data"]["ingestEmails"];
    let items = r["items"].as_array().map(Vec::as_slice);
    let created = items.map_or(n, |items| items.iter().filter(|i| i["status"] == "CREATED").count());
    if r["accepted"].as_u64() != Some(n as u64) || r["rejected"].as_u64() != Some(0) || created != n {
        let bad: Vec<&Value> =
            items.unwrap_or_default().iter().filter(|i| i["status"] != "CREATED").take(3).collect();
        return Err(format!(
            "of {n} records, {} accepted, {} rejected, {created} CREATED; e.g. {bad:?}",
            r["accepted"], r["rejected"]
        )
        .into());
    }
    Ok(())
}

/// A token for `tenant` with `role`, signed with `secret`.
pub fn token(secret: &str, tenant: &str, role: parapet::auth::Role) -> AnyResult<String> {
    Ok(parapet::auth::mint_hs256(
        &parapet::auth::TokenSpec {
            tenant: tenant.into(),
            sub: format!("bench@{tenant}.example"),
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

/// The machine's load average, as `/proc/loadavg` gives it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// An MDO alert about one delivered message: e-mail, URL and mailbox evidence.
pub fn alert(
    id: &str,
    policy: &str,
    recipient: &str,
    url: &str,
    sender: &str,
    ip: &str,
    severity: &str,
) -> Value {
    json!({
        "providerAlertId": id,
        "serviceSource": "microsoftDefenderForOffice365",
        "detectionSource": "microsoftDefenderForOffice365",
        "alertPolicy": policy,
        "title": policy,
        "severity": severity,
        "category": "InitialAccess",
        "mitreTechniques": ["T1566.002"],
        "evidence": [
            { "verdict": "MALICIOUS", "email": {
                "networkMessageId": format!("nmid-{id}"),
                "recipient": recipient,
                "envelopeSender": sender,
                "headerFrom": sender,
                "subject": "Your invoice is ready",
                "receivedAt": chrono::Utc::now().to_rfc3339(),
                "senderIp": ip,
                "urls": [url],
                "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX",
                "threatTypes": ["PHISH"]
            }},
            { "verdict": "MALICIOUS", "url": { "url": url } },
            { "mailbox": { "primaryAddress": recipient } }
        ]
    })
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// CPU seconds used so far by each PostgreSQL process on the machine (backends of other users included).
pub fn postgres_cpu() -> HashMap<u32, f64> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return HashMap::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| (pid, cpu_secs(pid)))
        .collect()
}

/// PostgreSQL CPU seconds used since `before` (a `postgres_cpu` reading) by the processes alive now. A
/// backend that exited meanwhile took its CPU time with it: left out, rather than subtracted (a PID
/// reused since counts as new).
pub fn postgres_cpu_since(before: &HashMap<u32, f64>) -> f64 {
    postgres_cpu()
        .into_iter()
        .map(|(pid, now)| match before.get(&pid) {
            Some(b) if *b <= now => now - b,
            _ => now,
        })
        .sum()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// default 50 ms): a cheap profile of where ingestion spends its time in PostgreSQL. Sampling shares the
/// machine with what it measures (every 10 ms cost PostgreSQL about 9 % of a core), hence the default.
pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<HashMap<String, usize>>,
}

#[derive(diesel::QueryableByName)]
struct ActivityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    what: String,
}

impl Sampler {
    pub async fn start(db_url: &str) -> AnyResult<Sampler> {
        let mut conn = AsyncPgConnection::establish(db_url).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            use diesel_async::RunQueryDsl;
            let mut counts: HashMap<String, usize> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(sample_ms()));
            loop {
                tokio::select! {
                    _ = &mut stopped => return counts,
                    _ = tick.tick() => {}
                }
                let rows: Vec<ActivityRow> = diesel::sql_query(
                    "SELECT CASE WHEN state = 'active' THEN 'active' ELSE state END || ' | ' || \
                            COALESCE(wait_event_type || ':' || wait_event, 'on CPU') || ' | ' || \
                            left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS what \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                       AND state NOT IN ('idle') AND backend_type = 'client backend'",
                )
                .load(&mut conn)
                .await
                .unwrap_or_default();
                *counts.entry(String::from("(samples)")).or_default() += 1;
                for r in rows {
                    *counts.entry(r.what).or_default() += 1;
                }
            }
        });
        Ok(Sampler { stop, task })
    }

    pub async fn stop(self) -> HashMap<String, usize> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

pub fn sample_ms() -> u64 {
    env_usize("BENCH_SAMPLE_MS", 50).max(1) as u64
}

pub fn print_samples(counts: &HashMap<String, usize>) {
    let samples = counts.get("(samples)").copied().unwrap_or(0).max(1);
    let mut rows: Vec<(&String, &usize)> = counts.iter().filter(|(k, _)| k.as_str() != "(samples)").collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    let busy: usize = rows.iter().map(|(_, n)| **n).sum();
    println!(
        "  database sessions of this run, sampled every {} ms ({samples} samples, {:.2} sessions busy on average):",
        sample_ms(),
        busy as f64 / samples as f64
    );
    for (what, n) in rows.into_iter().take(12) {
        println!("    {:5.1} %  {what}", 100.0 * *n as f64 / busy.max(1) as f64);
    }
}
