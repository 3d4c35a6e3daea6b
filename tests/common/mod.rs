//! Test harness: a fresh database per test, cloned from a migrated template, and the real HTTP router
//! driven in-process with real JWTs.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parapet::auth::{mint_hs256, JwtVerifier, Role, TokenSpec};
use parapet::db::{self, PoolSettings};
use parapet::graphql::{build_schema, Limits};
use parapet::state::AppState;
use serde_json::{json, Value};
use tower::ServiceExt;

pub mod alerts;
pub mod dovecot;
pub mod replica;
pub mod seed;

/// The HS256 secret tests sign with.
pub const SECRET: &[u8] = b"parapet-test-secret";

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

static SERVER_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// URL of the server tests use: `DATABASE_URL`; else the local PostgreSQL on 127.0.0.1:5432 when something
/// answers there; else an embedded cluster under `target/tmp/test-pg`, started once and left running for
/// the next test process (parallel test processes share it; the launcher serialises their starts).
/// `PARAPET_TEST_EMBEDDED=1` forces the embedded cluster even when 5432 answers. Run as root in a clone
/// the `postgres` user cannot enter (inside `/root`), that cluster lives under the fallback root instead
/// (`PARAPET_FALLBACK_DATA_ROOT`, default `/var/lib/parapet`), as the server's default data dir does.
pub fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| {
            let force_embedded =
                std::env::var("PARAPET_TEST_EMBEDDED").is_ok_and(|v| !v.is_empty() && v != "0");
            if let (Ok(url), false) = (std::env::var("DATABASE_URL"), force_embedded) {
                return url;
            }
            let local = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
            if !force_embedded
                && std::net::TcpStream::connect_timeout(&local, std::time::Duration::from_secs(1)).is_ok()
            {
                return "postgres://postgres@127.0.0.1:5432/postgres".into();
            }
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-pg");
            eprintln!(
                "tests: no DATABASE_URL and nothing on 127.0.0.1:5432 (or PARAPET_TEST_EMBEDDED set); \
                 using the embedded PostgreSQL in {}",
                dir.display()
            );
            let pg = parapet::db::embedded::EmbeddedPg::start_or_relocate(
                &dir,
                &parapet::db::embedded::Options { fast: true },
                &parapet::db::embedded::fallback_root(),
            )
            .expect("start the embedded PostgreSQL for tests");
            if !pg.data_dir().starts_with(&dir) {
                eprintln!(
                    "tests: the postgres user cannot reach {}; the test cluster lives in {}",
                    dir.display(),
                    pg.data_dir().display()
                );
            }
            let url = pg.url("postgres");
            pg.leave_running();
            url
        })
        .clone()
}

/// `base` with its database name replaced.
pub fn with_db(base: &str, db: &str) -> String {
    let mut u = url::Url::parse(base).expect("DATABASE_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&server_url()).await.expect("connect to the test PostgreSQL server")
}

/// Name of the template, tied to the migrations' content so a change makes a new one.
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    for p in entries {
        h.update(p.to_string_lossy().as_bytes());
        h.update(std::fs::read(&p).unwrap_or_default());
    }
    format!("parapet_tpl_{}", &hex::encode(h.finalize())[..16])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut conn = admin().await;
            // Serialise template creation across test processes.
            conn.batch_execute("SELECT pg_advisory_lock(7263541)").await.expect("lock");
            let exists: bool = {
                use diesel_async::RunQueryDsl;
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
                )))
                .get_result(&mut conn)
                .await
                .expect("query pg_database")
            };
            if !exists {
                let tmp = format!("{name}_tmp");
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {tmp} WITH (FORCE)"))
                    .await
                    .expect("drop tmp");
                conn.batch_execute(&format!("CREATE DATABASE {tmp}")).await.expect("create template");
                db::run_migrations(&with_db(&server_url(), &tmp)).await.expect("migrate template");
                conn.batch_execute(&format!("ALTER DATABASE {tmp} RENAME TO {name}")).await.expect("rename");
                // Templates of older migrations are of no further use.
                let stale: Vec<String> = {
                    use diesel_async::RunQueryDsl;
                    #[derive(diesel::QueryableByName)]
                    struct Db {
                        #[diesel(sql_type = diesel::sql_types::Text)]
                        datname: String,
                    }
                    diesel::sql_query(
                        "SELECT datname FROM pg_database WHERE datname LIKE 'parapet\\_tpl\\_%'",
                    )
                    .load::<Db>(&mut conn)
                    .await
                    .map(|rows| rows.into_iter().map(|d| d.datname).filter(|d| *d != name).collect())
                    .unwrap_or_default()
                };
                for db in stale {
                    let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await;
                }
            }
            conn.batch_execute("SELECT pg_advisory_unlock(7263541)").await.expect("unlock");
            name
        })
        .await
        .clone()
}

/// A fresh database and the app on it.
pub struct TestApp {
    /// The state (pool, verifier).
    pub state: AppState,
    /// The HTTP router, driven in-process.
    pub router: axum::Router,
    /// URL of this test's database.
    pub db_url: String,
    /// The schema, for in-process subscriptions.
    pub schema: parapet::graphql::AppSchema,
    db_name: String,
}

impl TestApp {
    /// Creates a database from the template and builds the app on it.
    pub async fn new() -> Self {
        Self::with_pool_size(10).await
    }

    /// `new`, with a pool of at most `max_size` connections.
    pub async fn with_pool_size(max_size: usize) -> Self {
        Self::with_pool(PoolSettings { max_size, statement_timeout_ms: 60_000, ..Default::default() }).await
    }

