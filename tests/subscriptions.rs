//! Subscriptions in-process: live delivery, resume after a cursor with no gap and no duplicate, tenant
//! isolation, roles, and ordering under many concurrent writers.

mod common;

use common::alerts::*;
use common::*;
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Duration;

const CORRELATED: &str = "subscription($after: String, $f: AlertCorrelatedFilter) { alertCorrelated(after: $after, filter: $f) { \
    cursor kind alert { id providerAlertId severity } incident { id alertCount } matchedKeys { kind value } } }";

async fn nothing(s: &mut (impl futures::Stream<Item = Value> + Unpin)) {
    if let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(1500), s.next()).await {
        panic!("unexpected event: {v:#}");
    }
}

fn url(id: &str, u: &str) -> Value {
    alert_with(id, "p", "MEDIUM", json!([{ "url": { "url": u } }]))
}

#[tokio::test]
async fn live_events_then_resume_without_gap_or_duplicate() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let mut sub = app.subscribe(&reader, CORRELATED, json!({})).await;
    app.wait_subscribers("contoso", 1).await;
    app.ok(&ing, INGEST, json!({ "alerts": [url("s1", "https://a.example/")] })).await;
    app.ok(&ing, INGEST, json!({ "alerts": [url("s2", "https://a.example/")] })).await;
    let e1 = next_data(&mut sub).await["alertCorrelated"].clone();
    let e2 = next_data(&mut sub).await["alertCorrelated"].clone();
    assert_eq!(e1["kind"], "NEW_INCIDENT");
    assert_eq!(e1["alert"]["providerAlertId"], "s1");
    assert_eq!(e2["kind"], "JOINED");
    assert_eq!(e2["matchedKeys"][0]["kind"], "URL");
    // Objects are read when delivered: the incident already holds both alerts.
    assert_eq!(e2["incident"]["alertCount"], 2);
    drop(sub);

    // Missed while disconnected: s3. Resume after e1: e2 again, then s3 (replayed), then s4 (live).
    app.ok(&ing, INGEST, json!({ "alerts": [url("s3", "https://b.example/")] })).await;
    let mut again = app.subscribe(&reader, CORRELATED, json!({ "after": e1["cursor"] })).await;
    let r2 = next_data(&mut again).await["alertCorrelated"].clone();
    let r3 = next_data(&mut again).await["alertCorrelated"].clone();
    assert_eq!(r2["alert"]["providerAlertId"], "s2");
    assert_eq!(r2["cursor"], e2["cursor"]);
    assert_eq!(r3["alert"]["providerAlertId"], "s3");
    app.ok(&ing, INGEST, json!({ "alerts": [url("s4", "https://c.example/")] })).await;
    let r4 = next_data(&mut again).await["alertCorrelated"].clone();
    assert_eq!(r4["alert"]["providerAlertId"], "s4");
    nothing(&mut again).await;
}

