//! Quiet re-sends and the `version` rule (issue 8 §3): a re-send that changes nothing changes nothing;
//! `version` moves only for what people set, so alerts joining an incident never make an analyst's
//! pending update fail; a change to an alert moves its incident's `lastUpdateAt`.

mod common;

use common::alerts::{url_alert, INGEST};
use common::TestApp;
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Duration;

const INCIDENT_Q: &str = "query($id: ID!) { incident(id: $id) { id version lastUpdateAt lastModifiedBy \
    alertCount severity displayName priorityScore } }";
const ALERT_Q: &str = "query($id: ID!) { alert(id: $id) { id title lastUpdateAt incident { id } } }";
const UPDATE_INCIDENT: &str = "mutation($id: ID!, $input: UpdateIncidentInput!, $v: Int) { \
    updateIncident(id: $id, input: $input, expectedVersion: $v) { id version assignedTo lastModifiedBy } }";
const UPDATE_ALERT: &str =
    "mutation($id: ID!, $input: UpdateAlertInput!) { updateAlert(id: $id, input: $input) { id assignedTo } }";
const CHANGES: &str = "subscription { alertChanged { alert { id } changedFields } }";
const INCIDENT_CHANGES: &str = "subscription { incidentChanged { incident { id } changedFields } }";

fn phish(pid: &str, recipient: &str) -> Value {
    url_alert(pid, recipient, "https://quiet.example/login", "billing@quiet.example")
}

async fn ingest(app: &TestApp, token: &str, alerts: Value) -> Value {
    app.ok(token, INGEST, json!({ "alerts": alerts })).await["ingestAlerts"].clone()
}

async fn next_event(
    stream: &mut std::pin::Pin<Box<dyn futures::Stream<Item = Value> + Send>>,
    wait: Duration,
) -> Option<Value> {
    tokio::time::timeout(wait, stream.next()).await.ok().flatten()
}