    /// `new`, with these pool settings.
    pub async fn with_pool(settings: PoolSettings) -> Self {
        let tpl = template().await;
        let db_name = format!("parapet_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        conn.batch_execute(&format!("CREATE DATABASE {db_name} TEMPLATE {tpl}"))
            .await
            .expect("create test db");
        let db_url = with_db(&server_url(), &db_name);
        let pool = db::build_pool(&db_url, &settings).expect("pool");
        let key = parapet::domain::secret::SecretKey::from_bytes(&[42; 32]).expect("test key");
        let state = AppState::new(pool, JwtVerifier::hs256(SECRET, "parapet", "parapet"))
            .with_secret_key(Some(key))
            .with_mail(std::time::Duration::from_secs(5), std::time::Duration::ZERO);
        let schema = build_schema(state.clone(), &Limits::default());
        let router = parapet::http::router(state.clone(), schema.clone());
        Self { state, router, db_url, schema, db_name }
    }

    /// Starts a job runner on this app's database with the server's handlers (short polls and leases,
    /// for tests). Abort the handle to stop it.
    pub fn start_jobs(&self) -> tokio::task::JoinHandle<()> {
        use std::time::Duration;
        parapet::jobs::runner::spawn(
            self.state.pool.clone(),
            self.state.metrics.clone(),
            parapet::jobs::runner::RunnerSettings {
                workers: 2,
                lease: Duration::from_secs(5),
                poll: Duration::from_millis(50),
                backoff_base: Duration::from_millis(200),
                backoff_cap: Duration::from_secs(2),
                ..Default::default()
            },
            parapet::work::handler(self.state.pool.clone(), self.state.mail.clone()),
        )
    }

    /// A valid token for `sub` in `tenant` with `roles`.
    pub fn token(&self, tenant: &str, sub: &str, roles: &[Role]) -> String {
        token_with(tenant, sub, roles, None, 3600)
    }

    /// Sends a GraphQL request over the router; returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) =
            self.post_json("/graphql", token, json!({ "query": query, "variables": variables })).await;
        assert!(status.is_success() || status == StatusCode::BAD_REQUEST, "HTTP {status}: {body}");
        body
    }

    /// Sends a GraphQL request and returns `data`, failing the test on any error.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.gql(Some(token), query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    /// Sends a GraphQL request that must fail; returns the first error's `extensions.code`.
    pub async fn err_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let resp = self.gql(token, query, variables).await;
        let code = resp["errors"][0]["extensions"]["code"].as_str();
        assert!(code.is_some(), "expected an error with a code, got {resp:#}");
        code.unwrap_or_default().to_string()
    }

    /// POSTs JSON to a path; returns the status and the JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = Request::post(path).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(body.to_string())).expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
        (status, v)
    }
}

impl TestApp {
    /// This app served with these HTTP options (limits, request timeout) instead of the defaults.
    pub fn with_http(mut self, options: parapet::http::HttpOptions) -> Self {
        self.router = parapet::http::router_with(self.state.clone(), self.schema.clone(), &options);
        self
    }

    /// GETs a path; returns the status, the headers and the body as text.
    pub async fn get_text(&self, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 << 20).await.expect("body");
        (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl TestApp {
    /// Starts a subscription in-process as `token`'s caller; items are whole GraphQL responses.
    pub async fn subscribe(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> std::pin::Pin<Box<dyn futures::Stream<Item = Value> + Send>> {
        use futures::StreamExt;
        let caller = self.state.authenticate(&format!("Bearer {token}")).await;
        let mut req =
            async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
        if let Ok(c) = caller {
            req = req.data(c);
        }
        // Drive the stream from a task at once (as a WebSocket server would), so the subscription
        // starts now rather than at the first poll.
        let mut inner = self.schema.execute_stream(req);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(r) = inner.next().await {
                if tx.send(serde_json::to_value(r).unwrap_or(Value::Null)).is_err() {
                    return;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
    }
}

impl TestApp {
    /// Waits until this process holds at least `n` live subscribers for `tenant` (a subscription
    /// starts asynchronously; events committed before it starts are not "live" for it).
    pub async fn wait_subscribers(&self, tenant: &str, n: usize) {
        for _ in 0..200 {
            if self.state.hub.subscribers(tenant).await >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{n} subscriber(s) for {tenant} did not start within 5 s");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let name = self.db_name.clone();
        // Drop the database from a separate runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = AsyncPgConnection::establish(&server_url()).await {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// A token with every knob: service source claim and lifetime (negative for an expired token).
pub fn token_with(tenant: &str, sub: &str, roles: &[Role], svc: Option<&str>, ttl_secs: i64) -> String {
    mint_hs256(
        &TokenSpec {
            tenant: tenant.into(),
            sub: sub.into(),
            name: Some(sub.split('@').next().unwrap_or(sub).to_string()),
            roles: roles.to_vec(),
            svc: svc.map(Into::into),
            ttl_secs,
        },
        SECRET,
        "parapet",
        "parapet",
    )
    .expect("mint token")
}

/// A `DateTime` field of a response, to compare instants (their text drops a zero fraction).
pub fn ts(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).expect("an RFC 3339 date-time")
}

/// The next item of a subscription stream within 10 s, which must carry no error; returns its `data`.
pub async fn next_data(s: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    use futures::StreamExt;
    let v = tokio::time::timeout(std::time::Duration::from_secs(10), s.next())
        .await
        .expect("an event within 10 s")
        .expect("open stream");
    assert!(v.get("errors").is_none() || v["errors"].is_null(), "{v:#}");
    v["data"].clone()
}
