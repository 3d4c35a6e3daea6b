//! Triage mutations through GraphQL with real tokens: updates of incidents and alerts, versions and
//! optimistic concurrency, classification pairs, tags, comments, roles, tenants and the activity log.
//! Roll-ups and bulk updates are in `triage_rollup.rs`.

mod common;

use common::seed;
use common::*;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use parapet::db::models::{Activity, Alert, Comment, Incident};
use parapet::db::schema::{activity, comments};
use parapet::domain::enums::*;
use serde_json::{json, Value};
use uuid::Uuid;

const INCIDENT: &str = "id status severity severityOverridden classification determination assignedTo \
    displayName customTags resolvingComment resolvedAt version lastModifiedBy lastUpdateAt";

fn update_incident_q() -> String {
    format!(
        "mutation($id: ID!, $input: UpdateIncidentInput!, $v: Int) {{ \
         updateIncident(id: $id, input: $input, expectedVersion: $v) {{ {INCIDENT} }} }}"
    )
}

fn read_incident_q() -> String {
    format!("query($id: ID!) {{ incident(id: $id) {{ {INCIDENT} }} }}")
}

const UPDATE_ALERT: &str =
    "mutation($id: ID!, $input: UpdateAlertInput!) { updateAlert(id: $id, input: $input) \
    { id status assignedTo classification determination resolvedAt incidentId } }";
const READ_ALERT: &str =
    "query($id: ID!) { alert(id: $id) { id status assignedTo classification determination resolvedAt } }";
const ADD_TAGS: &str = "mutation($id: ID!, $tags: [String!]!) { addIncidentTags(id: $id, tags: $tags) \
    { customTags version } }";
const REMOVE_TAGS: &str = "mutation($id: ID!, $tags: [String!]!) { removeIncidentTags(id: $id, tags: $tags) \
    { customTags version } }";
const INCIDENT_COMMENT: &str = "mutation($id: ID!, $c: String!) { addIncidentComment(id: $id, comment: $c) \
    { id body comment author authorName createdAt incidentId alertId } }";
const ALERT_COMMENT: &str = "mutation($id: ID!, $c: String!) { addAlertComment(id: $id, comment: $c) \
    { id body comment author authorName createdAt incidentId alertId } }";
const UPDATE_INCIDENTS: &str = "mutation($ids: [ID!]!, $input: UpdateIncidentInput!) \
    { updateIncidents(ids: $ids, input: $input) { id } }";

const ANALYST: &str = "alice@contoso.com";

/// An open incident with alerts of the given severities, all in tenant `tenant`.
async fn seed_incident(app: &TestApp, tenant: &str, severities: &[Severity]) -> (Incident, Vec<Alert>) {
    let mut conn = app.state.pool.get().await.expect("conn");
    parapet::db::queries::tenants::ensure(&mut conn, tenant).await.expect("tenant");
    let max = severities.iter().copied().max().unwrap_or(Severity::Unknown);
    let inc = seed::incident(tenant, "Phish campaign", max);
    seed::insert_incident(app, &inc).await;
    let alerts: Vec<Alert> =
        severities.iter().enumerate().map(|(n, s)| seed::alert(&inc, &format!("Alert {n}"), *s)).collect();
    seed::insert_alerts(app, &alerts).await;
    (inc, alerts)
}

/// Activity rows of an incident (its own and its alerts'), oldest first.
async fn activity_of(app: &TestApp, incident_id: Uuid) -> Vec<Activity> {
    let mut conn = app.state.pool.get().await.expect("conn");
    activity::table
        .filter(activity::incident_id.eq(incident_id))
        .order((activity::created_at, activity::id))
        .select(Activity::as_select())
        .load(&mut conn)
        .await
        .expect("activity")
}

async fn comments_of(app: &TestApp) -> Vec<Comment> {
    let mut conn = app.state.pool.get().await.expect("conn");
    comments::table.select(Comment::as_select()).load(&mut conn).await.expect("comments")
}

async fn read_incident(app: &TestApp, token: &str, id: Uuid) -> Value {
    app.ok(token, &read_incident_q(), json!({ "id": id })).await["incident"].clone()
}

async fn read_alert(app: &TestApp, token: &str, id: Uuid) -> Value {
    app.ok(token, READ_ALERT, json!({ "id": id })).await["alert"].clone()
}

