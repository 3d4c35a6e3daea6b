//! The `parapet` binary: `schema`, `token` (and the secret it signs with), `serve` start-up and shutdown,
//! and the embedded PostgreSQL launcher.

mod common;

use common::*;
use parapet::auth::{JwtVerifier, Role};
use parapet::db::embedded::{EmbeddedPg, Options};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_parapet");

/// A fresh folder under the target dir (not a 0700 mktemp folder: the cluster user must reach it).
fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A scratch directory the `postgres` user can reach even when the checkout cannot be entered by others
/// (a `mktemp -d` clone is mode 0700): run as root, the embedded PostgreSQL runs as `postgres`.
fn reachable_scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parapet-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

/// The binary with a clean environment for Parapet's variables.
fn parapet(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "PARAPET_JWT_SECRET",
        "PARAPET_JWT_PUBLIC_KEY",
        "PARAPET_ENV",
        "PARAPET_LISTEN",
        "PARAPET_JWT_ISSUER",
        "PARAPET_JWT_AUDIENCE",
        "PARAPET_SECRET_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PARAPET_DATA_DIR", data_dir);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run parapet")
}

/// Runs a command expected to exit soon; a command still running after `secs` is killed and fails the
/// test (a server that should have refused to start).
fn run_expecting_exit(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run parapet");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it kept running for {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn secret() -> &'static str {
    std::str::from_utf8(SECRET).expect("test secret is text")
}

