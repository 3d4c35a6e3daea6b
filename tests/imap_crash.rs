//! kill -9 in the middle of remediation on a real mail server (issue 12): a replica is killed while it is
//! moving messages in a private Dovecot (reached through a loopback proxy that slows every exchange, so
//! the kill lands inside a step: messages moved, nothing recorded yet). Another replica takes the job
//! over: every message ends in the destination exactly once, none is left in the inbox, the messages the
//! killed run had moved are `ALREADY_IN_DESTINATION`, and each copy's timeline holds one remediation.

mod common;

use common::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use common::replica::Replica;
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TENANT: &str = "acme";
const SENDER: &str = "billing@crash.example";
const USERS: usize = 24;
const PER_USER: usize = 5;
/// Added to every chunk each way through the proxy.
const DELAY: Duration = Duration::from_millis(8);

fn env(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PARAPET_JOB_LEASE_SECS", "2".to_string()),
        ("PARAPET_JOB_WORKERS", "2".to_string()),
        ("PARAPET_MAIL_TIMEOUT_SECS", "5".to_string()),
        ("PARAPET_MAIL_RETRY_SECS", "0".to_string()),
        ("PARAPET_SECRET_KEY", key.to_string()),
    ]
}

/// Copies bytes from `from` to `to`, each chunk after `DELAY`.
async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tokio::time::sleep(DELAY).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A loopback proxy to `port` that slows every exchange; returns its port.
async fn slow_proxy(port: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let at = listener.local_addr().expect("proxy address").port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { continue };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw));
            tokio::spawn(pipe(sr, cw));
        }
    });
    (at, task)
}

async fn ok(r: &Replica, http: &reqwest::Client, token: &str, q: &str, v: Value) -> Value {
    let resp = r.post(http, token, q, v).await;
    assert!(resp.get("errors").is_none(), "{q}: {resp:#}");
    resp["data"].clone()
}

async fn moved_so_far(dc: &Dovecot, users: &[String]) -> usize {
    let mut n = 0;
    for u in users.iter().take(8) {
        n += dc.message_ids(u, "Recoverable Items").await.len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_step_on_a_mail_server_moves_nothing_twice_and_loses_nothing() {
    let users: Vec<String> = (0..USERS).map(|u| format!("u{u:02}@acme.test")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let Some(dc) = Dovecot::start("imap_crash: kill -9 mid-step", &refs).await else { return };
    let (proxy_port, proxy) = slow_proxy(dc.imap_port).await;
    let app = TestApp::new().await;
    let http = reqwest::Client::new();
    let gw = app.token(TENANT, "gw@acme.test", &[Role::Ingestor]);
    let analyst = app.token(TENANT, "ann@acme.test", &[Role::Analyst]);
    let responder = app.token(TENANT, "rob@acme.test", &[Role::Responder]);
    let admin = app.token(TENANT, "ada@acme.test", &[Role::Admin]);
    let key = "5c".repeat(32);
    let env = env(&key);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut a = Replica::start("A", &app.db_url, &env).await;

    let configure = "mutation($i: ConfigureMailServerInput!) { configureMailServer(input: $i) { host } }";
    let input = json!({ "i": { "host": "127.0.0.1", "port": proxy_port, "tls": "NONE", "masterUser": MASTER_USER,
                               "masterPassword": MASTER_PASSWORD, "sievePort": dc.sieve_port } });
    ok(&a, &http, &admin, configure, input).await;
    let received = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut records = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for m in 0..PER_USER {
            let mid = format!("<c{u}-{m}@crash.example>");
            dc.append(user, "INBOX", &mid, "Invoice", SENDER).await;
            records.push(json!({
                "networkMessageId": format!("crash-{u}-{m}"), "internetMessageId": mid, "recipient": user,
                "receivedAt": received.to_rfc3339(), "envelopeSender": SENDER, "headerFrom": SENDER,
                "subject": "Invoice", "deliveryAction": "DELIVERED",
            }));
        }
    }
    let push =
        "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { rejected items { email { id } } } }";
    let pushed = ok(&a, &http, &gw, push, json!({ "e": records })).await;
    assert_eq!(pushed["ingestEmails"]["rejected"], 0, "{pushed:#}");
    let ids: Vec<String> = pushed["ingestEmails"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["email"]["id"].as_str().expect("id").to_string())
        .collect();
    let propose = "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id targetCount } }";
    let p = ok(
        &a,
        &http,
        &analyst,
        propose,
        json!({ "i": { "filter": { "sender": SENDER }, "action": "SOFT_DELETE" } }),
    )
    .await;
    let total = USERS * PER_USER;
    assert_eq!(p["remediateEmails"]["targetCount"], total);
    let id = p["remediateEmails"]["id"].as_str().expect("id").to_string();
    ok(
        &a,
        &http,
        &responder,
        "mutation($id: ID!) { approveAction(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;

    // Kill A once messages are moving in the mailboxes and before it recorded any of it.
    let progress = "query($id: ID!) { action(id: $id) { status successCount alreadyInDestinationCount \
        failedCount notFoundCount openTargetCount targets(first: 5) { nodes { emailId outcome attempts error } } } }";
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let n = moved_so_far(&dc, &users).await;
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "nothing moved within 60 s: {:#?}", a.log.lock());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    a.kill();
    drop(a);
    let b = Replica::start("B", &app.db_url, &env).await;
    let at_kill = ok(&b, &http, &responder, progress, json!({ "id": id })).await["action"].clone();
    eprintln!(
        "killed A after seeing {seen} messages moved; it had recorded {} of {total}",
        at_kill["successCount"]
    );
    assert_eq!(at_kill["status"], "RUNNING", "the kill landed after the action ended: {at_kill:#}");

    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let d = ok(&b, &http, &responder, progress, json!({ "id": id })).await["action"].clone();
        if d["status"] != "RUNNING" && d["status"] != "APPROVED" {
            break d;
        }
        assert!(Instant::now() < deadline, "not done within 90 s of B's start: {d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    proxy.abort();
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let (success, already) =
        (done["successCount"].as_u64().unwrap_or(0), done["alreadyInDestinationCount"].as_u64().unwrap_or(0));
    assert_eq!(
        (done["failedCount"].clone(), done["notFoundCount"].clone()),
        (json!(0), json!(0)),
        "{done:#}"
    );
    assert_eq!(success + already, total as u64, "{done:#}");
    assert!(
        already >= seen as u64,
        "the {seen} messages A moved without recording are already there: {done:#}"
    );
    for user in &users {
        assert_eq!(dc.message_ids(user, "INBOX").await, Vec::<String>::new(), "{user}'s inbox");
        let there = dc.message_ids(user, "Recoverable Items").await;
        let mut unique = there.clone();
        unique.dedup();
        assert_eq!((there.len(), unique.len()), (PER_USER, PER_USER), "{user}: each message once: {there:?}");
    }
    let q = "query($id: ID!) { email(id: $id) { latestDeliveryLocation timeline { kind } } }";
    for id in &ids {
        let e = ok(&b, &http, &responder, q, json!({ "id": id })).await["email"].clone();
        assert_eq!(e["latestDeliveryLocation"], "SOFT_DELETED", "{e:#}");
        let n = e["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter(|t| t["kind"] == "MANUAL_REMEDIATION")
            .count();
        assert_eq!(n, 1, "one remediation event per copy: {e:#}");
    }
}