/// The full error of a request that must fail: (code, message).
async fn error(app: &TestApp, token: &str, query: &str, vars: Value) -> (String, String) {
    let resp = app.gql(Some(token), query, vars).await;
    let e = &resp["errors"][0];
    assert!(e.is_object(), "expected an error, got {resp:#}");
    (
        e["extensions"]["code"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn update_incident_changes_every_field_and_logs_each() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _alerts) = seed_incident(&app, "contoso", &[Severity::Medium]).await;

    let input = json!({
        "status": "IN_PROGRESS",
        "severity": "HIGH",
        "assignedTo": "bob@contoso.com",
        "classification": "TRUE_POSITIVE",
        "determination": "PHISHING",
        "displayName": "  CEO wire-fraud phish  ",
        "resolvingComment": "looked at it",
    });
    let data = app.ok(&t, &update_incident_q(), json!({ "id": inc.id, "input": input, "v": 1 })).await;
    let got = &data["updateIncident"];
    assert_eq!(got["status"], "IN_PROGRESS");
    assert_eq!(got["severity"], "HIGH");
    assert_eq!(got["severityOverridden"], true);
    assert_eq!(got["assignedTo"], "bob@contoso.com");
    assert_eq!(got["classification"], "TRUE_POSITIVE");
    assert_eq!(got["determination"], "PHISHING");
    assert_eq!(got["displayName"], "CEO wire-fraud phish");
    assert_eq!(got["resolvingComment"], "looked at it");
    assert_eq!(got["version"], 2, "one update, one version step");
    assert_eq!(got["lastModifiedBy"], ANALYST);
    assert_eq!(read_incident(&app, &t, inc.id).await, *got, "what it returns is what is stored");

    let log = activity_of(&app, inc.id).await;
    let own: Vec<&Activity> = log.iter().filter(|a| a.alert_id.is_none()).collect();
    let fields: Vec<&str> = own.iter().filter_map(|a| a.field.as_deref()).collect();
    for f in [
        "status",
        "severity",
        "assignedTo",
        "classification",
        "determination",
        "displayName",
        "resolvingComment",
    ] {
        assert!(fields.contains(&f), "a row for {f}: {fields:?}");
    }
    assert_eq!(own.len(), 7, "one row per changed field");
    let status = own.iter().find(|a| a.field.as_deref() == Some("status")).expect("status row");
    assert_eq!(status.actor, ANALYST);
    assert_eq!(status.kind, "UPDATE");
    assert_eq!(status.before, Some(json!("ACTIVE")));
    assert_eq!(status.after, Some(json!("IN_PROGRESS")));
    assert_eq!(status.message, "Status changed from ACTIVE to IN_PROGRESS");
    let owner = own.iter().find(|a| a.field.as_deref() == Some("assignedTo")).expect("owner row");
    assert_eq!(owner.before, Some(Value::Null));
    assert_eq!(owner.after, Some(json!("bob@contoso.com")));
}

#[tokio::test]
async fn omitted_fields_stay_and_null_unassigns() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let q = update_incident_q();
    app.ok(
        &t,
        &q,
        json!({ "id": inc.id, "input": { "assignedTo": "bob@contoso.com", "resolvingComment": "x" } }),
    )
    .await;

    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "status": "IN_PROGRESS" } })).await
        ["updateIncident"]
        .clone();
    assert_eq!(got["assignedTo"], "bob@contoso.com", "omitted assignedTo is left alone");
    assert_eq!(got["resolvingComment"], "x");

    let got = app
        .ok(&t, &q, json!({ "id": inc.id, "input": { "assignedTo": null, "resolvingComment": null } }))
        .await["updateIncident"]
        .clone();
    assert_eq!(got["assignedTo"], Value::Null, "null unassigns");
    assert_eq!(got["resolvingComment"], Value::Null, "null clears");
    assert_eq!(got["status"], "IN_PROGRESS");
    assert_eq!(got["version"], 4);

    // Blank text is refused rather than read as "clear".
    let (code, msg) = error(&app, &t, &q, json!({ "id": inc.id, "input": { "assignedTo": "  " } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("null"), "{msg}");
}

#[tokio::test]
async fn severity_by_hand_and_back_to_automatic() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Medium, Severity::High, Severity::Low]).await;
    let q = update_incident_q();

    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "severity": "LOW" } })).await["updateIncident"]
        .clone();
    assert_eq!((got["severity"].clone(), got["severityOverridden"].clone()), (json!("LOW"), json!(true)));

    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "severity": null } })).await["updateIncident"]
        .clone();
    assert_eq!(got["severity"], "HIGH", "back to the highest alert severity");
    assert_eq!(got["severityOverridden"], false);
    assert_eq!(got["version"], 3);

    // Pinning the severity it already has is a change: it no longer follows the alerts.
    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "severity": "HIGH" } })).await
        ["updateIncident"]
        .clone();
    assert_eq!((got["severityOverridden"].clone(), got["version"].clone()), (json!(true), json!(4)));
}

