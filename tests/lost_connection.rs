//! A lost database connection is retried only for work that is harmless to repeat: an ingest batch
//! (re-sending is idempotent) is tried again on a fresh connection and stored once, while a manual
//! operation is not (had the connection died during `COMMIT`, running it again could do it twice): its
//! caller gets `UNAVAILABLE`, told to look before repeating.

mod common;

use common::alerts::*;
use common::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use parapet::auth::Role;
use serde_json::json;
use std::time::Duration;

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    n: i64,
}

/// Waits until a session of this database waits on a lock, then terminates it (as a failover or an
/// administrator would), while the test's own session still holds the lock.
async fn kill_the_waiter(admin: &mut AsyncPgConnection) {
    for _ in 0..200 {
        let killed = count(
            admin,
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .await;
        if killed > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no session waited on the lock within 5 s");
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(conn).await.expect("count").n
}

#[tokio::test]
async fn an_ingest_batch_is_retried_after_a_lost_connection() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    app.ok(
        &ing,
        INGEST,
        json!({ "alerts": [url_alert("warm", "a@contoso.com", "https://w.example/", "x@evil.example")] }),
    )
    .await;
    let mut blocker = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    let mut admin = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    blocker.batch_execute("BEGIN; LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE").await.expect("lock");

    let alert = url_alert("lost-1", "b@contoso.com", "https://lost.example/", "y@evil.example");
    let request = {
        let (router, token) = (app.router.clone(), ing.clone());
        tokio::spawn(async move {
            post(&router, &token, json!({ "query": INGEST, "variables": { "alerts": [alert] } })).await
        })
    };
    kill_the_waiter(&mut admin).await;
    blocker.batch_execute("COMMIT").await.expect("unlock");
    let resp = request.await.expect("request task");
    assert!(resp.get("errors").is_none(), "retried on a fresh connection: {resp:#}");
    assert_eq!(resp["data"]["ingestAlerts"]["accepted"], 1, "{resp:#}");
    assert_eq!(count(&mut admin, "SELECT count(*) AS n FROM alerts").await, 2, "stored once");
}

#[tokio::test]
async fn a_manual_operation_is_not_retried_after_a_lost_connection() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let analyst = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let data = app
        .ok(
            &ing,
            INGEST,
            json!({ "alerts": [url_alert("m-1", "a@contoso.com", "https://m.example/", "x@evil.example")] }),
        )
        .await;
    let alert_id = data["ingestAlerts"]["items"][0]["alert"]["id"].clone();
    let mut blocker = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    let mut admin = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    blocker.batch_execute("BEGIN; LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE").await.expect("lock");

    let create =
        "mutation($ids: [ID!]!) { createIncident(input: { alertIds: $ids, comment: \"split out\" }) { id } }";
    let request = {
        let (router, token) = (app.router.clone(), analyst.clone());
        tokio::spawn(async move {
            post(&router, &token, json!({ "query": create, "variables": { "ids": [alert_id] } })).await
        })
    };
    kill_the_waiter(&mut admin).await;
    blocker.batch_execute("COMMIT").await.expect("unlock");
    let resp = request.await.expect("request task");
    let err = &resp["errors"][0];
    assert_eq!(err["extensions"]["code"], "UNAVAILABLE", "{resp:#}");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(message.contains("may or may not"), "the caller is told to look first: {message}");
    // Not run again behind the caller's back: still the one incident ingestion made.
    assert_eq!(count(&mut admin, "SELECT count(*) AS n FROM incidents").await, 1);
}

async fn post(router: &axum::Router, token: &str, body: serde_json::Value) -> serde_json::Value {
    use tower::ServiceExt;
    let req = axum::http::Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from(body.to_string()))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("router answers");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    serde_json::from_slice(&bytes).expect("json")
}