#[tokio::test]
async fn an_unchanged_resend_changes_nothing_and_a_changed_one_writes_its_events() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let first = ingest(&app, &t, json!([phish("q1", "alice@contoso.com")])).await;
    let alert_id = first["items"][0]["alert"]["id"].clone();
    let incident_id = first["items"][0]["alert"]["incident"]["id"].clone();
    let incident_before = app.ok(&r, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    let alert_before = app.ok(&r, ALERT_Q, json!({ "id": alert_id })).await["alert"].clone();

    let mut alert_events = app.subscribe(&r, CHANGES, json!({})).await;
    let mut incident_events = app.subscribe(&r, INCIDENT_CHANGES, json!({})).await;
    app.wait_subscribers("contoso", 2).await;

    // The source retries, twice, the same alert: UPDATED, and nothing anyone can see moves.
    for _ in 0..2 {
        let again = ingest(&app, &t, json!([phish("q1", "alice@contoso.com")])).await;
        assert_eq!(again["items"][0]["status"], "UPDATED");
        assert_eq!(again["items"][0]["alert"]["id"], alert_id);
        assert_eq!(again["items"][0]["alert"]["incident"]["id"], incident_id);
    }
    let incident_after = app.ok(&r, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert_eq!(incident_after, incident_before, "version, lastUpdateAt and lastModifiedBy stay");
    let alert_after = app.ok(&r, ALERT_Q, json!({ "id": alert_id })).await["alert"].clone();
    assert_eq!(alert_after, alert_before);

    // A re-send that changes the title is a change: the alert's event comes, and it is the first one
    // (had the quiet re-sends written events, theirs would have come before it).
    let mut changed = phish("q1", "alice@contoso.com");
    changed["title"] = json!("Email messages containing malicious URL removed after delivery (updated)");
    let again = ingest(&app, &t, json!([changed])).await;
    assert_eq!(again["items"][0]["status"], "UPDATED");
    let ev = next_event(&mut alert_events, Duration::from_secs(10)).await.expect("an alertChanged event");
    let fields = &ev["data"]["alertChanged"]["changedFields"];
    assert!(fields.as_array().is_some_and(|f| f.contains(&json!("title"))), "{ev}");
    assert_eq!(ev["data"]["alertChanged"]["alert"]["id"], alert_id);
    let alert_now = app.ok(&r, ALERT_Q, json!({ "id": alert_id })).await["alert"].clone();
    assert_ne!(alert_now["title"], alert_before["title"]);
    assert_ne!(alert_now["lastUpdateAt"], alert_before["lastUpdateAt"]);

    // Its incident was touched (lastUpdateAt) but no field a person sets changed: the version stays.
    let incident_now = app.ok(&r, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert_eq!(incident_now["version"], incident_before["version"]);
    assert_ne!(incident_now["lastUpdateAt"], incident_before["lastUpdateAt"]);
    // The incident's name follows its alert's title: a derived change, announced, still no version step.
    let ev = next_event(&mut incident_events, Duration::from_secs(10)).await.expect("an incidentChanged");
    assert_eq!(ev["data"]["incidentChanged"]["incident"]["id"], incident_id, "{ev}");
    assert!(
        next_event(&mut alert_events, Duration::from_millis(300)).await.is_none(),
        "one change, one event"
    );
}

#[tokio::test]
async fn alerts_joining_never_make_a_pending_update_fail() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let a = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let first = ingest(&app, &t, json!([phish("j1", "alice@contoso.com")])).await;
    let incident_id = first["items"][0]["alert"]["incident"]["id"].clone();
    // The analyst opens the incident...
    let seen = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    // ...while the campaign goes on: new alerts join, with a higher severity.
    let mut more = vec![];
    for i in 0..3 {
        let mut al = phish(&format!("j{}", i + 2), &format!("user{i}@contoso.com"));
        al["severity"] = json!("HIGH");
        more.push(al);
    }
    let joined = ingest(&app, &t, json!(more)).await;
    assert!(joined["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["alert"]["incident"]["id"] == incident_id));
    let now = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert_eq!(now["alertCount"], 4);
    assert_eq!(now["severity"], "HIGH", "the derived severity follows");
    assert_eq!(now["version"], seen["version"], "derived values do not move the version");
    assert_eq!(now["lastModifiedBy"], seen["lastModifiedBy"]);
    assert!(common::ts(&now["lastUpdateAt"]) > common::ts(&seen["lastUpdateAt"]), "{now} vs {seen}");

    // The analyst's update with the version they saw goes through, and moves the version by one.
    let upd = app
        .ok(
            &a,
            UPDATE_INCIDENT,
            json!({ "id": incident_id, "input": { "assignedTo": "alice@contoso.com" }, "v": seen["version"] }),
        )
        .await;
    let v0 = seen["version"].as_i64().expect("version");
    assert_eq!(upd["updateIncident"]["version"], v0 + 1);
    assert_eq!(upd["updateIncident"]["lastModifiedBy"], "alice@contoso.com");
    // A stale version is still refused.
    let code = app
        .err_code(
            Some(&a),
            UPDATE_INCIDENT,
            json!({ "id": incident_id, "input": { "assignedTo": null }, "v": seen["version"] }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
}

#[tokio::test]
async fn a_change_to_an_alert_moves_its_incident_last_update_so_updated_after_finds_it() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let a = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let first =
        ingest(&app, &t, json!([phish("u1", "alice@contoso.com"), phish("u2", "bob@contoso.com")])).await;
    let alert_id = first["items"][0]["alert"]["id"].clone();
    let incident_id = first["items"][0]["alert"]["incident"]["id"].clone();
    let before = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    // `updatedAfter` is inclusive: ask for what changed after the incident was last updated.
    let since = (common::ts(&before["lastUpdateAt"]) + chrono::Duration::microseconds(1)).to_rfc3339();
    let q = "query($t: DateTime!) { incidents(first: 10, filter: { updatedAfter: $t }) { nodes { id } } }";
    let found = app.ok(&a, q, json!({ "t": since })).await;
    assert_eq!(found["incidents"]["nodes"], json!([]), "nothing changed after it yet");

    tokio::time::sleep(Duration::from_millis(5)).await;
    app.ok(&a, UPDATE_ALERT, json!({ "id": alert_id, "input": { "assignedTo": "bob@contoso.com" } })).await;
    let after = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert!(common::ts(&after["lastUpdateAt"]) > common::ts(&before["lastUpdateAt"]), "{after} vs {before}");
    assert_eq!(after["version"], before["version"], "the incident's own fields did not change");
    let found = app.ok(&a, q, json!({ "t": since })).await;
    assert_eq!(found["incidents"]["nodes"], json!([{ "id": incident_id }]));

    // Resolving one of two alerts changes no incident field either; resolving the last one resolves
    // the incident (a status roll-up), which moves the version.
    let resolve = json!({ "status": "RESOLVED" });
    app.ok(&a, UPDATE_ALERT, json!({ "id": alert_id, "input": resolve })).await;
    let mid = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert_eq!(mid["version"], before["version"]);
    let other = first["items"][1]["alert"]["id"].clone();
    app.ok(&a, UPDATE_ALERT, json!({ "id": other, "input": resolve })).await;
    let last = app.ok(&a, INCIDENT_Q, json!({ "id": incident_id })).await["incident"].clone();
    assert_eq!(last["version"].as_i64(), before["version"].as_i64().map(|v| v + 1));
}
