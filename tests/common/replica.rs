//! A real `parapet serve` child process on a test database, for tests of several replicas and of
//! crashes: started on a free loopback port, ready when `/readyz` says so, killed (by its PID) when
//! dropped, also when a test panics.

use super::SECRET;
use serde_json::{json, Value};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `parapet serve` child process.
pub struct Replica {
    /// Its name in failure messages.
    pub name: &'static str,
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its last log lines.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Every log line (up to `WHOLE_LOG_LINES`), for tests that must see all of it.
    whole: Arc<Mutex<Vec<String>>>,
}

/// Most lines `Replica::whole_log` keeps.
const WHOLE_LOG_LINES: usize = 200_000;

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts a replica on `db_url` with `env` set besides the defaults, and waits until it is ready.
    pub async fn start(name: &'static str, db_url: &str, env: &[(&str, &str)]) -> Replica {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parapet"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("PARAPET_JWT_SECRET", std::str::from_utf8(SECRET).expect("the test secret is text"))
            .env("PARAPET_LISTEN", "127.0.0.1:0")
            .env("PARAPET_LOG_FORMAT", "json")
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start parapet serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let whole = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        {
            let (log, whole) = (log.clone(), whole.clone());
            // Drain the pipe for the child's whole life (a full pipe would block its logging), keeping
            // the last lines for failure messages and reporting the address it bound.
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if let Some(addr) = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok()) {
                            let _ = tx.send(addr);
                        }
                    }
                    if let Ok(mut w) = whole.lock() {
                        if w.len() < WHOLE_LOG_LINES {
                            w.push(line.clone());
                        }
                    }
                    if let Ok(mut l) = log.lock() {
                        if l.len() > 200 {
                            l.remove(0);
                        }
                        l.push(line);
                    }
                }
            });
        }
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("join")
            .unwrap_or_else(|_| panic!("replica {name} did not report its address: {:#?}", log.lock()));
        let replica = Replica { name, child, addr, log, whole };
        replica.wait_ready().await;
        replica
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("http://{}/readyz", self.addr)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {} never became ready: {:#?}",
                self.name,
                self.log.lock()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every line it logged so far.
    pub fn whole_log(&self) -> String {
        self.whole.lock().map(|w| w.join("\n")).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, by its PID: no shutdown, no rollback sent, no lease given back.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the replica");
        let status = self.child.wait().expect("reap the replica");
        assert!(!status.success(), "replica {} was killed, not ended: {status:?}", self.name);
    }

    /// POSTs a GraphQL request; returns the whole response.
    pub async fn post(&self, http: &reqwest::Client, token: &str, query: &str, variables: Value) -> Value {
        http.post(format!("http://{}/graphql", self.addr))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("HTTP request")
            .json()
            .await
            .expect("JSON response")
    }

    /// POSTs a GraphQL request; returns `data`, failing on any error.
    pub async fn gql(&self, http: &reqwest::Client, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.post(http, token, query, variables).await;
        assert!(resp.get("errors").is_none(), "replica {}: {resp:#}", self.name);
        resp["data"].clone()
    }
}
