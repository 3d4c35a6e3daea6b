//! Timeouts and back-pressure: a request waits a bounded time for a database connection (HTTP 503
//! when nothing ran yet), a request past `PARAPET_REQUEST_TIMEOUT` is stopped with `UNAVAILABLE` and
//! its transaction rolled back, and the server stays usable afterwards.

mod common;

use common::alerts::*;
use common::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parapet::auth::Role;
use parapet::db::PoolSettings;
use parapet::http::HttpOptions;
use serde_json::json;
use std::time::{Duration, Instant};

const ALERTS: &str = "query { alerts(first: 5) { totalCount nodes { providerAlertId } } }";

#[tokio::test]
async fn waiting_for_a_connection_is_bounded() {
    let app =
        TestApp::with_pool(PoolSettings { max_size: 1, statement_timeout_ms: 10_000, wait_timeout_ms: 300 })
            .await;
    let known = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    // The tenant is created (and remembered) while the pool is free.
    app.ok(&known, ALERTS, json!({})).await;

    let held = app.state.pool.get().await.expect("the only connection");

    // A new tenant needs the database before anything executes: refused whole, HTTP 503.
    let fresh = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let started = Instant::now();
    let (status, body) =
        app.post_json("/graphql", Some(&fresh), json!({ "query": ALERTS, "variables": {} })).await;
    assert_eq!(status.as_u16(), 503, "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body:#}");
    assert!(started.elapsed() < Duration::from_secs(4), "the wait is bounded, took {:?}", started.elapsed());

    // A known tenant's query starts executing, then its resolver finds no connection: UNAVAILABLE.
    let (status, body) =
        app.post_json("/graphql", Some(&known), json!({ "query": ALERTS, "variables": {} })).await;
    assert_eq!(status.as_u16(), 200, "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body:#}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("pool") && !message.contains("Timeout"), "no internal detail: {message}");

    drop(held);
    let data = app.ok(&fresh, ALERTS, json!({})).await;
    assert_eq!(data["alerts"]["totalCount"], 0);
}

#[tokio::test]
async fn a_request_past_its_deadline_is_stopped_and_rolled_back() {
    let app = TestApp::new()
        .await
        .with_http(HttpOptions { request_timeout: Duration::from_millis(700), ..HttpOptions::default() });
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    app.ok(&reader, ALERTS, json!({})).await;

    // Another session holds the alerts table, so the ingest blocks inside its transaction.
    let mut blocker = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    blocker.batch_execute("BEGIN; LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE").await.expect("lock");

    let started = Instant::now();
    let (status, body) = app
        .post_json(
            "/graphql",
            Some(&ing),
            json!({ "query": INGEST, "variables": { "alerts": [url_alert("late-1", "a@contoso.com", "https://late.example/x", "x@evil.example")] } }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status.as_u16(), 200, "{body:#}");
    let err = &body["errors"][0];
    assert_eq!(err["extensions"]["code"], "UNAVAILABLE", "{body:#}");
    assert_eq!(err["extensions"]["reason"], "REQUEST_TIMEOUT", "{body:#}");
    assert!(took < Duration::from_secs(5), "stopped at its deadline, took {took:?}");

    // Let the abandoned statement go on: nothing it did may commit.
    blocker.batch_execute("COMMIT").await.expect("unlock");
    let mut left_open = i64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left_open = count(
            &mut blocker,
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .await;
        if left_open == 0 {
            break;
        }
    }
    assert_eq!(left_open, 0, "the abandoned transaction was ended, not left holding its locks");
    assert_eq!(count(&mut blocker, "SELECT count(*) AS n FROM alerts").await, 0, "rolled back");
    assert_eq!(count(&mut blocker, "SELECT count(*) AS n FROM events").await, 0, "no event either");

    // The server is fine afterwards, and the same batch re-sent lands once.
    let data = app
        .ok(&ing, INGEST, json!({ "alerts": [url_alert("late-1", "a@contoso.com", "https://late.example/x", "x@evil.example")] }))
        .await;
    assert_eq!(data["ingestAlerts"]["accepted"], 1, "{data:#}");
    let data = app.ok(&reader, ALERTS, json!({})).await;
    assert_eq!(data["alerts"]["totalCount"], 1);
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::Int8)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).await.expect("count").n
}
