//! Bursts and transient failures (issue 8 §1): full batches from many gateways at once all succeed, and a
//! batch whose transaction keeps failing for a transient reason is retried, then refused with
//! `UNAVAILABLE` and the advice to re-send it, losing nothing.

mod common;

use common::alerts::INGEST;
use common::TestApp;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parapet::auth::Role;
use parapet::db::PoolSettings;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// An e-mail alert with ten correlation keys of its own (message id, recipient, sender, IP, six URLs),
/// none shared with any other alert of the test.
fn ten_key_alert(tag: &str) -> Value {
    let urls: Vec<String> = (0..6).map(|u| format!("https://{tag}.burst.example/u{u}")).collect();
    json!({
        "providerAlertId": tag,
        "serviceSource": "microsoftDefenderForOffice365",
        "alertPolicy": "Email messages containing malicious URL removed after delivery",
        "title": "Email messages containing malicious URL removed after delivery",
        "severity": "MEDIUM",
        "evidence": [{ "verdict": "MALICIOUS", "email": {
            "networkMessageId": format!("nmid-{tag}"),
            "recipient": format!("{tag}@contoso.com"),
            "envelopeSender": format!("billing@{tag}.sender.example"),
            "senderIp": format!("2001:db8::{:x}:{:x}", tag_number(tag) >> 16, tag_number(tag) & 0xffff),
            "subject": "Invoice",
            "receivedAt": "2026-11-26T10:00:00Z",
            "urls": urls,
            "deliveryAction": "DELIVERED",
            "latestDeliveryLocation": "INBOX"
        }}]
    })
}

/// A number of its own for each tag, for an address no other alert of the test shares.
fn tag_number(tag: &str) -> u64 {
    tag.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) & 0xffff_ffff
}

async fn alert_total(app: &TestApp, token: &str) -> i64 {
    app.ok(token, "{ alerts(first: 1) { totalCount } }", json!({})).await["alerts"]["totalCount"]
        .as_i64()
        .expect("totalCount")
}

/// Eight gateways push 500 alerts of 10 keys each at the same moment, one alert of each sharing a
/// campaign URL: up to 44,000 key locks at once, far beyond PostgreSQL's shared lock table on default
/// settings (one advisory lock per key overflowed it with "out of shared memory"). Every batch must be
/// stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_full_batches_all_succeed() {
    let app = Arc::new(TestApp::with_pool_size(12).await);
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let mut tasks = vec![];
    for b in 0..8 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut batch: Vec<Value> = (0..500).map(|i| ten_key_alert(&format!("b{b}a{i}"))).collect();
            // One alert of every batch carries the campaign's URL, as real bursts share keys: the batches
            // then queue on that key, each holding the locks it took before it. Keys are locked in the
            // order of their hash; this URL's sorts near the end, so a queued batch holds almost all.
            batch[0]["evidence"][0]["email"]["urls"][5] = json!("https://campaign122.burst.example/shared");
            app.gql(Some(&t), INGEST, json!({ "alerts": batch })).await
        }));
    }
    let mut campaign = vec![];
    for task in tasks {
        let resp = task.await.expect("task");
        assert!(resp.get("errors").is_none(), "a batch failed: {}", &resp["errors"]);
        campaign.push(resp["data"]["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].to_string());
        let r = &resp["data"]["ingestAlerts"];
        assert_eq!((r["accepted"].as_i64(), r["rejected"].as_i64()), (Some(500), Some(0)), "{r}");
        let items = r["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["status"] == "CREATED"), "every alert is new");
    }
    assert_eq!(alert_total(&app, &r).await, 4000);
    campaign.sort();
    campaign.dedup();
    assert_eq!(campaign.len(), 1, "the campaign's alerts share one incident: {campaign:?}");
}

/// A raw connection to the test's database that holds every key row of the tenant locked until dropped
/// (or `release`d), so an ingest that shares a key waits on it.
async fn hold_key_locks(app: &TestApp) -> AsyncPgConnection {
    let mut c = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    c.batch_execute("BEGIN; SELECT count(*) FROM (SELECT 1 FROM correlation_locks FOR UPDATE) s;")
        .await
        .expect("lock the key rows");
    c
}

/// A batch whose transaction keeps losing its connection (the database ends the session while the batch
/// waits for a key) is retried on a new connection each time; after the last try the client gets
/// `UNAVAILABLE` with the advice to re-send, nothing of the batch is stored, and re-sending it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_keeps_failing_is_unavailable_and_a_resend_stores_it() {
    let app = Arc::new(TestApp::new().await);
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let first = app.ok(&t, INGEST, json!({ "alerts": [ten_key_alert("seed")] })).await;
    assert_eq!(first["ingestAlerts"]["accepted"], 1);

    let mut holder = hold_key_locks(&app).await;
    // Shares the seed's keys (another provider id), so it waits for the held rows.
    let mut again = ten_key_alert("seed");
    again["providerAlertId"] = json!("second");
    let batch = json!({ "alerts": [again.clone(), ten_key_alert("fresh")] });
    let ingest = {
        let (app, t, batch) = (app.clone(), t.clone(), batch.clone());
        tokio::spawn(async move { app.gql(Some(&t), INGEST, batch).await })
    };
    // End every session that waits for a lock in this database, until the ingest gives up.
    let mut killer = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    let mut killed = 0;
    for _ in 0..600 {
        if ingest.is_finished() {
            break;
        }
        use diesel_async::RunQueryDsl;
        let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock')",
        ))
        .get_result(&mut killer)
        .await
        .expect("terminate waiting sessions");
        killed += n;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = ingest.await.expect("task");
    assert!(killed >= 2, "the test ended {killed} sessions; the batch was not retried");
    assert_eq!(resp["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{resp}");
    let message = resp["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("retry the same batch"), "{message}");
    assert!(!message.contains("terminat") && !message.contains("database:"), "no internal detail: {message}");
    assert_eq!(alert_total(&app, &r).await, 1, "nothing of the failed batch is stored");

    holder.batch_execute("COMMIT").await.expect("release");
    let resent = app.ok(&t, INGEST, batch).await;
    let statuses: Vec<&Value> =
        resent["ingestAlerts"]["items"].as_array().expect("items").iter().map(|i| &i["status"]).collect();
    assert_eq!(statuses, vec!["CREATED", "CREATED"], "{resent}");
    assert_eq!(alert_total(&app, &r).await, 3);
}

/// A statement that waits past the statement timeout is `UNAVAILABLE` (not `INTERNAL`); the batch is
/// stored when sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_is_unavailable() {
    let app =
        TestApp::with_pool(PoolSettings { max_size: 4, statement_timeout_ms: 300, ..Default::default() })
            .await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    app.ok(&t, INGEST, json!({ "alerts": [ten_key_alert("slow")] })).await;
    let mut holder = hold_key_locks(&app).await;
    let mut again = ten_key_alert("slow");
    again["providerAlertId"] = json!("slow-2");
    let resp = app.gql(Some(&t), INGEST, json!({ "alerts": [again.clone()] })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{resp}");
    assert!(!resp.to_string().contains("canceling statement"), "{resp}");
    holder.batch_execute("COMMIT").await.expect("release");
    let resent = app.ok(&t, INGEST, json!({ "alerts": [again] })).await;
    assert_eq!(resent["ingestAlerts"]["items"][0]["status"], "CREATED");
}
