//! Retention of the event outbox: old events are pruned in batches, a cursor older than the pruned
//! watermark is refused with a clear error, fresh and recent subscriptions carry on, other tenants are
//! untouched, and two replicas pruning at once do no harm.

mod common;

use common::alerts::*;
use common::*;
use diesel_async::RunQueryDsl;
use futures::StreamExt;
use parapet::auth::Role;
use parapet::events::{cursor, retention};
use serde_json::{json, Value};
use std::time::Duration;

const CORRELATED: &str = "subscription($after: String) { alertCorrelated(after: $after) { \
    cursor kind alert { providerAlertId } } }";

const HOUR: Duration = Duration::from_secs(3600);

async fn next(s: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    let v = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an answer within 10 s")
        .expect("open stream");
    v
}

async fn event(s: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    let v = next(s).await;
    assert!(v.get("errors").is_none() || v["errors"].is_null(), "{v:#}");
    v["data"]["alertCorrelated"].clone()
}

fn alert(id: &str) -> Value {
    alert_with(id, "p", "MEDIUM", json!([{ "url": { "url": format!("https://{id}.example/") } }]))
}

#[derive(diesel::QueryableByName)]
struct Seq {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    seq: i64,
}

async fn seqs(app: &TestApp, tenant: &str) -> Vec<i64> {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::sql_query("SELECT seq FROM events WHERE tenant_id = $1 ORDER BY seq")
        .bind::<diesel::sql_types::Text, _>(tenant)
        .load::<Seq>(&mut conn)
        .await
        .expect("events")
        .into_iter()
        .map(|s| s.seq)
        .collect()
}

/// Makes every event of `tenant` look two days old.
async fn backdate(app: &TestApp, tenant: &str) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::sql_query("UPDATE events SET created_at = now() - interval '2 days' WHERE tenant_id = $1")
        .bind::<diesel::sql_types::Text, _>(tenant)
        .execute(&mut conn)
        .await
        .expect("backdate");
}

async fn watermark(app: &TestApp, tenant: &str) -> i64 {
    let mut conn = app.state.pool.get().await.expect("conn");
    parapet::db::queries::events::watermark(&mut conn, tenant).await.expect("watermark")
}