#[test]
fn schema_prints_the_sdl() {
    let dir = scratch("cli-schema");
    let out = run(parapet(&dir).arg("schema"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), parapet::graphql::sdl());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_minted_token_works_against_the_api() {
    let dir = scratch("cli-token");
    let out = run(parapet(&dir).env("PARAPET_JWT_SECRET", secret()).args([
        "token",
        "--tenant",
        "contoso",
        "--sub",
        "alice@contoso.com",
        "--name",
        "Alice Analyst",
        "--role",
        "analyst",
        "--role",
        "reader",
        "--ttl",
        "30m",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();

    let app = TestApp::new().await;
    let data = app.ok(&token, "{ me { sub name tenantId roles } }", json!({})).await;
    assert_eq!(data["me"]["sub"], "alice@contoso.com");
    assert_eq!(data["me"]["name"], "Alice Analyst");
    assert_eq!(data["me"]["tenantId"], "contoso");
    assert_eq!(data["me"]["roles"], json!(["ANALYST", "READER"]));
    let caller = app.state.verifier.verify(&token).expect("verifies");
    let ttl = caller.expires_at - chrono::Utc::now().timestamp();
    assert!((1790..=1800).contains(&ttl), "ttl {ttl}");

    // An ingestor token with a service source.
    let out = run(parapet(&dir).env("PARAPET_JWT_SECRET", secret()).args([
        "token",
        "--tenant",
        "contoso",
        "--sub",
        "gateway@contoso.com",
        "--role",
        "ingestor",
        "--svc",
        "microsoftDefenderForOffice365",
        "--ttl",
        "2d",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let caller = app.state.verifier.verify(stdout(&out).trim()).expect("verifies");
    assert_eq!(caller.roles, vec![Role::Ingestor]);
    assert_eq!(caller.svc.as_deref(), Some("microsoftDefenderForOffice365"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_arguments_are_checked() {
    let dir = scratch("cli-args");
    let base = ["token", "--tenant", "contoso", "--sub", "a@contoso.com"];
    let out = run(parapet(&dir).env("PARAPET_JWT_SECRET", secret()).args(base).args(["--role", "boss"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown role"), "{}", stderr(&out));
    let out = run(parapet(&dir)
        .env("PARAPET_JWT_SECRET", secret())
        .args(base)
        .args(["--role", "reader", "--ttl", "8x"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("duration unit"), "{}", stderr(&out));
    let out = run(parapet(&dir).env("PARAPET_JWT_SECRET", secret()).args(base));
    assert!(!out.status.success(), "a role is required");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn development_generates_a_secret_once_and_keeps_it() {
    let dir = scratch("cli-devsecret");
    let mint = || {
        let out =
            run(parapet(&dir).args(["token", "--tenant", "t1", "--sub", "a@t1.com", "--role", "reader"]));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let first = mint();
    let file = dir.join("jwt-secret");
    let secret = std::fs::read_to_string(&file).expect("secret file written");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let second = mint();
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), secret, "the secret is kept");
    let verifier = JwtVerifier::hs256(secret.trim().as_bytes(), "parapet", "parapet");
    assert!(verifier.verify(&first).is_ok() && verifier.verify(&second).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn production_needs_a_configured_key() {
    let dir = scratch("cli-prod");
    let out = run(parapet(&dir)
        .env("PARAPET_ENV", "production")
        .args(["token", "--tenant", "t1", "--sub", "a@t1.com", "--role", "reader"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PARAPET_JWT_SECRET"), "{}", stderr(&out));
    assert!(!dir.join("jwt-secret").exists(), "production never generates a secret");

    // `serve` refuses before touching any database.
    let out = run(parapet(&dir)
        .env("PARAPET_ENV", "production")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("serve"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PARAPET_JWT_PUBLIC_KEY"), "{}", stderr(&out));

    // With a public key, `token` cannot mint (HS256 is refused by such a server).
    let pem = dir.join("key.pem");
    std::fs::write(&pem, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").expect("write");
    let out = run(parapet(&dir)
        .env("PARAPET_JWT_PUBLIC_KEY", &pem)
        .args(["token", "--tenant", "t1", "--sub", "a@t1.com", "--role", "reader"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PARAPET_JWT_PUBLIC_KEY"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn production_refuses_to_start_without_the_key_a_mail_server_password_was_sealed_with() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "ada@contoso.com", &[Role::Admin]);
    app.ok(
        &admin,
        "mutation { configureMailServer(input: { host: \"imap.contoso.com\", masterUser: \"m\", masterPassword: \"pw\" }) { host } }",
        json!({}),
    )
    .await;
    let dir = scratch("cli-prod-key");
    let out = run_expecting_exit(
        parapet(&dir)
            .env("PARAPET_ENV", "production")
            .env("PARAPET_JWT_SECRET", secret())
            .env("DATABASE_URL", &app.db_url)
            .env("PARAPET_LISTEN", "127.0.0.1:0")
            .arg("serve"),
        30,
    );
    assert!(!out.status.success(), "production started without the key");
    assert!(stderr(&out).contains("PARAPET_SECRET_KEY"), "{}", stderr(&out));
    assert!(!dir.join("secret-key").exists(), "production never generates a key");
    // A key that is not 32 bytes is refused by name, in any environment.
    let out = run_expecting_exit(
        parapet(&dir)
            .env("PARAPET_JWT_SECRET", secret())
            .env("PARAPET_SECRET_KEY", "too-short")
            .env("DATABASE_URL", &app.db_url)
            .env("PARAPET_LISTEN", "127.0.0.1:0")
            .arg("serve"),
        30,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PARAPET_SECRET_KEY"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn serve_starts_answers_and_stops_on_sigterm() {
    let app = TestApp::new().await;
    let dir = scratch("cli-serve");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let mut child = parapet(&dir)
        .env("DATABASE_URL", &app.db_url)
        .env("PARAPET_JWT_SECRET", secret())
        .env("PARAPET_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            assert!(r.status().is_success());
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early with {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    let r = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&t)
        .json(&json!({ "query": "{ me { sub } }" }))
        .send()
        .await
        .expect("graphql");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["data"]["me"]["sub"], "alice@contoso.com");

    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "serve exited with {status}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn embedded_postgres_starts_stops_and_keeps_its_data() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    let dir = reachable_scratch("embedded");

    let start = {
        let dir = dir.clone();
        move || {
            let dir = dir.clone();
            async move {
                tokio::task::spawn_blocking(move || EmbeddedPg::start(&dir, &Options { fast: true }))
                    .await
                    .expect("join")
                    .expect("embedded PostgreSQL starts")
            }
        }
    };

    let mut pg = start().await;
    assert!(pg.started_here());
    let url = pg.ensure_database("parapet").await.expect("database");
    assert!(url.starts_with("postgres://postgres@%2F"), "{url}");
    // The URL form the test harness rewrites (`with_db`) keeps working.
    assert_eq!(with_db(&url, "parapet"), url);
    parapet::db::run_migrations(&url).await.expect("migrations");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect over the socket");
    conn.batch_execute("CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('still here')")
        .await
        .expect("write");
    drop(conn);
    let listens: Vec<String> = {
        let mut c = AsyncPgConnection::establish(&url).await.expect("connect");
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::Text)]
            setting: String,
        }
        let rows: Vec<S> =
            diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'listen_addresses'")
                .load(&mut c)
                .await
                .expect("settings");
        rows.into_iter().map(|r| r.setting).collect()
    };
    assert_eq!(listens, vec![String::new()], "no TCP listener");
    let data_dir = pg.data_dir().to_path_buf();
    tokio::task::spawn_blocking(move || pg.stop().map(|_| pg)).await.expect("join").expect("stops");
    assert!(!data_dir.join("postmaster.pid").exists(), "stopped cleanly");

    // A crash leaves a postmaster.pid naming a PID that now belongs to something else (here: us).
    std::fs::write(
        data_dir.join("postmaster.pid"),
        format!("{}\n{}\n0\n5432\n/nonexistent\n\n", std::process::id(), data_dir.display()),
    )
    .expect("fake stale pid file");

    let mut pg = start().await;
    assert!(pg.started_here(), "started again despite the stale pid file");
    let url = pg.ensure_database("parapet").await.expect("database");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect again");
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let rows: Vec<V> = diesel::sql_query("SELECT v FROM kept").load(&mut conn).await.expect("read");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].v, "still here");
    drop(conn);

    // Starting while it runs adopts it instead of starting a second server.
    let adopted = start().await;
    assert!(!adopted.started_here());
    drop(adopted); // not ours: dropping leaves it running
    let mut conn = AsyncPgConnection::establish(&url).await.expect("still running");
    conn.batch_execute("SELECT 1").await.expect("query");
    drop(conn);

    tokio::task::spawn_blocking(move || pg.stop().map(|_| pg)).await.expect("join").expect("stops");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn embedded_postgres_explains_an_unreachable_data_dir() {
    // Only meaningful as root, where the cluster runs as the `postgres` user.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let outer = scratch("locked");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let err = EmbeddedPg::start(&outer.join("data"), &Options::default()).expect_err("cannot reach");
    let msg = format!("{err:#}");
    assert!(msg.contains("chmod o+x") && msg.contains(&outer.display().to_string()), "{msg}");
    assert!(msg.contains("PARAPET_DATA_DIR") && msg.contains("DATABASE_URL"), "{msg}");
    let _ = std::fs::remove_dir_all(outer);
}
