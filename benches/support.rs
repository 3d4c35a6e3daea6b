//! What the benchmarks share: a fresh database, a release `parapet serve` on it, tokens, and alerts.

#![allow(dead_code)] // each bench uses its own part of this module

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let mut url = url::Url::parse(&server_url)?;
        url.set_path(&format!("/{name}"));
        Ok(Database { server_url, name, url: url.to_string() })
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