#[tokio::test]
async fn a_no_op_update_changes_nothing() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let input = json!({ "status": "ACTIVE", "assignedTo": null, "classification": "UNKNOWN", "determination": "UNKNOWN" });
    let got = app.ok(&t, &update_incident_q(), json!({ "id": inc.id, "input": input })).await
        ["updateIncident"]
        .clone();
    assert_eq!(got["version"], 1);
    assert_eq!(got["lastModifiedBy"], Value::Null);
    assert!(activity_of(&app, inc.id).await.is_empty());
    // The same through expectedVersion.
    let got = app.ok(&t, &update_incident_q(), json!({ "id": inc.id, "input": input, "v": 1 })).await;
    assert_eq!(got["updateIncident"]["version"], 1);
}

#[tokio::test]
async fn stale_expected_version_is_a_conflict_and_changes_nothing() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let q = update_incident_q();
    app.ok(&t, &q, json!({ "id": inc.id, "input": { "status": "IN_PROGRESS" }, "v": 1 })).await;
    let before = read_incident(&app, &t, inc.id).await;

    let (code, msg) = error(
        &app,
        &t,
        &q,
        json!({ "id": inc.id, "input": { "status": "RESOLVED", "assignedTo": "x@y" }, "v": 1 }),
    )
    .await;
    assert_eq!(code, "CONFLICT");
    assert!(msg.contains("version 2"), "{msg}");
    assert_eq!(read_incident(&app, &t, inc.id).await, before, "nothing changed");
    assert_eq!(activity_of(&app, inc.id).await.len(), 1, "no activity for the refused update");

    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "status": "RESOLVED" }, "v": 2 })).await;
    assert_eq!(got["updateIncident"]["version"], 3);
}

#[tokio::test]
async fn concurrent_updates_with_one_version_let_exactly_one_through() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let q = update_incident_q();
    let owners: Vec<String> = (0..8).map(|n| format!("analyst{n}@contoso.com")).collect();
    let results = futures::future::join_all(
        owners
            .iter()
            .map(|o| app.gql(Some(&t), &q, json!({ "id": inc.id, "input": { "assignedTo": o }, "v": 1 }))),
    )
    .await;
    let ok = results.iter().filter(|r| r.get("errors").is_none()).count();
    let conflicts =
        results.iter().filter(|r| r["errors"][0]["extensions"]["code"].as_str() == Some("CONFLICT")).count();
    assert_eq!((ok, conflicts), (1, 7), "{results:#?}");
    assert_eq!(read_incident(&app, &t, inc.id).await["version"], 2);
}

