//! A newcomer who is root: `parapet serve` with no configuration, run from a clone inside a folder the
//! `postgres` user cannot enter (mode 0700, as `/root` is), keeps its embedded cluster under the fallback
//! root, says where in the log, and reuses it (with its data) on the next start; a data dir set explicitly
//! inside such a folder still fails and says why.
//!
//! Meaningful only as root on a machine with the PostgreSQL binaries and a `postgres` user; elsewhere it
//! prints `SKIPPED: <reason>` and passes. The fallback root is a fresh folder under the temp dir (through
//! `PARAPET_FALLBACK_DATA_ROOT`), so `/var/lib/parapet` is never touched.

mod common;

use common::{token_with, SECRET};
use parapet::auth::Role;
use parapet::db::embedded;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_parapet");

/// The `postgres` user's uid and gid, from `id`.
fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Whether the `postgres` user can search `dir` (so the fallback root made under it is usable).
fn postgres_can_enter(dir: &Path, (uid, gid): (u32, u32)) -> bool {
    use std::os::unix::process::CommandExt;
    Command::new("test")
        .arg("-x")
        .arg(dir)
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .status()
        .is_ok_and(|s| s.success())
}

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (the relocation only happens for root)".into());
    }
    let Some(ids) = postgres_ids() else {
        return Some("no `postgres` system user".into());
    };
    if let Err(e) = embedded::find_binaries(None) {
        return Some(format!("no PostgreSQL binaries: {e:#}"));
    }
    let tmp = std::env::temp_dir();
    if !postgres_can_enter(&tmp, ids) {
        return Some(format!("the `postgres` user cannot enter the temp dir {}", tmp.display()));
    }
    None
}