#[tokio::test]
async fn pruned_cursors_are_refused_and_recent_ones_resume() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let ing_f = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let reader_f = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);

    app.ok(&ing, INGEST, json!({ "alerts": [alert("old1"), alert("old2")] })).await;
    let old = seqs(&app, "contoso").await;
    assert_eq!(old.len(), 4, "two ALERT_CORRELATED and two INCIDENT_CHANGED: {old:?}");
    backdate(&app, "contoso").await;
    // A recent tenant whose events must survive, and a recent contoso event seen live.
    app.ok(&ing_f, INGEST, json!({ "alerts": [alert("f1")] })).await;
    let mut live = app.subscribe(&reader, CORRELATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert("new1")] })).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert("new2")] })).await;
    let new1 = event(&mut live).await;
    assert_eq!(new1["alert"]["providerAlertId"], "new1");
    drop(live);

    // Batches of one row: the pass loops until the tenant is done.
    let report = retention::prune(&app.state.pool, HOUR, 1).await.expect("prune");
    assert_eq!((report.ran, report.tenants, report.deleted), (true, 1, 4), "{report:?}");
    let left = seqs(&app, "contoso").await;
    assert!(left.iter().all(|s| *s > old[3]) && left.len() == 4, "only recent events stay: {left:?}");
    assert_eq!(watermark(&app, "contoso").await, old[3]);
    assert_eq!(seqs(&app, "fabrikam").await.len(), 2, "another tenant's recent events stay");
    assert_eq!(watermark(&app, "fabrikam").await, 0);
    // Nothing left to do: a second pass deletes nothing and keeps the watermark.
    let again = retention::prune(&app.state.pool, HOUR, 1).await.expect("prune again");
    assert_eq!(again, retention::PruneReport { ran: true, tenants: 0, deleted: 0, key_rows: 0 });
    assert_eq!(watermark(&app, "contoso").await, old[3]);

    // A cursor below the watermark: events after it are gone, so it is refused with a clear message.
    for stale in [old[0], old[2], 0] {
        let mut s = app.subscribe(&reader, CORRELATED, json!({ "after": cursor::encode(stale) })).await;
        let v = next(&mut s).await;
        let err = &v["errors"][0];
        assert_eq!(err["extensions"]["code"], "BAD_USER_INPUT", "{v:#}");
        let msg = err["message"].as_str().unwrap_or_default();
        assert!(msg.contains("expired") && msg.contains("without `after`"), "{msg}");
    }

    // A cursor at the watermark saw everything that was pruned: it resumes with the recent events.
    let mut at = app.subscribe(&reader, CORRELATED, json!({ "after": cursor::encode(old[3]) })).await;
    assert_eq!(event(&mut at).await["alert"]["providerAlertId"], "new1");
    assert_eq!(event(&mut at).await["alert"]["providerAlertId"], "new2");
    // A recent cursor resumes after it, then continues live.
    let mut recent = app.subscribe(&reader, CORRELATED, json!({ "after": new1["cursor"] })).await;
    assert_eq!(event(&mut recent).await["alert"]["providerAlertId"], "new2");
    // A fresh subscription (no cursor) works too.
    let mut fresh = app.subscribe(&reader, CORRELATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert("new3")] })).await;
    assert_eq!(event(&mut recent).await["alert"]["providerAlertId"], "new3");
    assert_eq!(event(&mut fresh).await["alert"]["providerAlertId"], "new3");
    assert_eq!(event(&mut at).await["alert"]["providerAlertId"], "new3");

    // The other tenant was never pruned: resuming from its very beginning replays everything.
    let mut f = app.subscribe(&reader_f, CORRELATED, json!({ "after": cursor::encode(0) })).await;
    assert_eq!(event(&mut f).await["alert"]["providerAlertId"], "f1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_pruning_at_once_delete_each_event_once() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let ing_f = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let batch: Vec<Value> = (0..30).map(|i| alert(&format!("c{i}"))).collect();
    app.ok(&ing, INGEST, json!({ "alerts": batch })).await;
    let batch: Vec<Value> = (0..20).map(|i| alert(&format!("f{i}"))).collect();
    app.ok(&ing_f, INGEST, json!({ "alerts": batch })).await;
    let (c, f) = (seqs(&app, "contoso").await, seqs(&app, "fabrikam").await);
    backdate(&app, "contoso").await;
    backdate(&app, "fabrikam").await;
    // Two "replicas" (separate pools, as separate processes would have) prune at the same moment.
    let other = parapet::db::build_pool(&app.db_url, &parapet::db::PoolSettings::default()).expect("pool");
    let (a, b) = tokio::join!(retention::prune(&app.state.pool, HOUR, 7), retention::prune(&other, HOUR, 7));
    let (a, b) = (a.expect("prune a"), b.expect("prune b"));
    assert!(a.ran || b.ran, "{a:?} {b:?}");
    assert_eq!(a.deleted + b.deleted, (c.len() + f.len()) as u64, "{a:?} {b:?}");
    assert!(seqs(&app, "contoso").await.is_empty() && seqs(&app, "fabrikam").await.is_empty());
    assert_eq!(watermark(&app, "contoso").await, *c.last().expect("events"));
    assert_eq!(watermark(&app, "fabrikam").await, *f.last().expect("events"));
    // A watermark never goes down, even when a later pass finds an older position.
    let mut conn = app.state.pool.get().await.expect("conn");
    let w = parapet::db::queries::events::raise_watermark(&mut conn, "contoso", 1).await.expect("raise");
    assert_eq!(w, *c.last().expect("events"));
}

#[tokio::test]
async fn key_lock_rows_nobody_holds_are_pruned_and_correlation_carries_on() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let campaign = |id: &str, to: &str| url_alert(id, to, "https://keys.example/pay", "x@evil.example");
    let first = app.ok(&ing, INGEST, json!({ "alerts": [campaign("k1", "a@contoso.com")] })).await;
    let incident = first["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].clone();
    let rows = || async {
        let mut conn = app.state.pool.get().await.expect("conn");
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::Int8)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM correlation_locks")
            .get_result::<N>(&mut conn)
            .await
            .expect("count")
            .n
    };
    let before = rows().await;
    assert!(before > 0, "ingestion made key rows");

    let report = retention::prune(&app.state.pool, HOUR, 2).await.expect("prune");
    assert_eq!(report.key_rows, before as u64, "{report:?}");
    assert_eq!(rows().await, 0);

    // Rows come back on demand, and the next alert of the campaign still joins its incident.
    let next = app.ok(&ing, INGEST, json!({ "alerts": [campaign("k2", "b@contoso.com")] })).await;
    assert_eq!(next["ingestAlerts"]["items"][0]["alert"]["incident"]["id"], incident, "{next:#}");
    assert!(rows().await > 0);
}