#[tokio::test]
async fn classification_pairs_are_checked_on_the_result() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let q = update_incident_q();
    let before = read_incident(&app, &t, inc.id).await;

    // A determination alone needs a classification.
    let (code, msg) =
        error(&app, &t, &q, json!({ "id": inc.id, "input": { "determination": "PHISHING" } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("classification"), "{msg}");
    // A pair that does not fit.
    let bad = json!({ "classification": "FALSE_POSITIVE", "determination": "MALWARE", "status": "RESOLVED" });
    let (code, msg) = error(&app, &t, &q, json!({ "id": inc.id, "input": bad })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("NOT_MALICIOUS"), "the message lists what fits: {msg}");
    assert_eq!(read_incident(&app, &t, inc.id).await, before, "nothing changed, not even the status");
    assert!(activity_of(&app, inc.id).await.is_empty());

    // Classification first, then a determination alone that fits it.
    app.ok(&t, &q, json!({ "id": inc.id, "input": { "classification": "TRUE_POSITIVE" } })).await;
    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": { "determination": "MALWARE" } })).await;
    assert_eq!(got["updateIncident"]["determination"], "MALWARE");
    // Changing the classification alone to one the stored determination does not fit is refused.
    let (code, _) =
        error(&app, &t, &q, json!({ "id": inc.id, "input": { "classification": "FALSE_POSITIVE" } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    // Both together are fine.
    let both = json!({ "classification": "FALSE_POSITIVE", "determination": "NOT_ENOUGH_DATA_TO_VALIDATE" });
    let got = app.ok(&t, &q, json!({ "id": inc.id, "input": both })).await["updateIncident"].clone();
    assert_eq!(got["classification"], "FALSE_POSITIVE");
    assert_eq!(got["version"], 4);
}

#[tokio::test]
async fn redirected_is_system_only_and_redirected_incidents_are_read_only() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (target, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    let (code, msg) = error(
        &app,
        &t,
        &update_incident_q(),
        json!({ "id": target.id, "input": { "status": "REDIRECTED" } }),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("merged"), "{msg}");

    let mut merged = seed::incident("contoso", "old", Severity::Low);
    merged.status = IncidentStatus::Redirected;
    merged.redirect_incident_id = Some(target.id);
    seed::insert_incident(&app, &merged).await;
    let cases = [
        (update_incident_q(), json!({ "id": merged.id, "input": { "status": "RESOLVED" } })),
        (ADD_TAGS.to_string(), json!({ "id": merged.id, "tags": ["x"] })),
        (REMOVE_TAGS.to_string(), json!({ "id": merged.id, "tags": ["x"] })),
        (INCIDENT_COMMENT.to_string(), json!({ "id": merged.id, "c": "hello" })),
    ];
    for (q, vars) in cases {
        let (code, msg) = error(&app, &t, &q, vars).await;
        assert_eq!(code, "CONFLICT", "{q}");
        assert!(msg.contains(&target.id.to_string()) && msg.contains("redirectIncidentId"), "{msg}");
    }
    assert_eq!(read_incident(&app, &t, merged.id).await["version"], 1);
}

#[tokio::test]
async fn tags_are_added_deduplicated_and_removed() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", &[Severity::Low]).await;

    let got = app.ok(&t, ADD_TAGS, json!({ "id": inc.id, "tags": [" Phish ", "VIP", "phish"] })).await;
    assert_eq!(got["addIncidentTags"], json!({ "customTags": ["Phish", "VIP"], "version": 2 }));
    // Already there, ignoring case: nothing changes, the version stays.
    let got = app.ok(&t, ADD_TAGS, json!({ "id": inc.id, "tags": ["vip", "PHISH"] })).await;
    assert_eq!(got["addIncidentTags"], json!({ "customTags": ["Phish", "VIP"], "version": 2 }));
    let got = app.ok(&t, ADD_TAGS, json!({ "id": inc.id, "tags": ["BEC"] })).await;
    assert_eq!(got["addIncidentTags"], json!({ "customTags": ["Phish", "VIP", "BEC"], "version": 3 }));

    let got = app.ok(&t, REMOVE_TAGS, json!({ "id": inc.id, "tags": ["phish", "not-there"] })).await;
    assert_eq!(got["removeIncidentTags"], json!({ "customTags": ["VIP", "BEC"], "version": 4 }));
    let got = app.ok(&t, REMOVE_TAGS, json!({ "id": inc.id, "tags": ["not-there"] })).await;
    assert_eq!(got["removeIncidentTags"]["version"], 4);

    let log = activity_of(&app, inc.id).await;
    let kinds: Vec<&str> = log.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["TAG_ADDED", "TAG_ADDED", "TAG_REMOVED"]);
    assert_eq!(log[0].before, Some(json!([])));
    assert_eq!(log[0].after, Some(json!(["Phish", "VIP"])));
    assert_eq!(log[2].message, "Tags removed: Phish");

    // Limits: blank, too long, too many.
    for bad in [json!(["  "]), json!(["x".repeat(101)]), json!([])] {
        assert_eq!(
            app.err_code(Some(&t), ADD_TAGS, json!({ "id": inc.id, "tags": bad })).await,
            "BAD_USER_INPUT"
        );
    }
    let many: Vec<String> = (0..49).map(|n| format!("t{n}")).collect();
    assert_eq!(
        app.err_code(Some(&t), ADD_TAGS, json!({ "id": inc.id, "tags": many })).await,
        "BAD_USER_INPUT",
        "2 + 49 is more than 50"
    );
    let fits: Vec<String> = (0..48).map(|n| format!("t{n}")).collect();
    let got = app.ok(&t, ADD_TAGS, json!({ "id": inc.id, "tags": fits })).await;
    assert_eq!(got["addIncidentTags"]["customTags"].as_array().map(Vec::len), Some(50));
}

#[tokio::test]
async fn comments_are_validated_stored_and_logged_without_a_version_bump() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", &[Severity::Low]).await;

    let got = app.ok(&t, INCIDENT_COMMENT, json!({ "id": inc.id, "c": "  Sender is spoofed.  " })).await
        ["addIncidentComment"]
        .clone();
    assert_eq!(got["body"], "Sender is spoofed.");
    assert_eq!(got["comment"], "Sender is spoofed.");
    assert_eq!(got["author"], ANALYST);
    assert_eq!(got["authorName"], "alice");
    assert_eq!(got["incidentId"], inc.id.to_string());
    assert_eq!(got["alertId"], Value::Null);
    assert_eq!(read_incident(&app, &t, inc.id).await["version"], 1, "comments don't move the version");

    let got =
        app.ok(&t, ALERT_COMMENT, json!({ "id": alerts[0].id, "c": "FP?" })).await["addAlertComment"].clone();
    assert_eq!(got["alertId"], alerts[0].id.to_string());

    let stored = comments_of(&app).await;
    assert_eq!(stored.len(), 2);
    let log = activity_of(&app, inc.id).await;
    assert_eq!(log.len(), 2, "both comments show in the incident's activity");
    assert!(log.iter().all(|a| a.kind == "COMMENT" && a.actor == ANALYST));
    assert_eq!(log[0].message, "Comment: Sender is spoofed.");
    assert_eq!(log[1].alert_id, Some(alerts[0].id));
    assert_eq!(log[1].after, Some(json!({ "commentId": got["id"] })));

    for (q, id) in [(INCIDENT_COMMENT, inc.id), (ALERT_COMMENT, alerts[0].id)] {
        for bad in ["", "   \n ", &"x".repeat(30_001)] {
            assert_eq!(app.err_code(Some(&t), q, json!({ "id": id, "c": bad })).await, "BAD_USER_INPUT");
        }
    }
    app.ok(&t, INCIDENT_COMMENT, json!({ "id": inc.id, "c": "x".repeat(30_000) })).await;
    assert_eq!(comments_of(&app).await.len(), 3);
}

#[tokio::test]
async fn update_alert_changes_its_own_fields_only() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", &[Severity::Low, Severity::Low]).await;
    let input = json!({
        "status": "IN_PROGRESS",
        "assignedTo": "bob@contoso.com",
        "classification": "FALSE_POSITIVE",
        "determination": "NOT_MALICIOUS",
    });
    let got =
        app.ok(&t, UPDATE_ALERT, json!({ "id": alerts[0].id, "input": input })).await["updateAlert"].clone();
    assert_eq!(got["status"], "IN_PROGRESS");
    assert_eq!(got["assignedTo"], "bob@contoso.com");
    assert_eq!(got["classification"], "FALSE_POSITIVE");
    assert_eq!(got["determination"], "NOT_MALICIOUS");
    assert_eq!(read_alert(&app, &t, alerts[0].id).await["status"], "IN_PROGRESS");

    // The incident's own fields and version are untouched.
    let i = read_incident(&app, &t, inc.id).await;
    assert_eq!(
        (i["classification"].clone(), i["assignedTo"].clone(), i["version"].clone()),
        (json!("UNKNOWN"), Value::Null, json!(1))
    );

    let log = activity_of(&app, inc.id).await;
    assert_eq!(log.len(), 4, "one row per changed field");
    assert!(log.iter().all(|a| a.alert_id == Some(alerts[0].id) && a.incident_id == Some(inc.id)));
    let status = log.iter().find(|a| a.field.as_deref() == Some("status")).expect("status row");
    assert_eq!(
        (status.before.clone(), status.after.clone()),
        (Some(json!("NEW")), Some(json!("IN_PROGRESS")))
    );

    // The alert's pair is checked on its own values.
    let (code, _) =
        error(&app, &t, UPDATE_ALERT, json!({ "id": alerts[1].id, "input": { "determination": "MALWARE" } }))
            .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) =
        error(&app, &t, UPDATE_ALERT, json!({ "id": alerts[0].id, "input": { "determination": "MALWARE" } }))
            .await;
    assert_eq!(code, "BAD_USER_INPUT", "MALWARE does not fit FALSE_POSITIVE");
    assert_eq!(read_alert(&app, &t, alerts[0].id).await["determination"], "NOT_MALICIOUS");

    // Unassign with null; a no-op writes nothing.
    let got = app.ok(&t, UPDATE_ALERT, json!({ "id": alerts[0].id, "input": { "assignedTo": null } })).await;
    assert_eq!(got["updateAlert"]["assignedTo"], Value::Null);
    app.ok(
        &t,
        UPDATE_ALERT,
        json!({ "id": alerts[0].id, "input": { "assignedTo": null, "status": "IN_PROGRESS" } }),
    )
    .await;
    assert_eq!(activity_of(&app, inc.id).await.len(), 5);
}