#[tokio::test]
async fn tenants_and_roles_filter_events() {
    let app = TestApp::new().await;
    let ing_a = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let ing_b = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let reader_b = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let mut sub_b = app.subscribe(&reader_b, CORRELATED, json!({})).await;
    app.wait_subscribers("fabrikam", 1).await;
    app.ok(&ing_a, INGEST, json!({ "alerts": [url("t1", "https://a.example/")] })).await;
    app.ok(&ing_b, INGEST, json!({ "alerts": [url("t2", "https://a.example/")] })).await;
    let e = next_data(&mut sub_b).await["alertCorrelated"].clone();
    assert_eq!(e["alert"]["providerAlertId"], "t2", "the other tenant's event never arrives");
    nothing(&mut sub_b).await;

    let mut denied = app.subscribe(&ing_a, CORRELATED, json!({})).await;
    let v = tokio::time::timeout(Duration::from_secs(5), denied.next()).await.expect("answer").expect("item");
    assert_eq!(v["errors"][0]["extensions"]["code"], "FORBIDDEN", "{v:#}");
    let mut anon = app.subscribe("garbage", CORRELATED, json!({})).await;
    let v = tokio::time::timeout(Duration::from_secs(5), anon.next()).await.expect("answer").expect("item");
    assert_eq!(v["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{v:#}");
}

#[tokio::test]
async fn filters_and_incident_and_alert_changes() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let analyst = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let mut high = app.subscribe(&analyst, CORRELATED, json!({ "f": { "minSeverity": "HIGH" } })).await;
    let mut inc = app
        .subscribe(
            &analyst,
            "subscription { incidentChanged { cursor incident { id status } changedFields actor } }",
            json!({}),
        )
        .await;
    let mut alerts = app
        .subscribe(
            &analyst,
            "subscription { alertChanged { alert { id status } changedFields actor } }",
            json!({}),
        )
        .await;
    app.wait_subscribers("contoso", 3).await;
    let r = app
        .ok(
            &ing,
            INGEST,
            json!({ "alerts": [
        alert_with("f1", "p", "LOW", json!([])),
        alert_with("f2", "p", "HIGH", json!([])),
    ] }),
        )
        .await;
    let e = next_data(&mut high).await["alertCorrelated"].clone();
    assert_eq!(e["alert"]["providerAlertId"], "f2");
    let c1 = next_data(&mut inc).await["incidentChanged"].clone();
    assert!(c1["changedFields"].as_array().expect("fields").contains(&json!("alerts")));
    next_data(&mut inc).await;
    let id = r["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].clone();
    app.ok(
        &analyst,
        "mutation($id: ID!) { updateIncident(id: $id, input: { status: RESOLVED }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let c = next_data(&mut inc).await["incidentChanged"].clone();
    assert_eq!(c["incident"]["status"], "RESOLVED");
    assert_eq!(c["actor"], "alice@contoso.com");
    assert!(c["changedFields"].as_array().expect("fields").contains(&json!("status")));
    let a = next_data(&mut alerts).await["alertChanged"].clone();
    assert_eq!(a["alert"]["status"], "RESOLVED");
}

/// Many writers commit concurrently; sequence order is not commit order in general, but a reader must
/// never skip an event that commits late. The subscriber must see every alert exactly once, in
/// increasing cursor order, and a resume from the first cursor must see the same sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_a_reader_skip_an_event() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let mut sub = app.subscribe(&reader, CORRELATED, json!({})).await;
    app.wait_subscribers("contoso", 1).await;
    let writers = 8;
    let per = 15;
    let mut handles = vec![];
    for w in 0..writers {
        let app = app.clone();
        let ing = ing.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                let a = url(&format!("w{w}-{i}"), &format!("https://w{w}-{i}.example/"));
                app.ok(&ing, INGEST, json!({ "alerts": [a] })).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let total = writers * per;
    let mut seen = std::collections::HashSet::new();
    let mut cursors = vec![];
    for _ in 0..total {
        let e = next_data(&mut sub).await["alertCorrelated"].clone();
        assert!(
            seen.insert(e["alert"]["providerAlertId"].as_str().unwrap_or_default().to_string()),
            "duplicate {e}"
        );
        cursors.push(e["cursor"].as_str().unwrap_or_default().to_string());
    }
    nothing(&mut sub).await;
    assert_eq!(seen.len(), total);
    let mut resumed = app.subscribe(&reader, CORRELATED, json!({ "after": cursors[0] })).await;
    for c in &cursors[1..] {
        let e = next_data(&mut resumed).await["alertCorrelated"].clone();
        assert_eq!(e["cursor"].as_str().unwrap_or_default(), c, "replay follows the live order");
    }
}

#[tokio::test]
async fn a_malformed_cursor_is_bad_input() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let mut s = app.subscribe(&reader, CORRELATED, json!({ "after": "not-a-cursor" })).await;
    let v = tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("answer").expect("item");
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v:#}");
}

#[tokio::test]
async fn a_variable_not_of_its_type_is_refused_with_a_code() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let q = "subscription($f: IncidentChangedFilter) { incidentChanged(filter: $f) { cursor } }";
    let mut s = app.subscribe(&reader, q, json!({ "f": { "minSeverity": "APOCALYPTIC" } })).await;
    let v = tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("answer").expect("item");
    // Subscriptions take no Int or DateTime, so a bad value is caught before they run.
    assert_eq!(v["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{v:#}");
}

/// A subscriber that stops reading while more events arrive than the hub buffers per tenant falls
/// behind the broadcast; when it reads again it catches up from the event table: every alert, in order,
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_behind_the_hub_buffer_catches_up_from_the_table() {
    let app = TestApp::new().await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let caller = app.state.authenticate(&format!("Bearer {reader}")).await.expect("caller");
    let req = async_graphql::Request::new(CORRELATED).data(caller);
    let mut stream = app.schema.execute_stream(req);
    // One poll runs the resolver (it subscribes) and then waits for events; then nobody reads.
    assert!(tokio::time::timeout(Duration::from_millis(300), stream.next()).await.is_err());
    let total = 700; // two events per alert: 1,400 > the hub's buffer of 1,024
    for batch in 0..(total / 100) {
        let alerts: Vec<Value> = (0..100)
            .map(|i| url(&format!("b{batch}-{i}"), &format!("https://u{batch}-{i}.example/")))
            .collect();
        app.ok(&ing, INGEST, json!({ "alerts": alerts })).await;
    }
    // Give the hub time to broadcast everything past this subscriber's buffer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last = 0;
    let mut seen = std::collections::HashSet::new();
    for n in 0..total {
        let r =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("event").expect("open");
        let v = serde_json::to_value(r).expect("json");
        let e = &v["data"]["alertCorrelated"];
        let seq = parapet::events::cursor::decode(e["cursor"].as_str().unwrap_or_default()).expect("cursor");
        assert!(seq > last, "out of order at {n}: {v}");
        last = seq;
        assert!(seen.insert(e["alert"]["providerAlertId"].to_string()), "duplicate at {n}");
    }
    assert_eq!(seen.len(), total);
}