/// Everything the test made, undone even when an assertion fails: the server it started (by PID), the
/// PostgreSQL under the fallback root (by the PID in `postmaster.pid`), and the folders.
struct Scene {
    base: PathBuf,
    fallback: PathBuf,
    server: Option<Child>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(entries) = std::fs::read_dir(&self.fallback) {
            for e in entries.flatten() {
                stop_postgres(&e.path().join("data"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Stops the postmaster named by `<pgdata>/postmaster.pid`, if it is still a postgres process.
fn stop_postgres(pgdata: &Path) {
    let Some(pid) = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
    else {
        return;
    };
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| matches!(c.trim(), "postgres" | "postmaster"))
    };
    if !alive() {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; SIGINT asks the postmaster for a fast shutdown.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mkdir(dir: &Path, mode: u32) {
    std::fs::create_dir_all(dir).expect("create a test folder");
    // Set after creation: the umask would otherwise trim it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod a test folder");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

/// `parapet` run from `cwd` as a newcomer would: none of Parapet's variables set, except the fallback
/// root (so the test keeps out of /var/lib/parapet), a port, and a known JWT secret.
fn parapet(cwd: &Path, fallback: &Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("PARAPET_") || var == "DATABASE_URL" {
            cmd.env_remove(var);
        }
    }
    cmd.current_dir(cwd)
        .env(embedded::FALLBACK_ROOT_VAR, fallback)
        .env("PARAPET_LISTEN", format!("127.0.0.1:{port}"))
        .env("PARAPET_JWT_SECRET", std::str::from_utf8(SECRET).expect("the test secret is text"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// Copies a child's output into `log` from a thread of its own.
fn collect(from: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if let Ok(mut l) = log.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
}

fn text(log: &Arc<Mutex<String>>) -> String {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Starts `parapet serve` and waits until `/readyz` says ready; returns its log.
async fn serve(scene: &mut Scene, cwd: &Path, port: u16) -> Arc<Mutex<String>> {
    let mut child = parapet(cwd, &scene.fallback, port)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn parapet serve");
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(out) = child.stdout.take() {
        collect(out, log.clone());
    }
    if let Some(err) = child.stderr.take() {
        collect(err, log.clone());
    }
    scene.server = Some(child);
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            if r.status().is_success() {
                return log;
            }
        }
        if let Some(child) = scene.server.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("serve exited early with {status}; its log:\n{}", text(&log));
            }
        }
        assert!(started.elapsed() < Duration::from_secs(180), "serve not ready in 180 s:\n{}", text(&log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops the server with SIGTERM, as a terminal or a supervisor would, and checks it stopped cleanly.
async fn stop(scene: &mut Scene, log: &Arc<Mutex<String>>) {
    let mut child = scene.server.take().expect("a running server");
    // SAFETY: kill has no memory-safety preconditions; the PID is our own child's.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "SIGTERM the server");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the server") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM:\n{}", text(log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "serve exited with {status}:\n{}", text(log));
}

async fn graphql(port: u16, token: &str, query: &str, variables: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST /graphql");
    let v: Value = r.json().await.expect("a JSON response");
    assert!(v.get("errors").is_none(), "unexpected errors: {v:#}");
    v["data"].clone()
}

const INGEST: &str =
    "mutation Ingest($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) { accepted } }";

fn alert() -> Value {
    json!([{
        "providerAlertId": "newcomer-1", "serviceSource": "microsoftDefenderForOffice365",
        "detectionSource": "microsoftDefenderForOffice365",
        "alertPolicy": "Email messages containing malicious URL removed after delivery",
        "title": "Email messages containing malicious URL removed after delivery",
        "severity": "HIGH", "category": "InitialAccess",
        "firstActivityAt": "2026-11-26T09:00:00Z",
        "evidence": [{ "verdict": "MALICIOUS", "email": {
            "networkMessageId": "5f1c9a52-0001-4d1c-9a1e-000000000001", "recipient": "bob@contoso.com",
            "envelopeSender": "billing@evil.example", "headerFrom": "billing@evil.example",
            "subject": "Your invoice is overdue", "receivedAt": "2026-11-26T09:00:00Z",
            "urls": ["https://evil.example/pay"], "deliveryAction": "DELIVERED",
            "latestDeliveryLocation": "INBOX", "threatTypes": ["PHISH"] } }]
    }])
}

#[tokio::test]
async fn root_in_a_private_home_gets_a_relocated_cluster_and_keeps_it() {
    if let Some(reason) = skip_reason() {
        println!("SKIPPED: {reason}");
        return;
    }
    let base = std::env::temp_dir().join(format!("parapet-newcomer-{}", uuid::Uuid::new_v4().simple()));
    mkdir(&base, 0o755);
    let base = base.canonicalize().expect("resolve the test folder");
    let mut scene = Scene { fallback: base.join("fallback"), base: base.clone(), server: None };
    // /root-like: only root may enter `home`.
    let home = base.join("home");
    mkdir(&home, 0o700);
    let clone = home.join("parapet");
    mkdir(&clone, 0o755);
    let requested = clone.join(".parapet").join("pg");
    let relocated = embedded::relocated_dir(&scene.fallback, &clone.join(".parapet"));

    // A data dir chosen explicitly inside `home` is not moved: the start fails and says why.
    let out = parapet(&clone, &scene.fallback, free_port())
        .env("PARAPET_DATA_DIR", clone.join("chosen"))
        .arg("serve")
        .output()
        .expect("run parapet serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unreachable explicit data dir must fail:\n{err}");
    assert!(err.contains(&format!("chmod o+x {}", home.display())), "{err}");
    assert!(!scene.fallback.exists(), "nothing relocated for an explicit data dir");

    // First start: a new cluster under the fallback root, named in the log.
    let port = free_port();
    let log = serve(&mut scene, &clone, port).await;
    let ingestor = token_with("contoso", "gateway@contoso.com", &[Role::Ingestor], None, 3600);
    let data = graphql(port, &ingestor, INGEST, json!({ "alerts": alert() })).await;
    assert_eq!(data["ingestAlerts"]["accepted"], 1, "{data:#}");
    stop(&mut scene, &log).await;
    let first = text(&log);
    let line = first
        .lines()
        .find(|l| l.contains("cannot reach") && l.contains(&relocated.display().to_string()))
        .unwrap_or_else(|| panic!("no log line names {}:\n{first}", relocated.display()));
    assert!(line.contains(&requested.display().to_string()), "names the requested dir too: {line}");

    let (pg_uid, _) = postgres_ids().expect("postgres ids");
    let fallback_meta = std::fs::metadata(&scene.fallback).expect("the fallback root exists");
    assert_eq!(fallback_meta.mode() & 0o7777, 0o755, "fallback root mode");
    let meta = std::fs::metadata(&relocated).expect("the relocated cluster folder exists");
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (pg_uid, 0o700), "owned by postgres, mode 0700");
    assert!(relocated.join("data").join("PG_VERSION").is_file(), "a cluster in {}", relocated.display());
    assert!(!relocated.join("data").join("postmaster.pid").exists(), "serve stopped its PostgreSQL");
    assert!(!requested.exists(), "nothing left half-made in the unreachable data dir");

    // Second start: the same cluster, with the alert of the first run.
    let port = free_port();
    let log = serve(&mut scene, &clone, port).await;
    let analyst = token_with("contoso", "alice@contoso.com", &[Role::Analyst], None, 3600);
    let data = graphql(port, &analyst, "{ incidents(first: 5) { totalCount } }", json!({})).await;
    assert_eq!(data["incidents"]["totalCount"], 1, "the first run's incident is still there: {data:#}");
    stop(&mut scene, &log).await;
    let second = text(&log);
    assert!(
        second.lines().any(|l| l.contains("reusing the embedded PostgreSQL cluster kept in")
            && l.contains(&relocated.display().to_string())),
        "the log says the relocated cluster was reused:\n{second}"
    );
    let clusters = std::fs::read_dir(&scene.fallback).map(|d| d.count()).unwrap_or(0);
    assert_eq!(clusters, 1, "one cluster for one clone");
}