/// Every triage mutation, with variables for the seeded incident and alert.
fn every_mutation(inc: Uuid, alert: Uuid) -> Vec<(String, Value)> {
    vec![
        (update_incident_q(), json!({ "id": inc, "input": { "status": "IN_PROGRESS" } })),
        (UPDATE_INCIDENTS.to_string(), json!({ "ids": [inc], "input": { "status": "ACTIVE" } })),
        (ADD_TAGS.to_string(), json!({ "id": inc, "tags": ["x"] })),
        (REMOVE_TAGS.to_string(), json!({ "id": inc, "tags": ["x"] })),
        (INCIDENT_COMMENT.to_string(), json!({ "id": inc, "c": "note" })),
        (UPDATE_ALERT.to_string(), json!({ "id": alert, "input": { "status": "IN_PROGRESS" } })),
        (ALERT_COMMENT.to_string(), json!({ "id": alert, "c": "note" })),
    ]
}

#[tokio::test]
async fn analysts_and_up_may_triage_readers_and_ingestors_may_not() {
    let app = TestApp::new().await;
    let (inc, alerts) = seed_incident(&app, "contoso", &[Severity::Low]).await;
    for role in [Role::Reader, Role::Ingestor] {
        let t = app.token("contoso", "r@contoso.com", &[role]);
        for (q, vars) in every_mutation(inc.id, alerts[0].id) {
            assert_eq!(app.err_code(Some(&t), &q, vars).await, "FORBIDDEN", "{role:?}: {q}");
        }
    }
    let t = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    assert_eq!(read_incident(&app, &t, inc.id).await["version"], 1, "refused calls changed nothing");
    assert!(comments_of(&app).await.is_empty());
    for (q, vars) in every_mutation(inc.id, alerts[0].id) {
        assert_eq!(app.err_code(None, &q, vars).await, "UNAUTHENTICATED");
    }

    for role in [Role::Analyst, Role::Responder, Role::Admin] {
        let t = app.token("contoso", "a@contoso.com", &[role]);
        for (q, vars) in every_mutation(inc.id, alerts[0].id) {
            let resp = app.gql(Some(&t), &q, vars).await;
            assert!(resp.get("errors").is_none(), "{role:?} may run {q}: {resp:#}");
        }
    }
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_bad_ids_are_bad_input() {
    let app = TestApp::new().await;
    let (inc, alerts) = seed_incident(&app, "fabrikam", &[Severity::Low]).await;
    let t = app.token("contoso", ANALYST, &[Role::Admin]);
    for (q, vars) in every_mutation(inc.id, alerts[0].id) {
        let (code, msg) = error(&app, &t, &q, vars).await;
        assert_eq!(code, "NOT_FOUND", "{q}");
        assert!(!msg.contains("fabrikam"), "{msg}");
    }
    // Exactly like an id that exists nowhere.
    let nowhere = Uuid::now_v7();
    let (_, missing) = error(&app, &t, &update_incident_q(), json!({ "id": nowhere, "input": {} })).await;
    let (_, foreign) = error(&app, &t, &update_incident_q(), json!({ "id": inc.id, "input": {} })).await;
    assert_eq!(missing.replace(&nowhere.to_string(), "ID"), foreign.replace(&inc.id.to_string(), "ID"));

    let ft = app.token("fabrikam", "f@fabrikam.com", &[Role::Reader]);
    assert_eq!(
        read_incident(&app, &ft, inc.id).await["version"],
        1,
        "the other tenant's incident is untouched"
    );
    assert!(comments_of(&app).await.is_empty());
    assert!(activity_of(&app, inc.id).await.is_empty());

    for (q, mut vars) in every_mutation(inc.id, alerts[0].id) {
        if vars.get("id").is_some() {
            vars["id"] = json!("not-a-uuid");
        } else {
            vars["ids"] = json!(["not-a-uuid"]);
        }
        assert_eq!(app.err_code(Some(&t), &q, vars).await, "BAD_USER_INPUT", "{q}");
    }
}
