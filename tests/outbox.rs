//! The event outbox is written in the same transaction as correlation (issue 3 builds subscriptions on
//! it): one ALERT_CORRELATED per placed alert, INCIDENT_CHANGED for the incidents it touched.

mod common;

use common::alerts::*;
use common::*;
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use serde_json::json;

#[derive(diesel::QueryableByName, Debug)]
struct Ev {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tenant_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: serde_json::Value,
}

#[tokio::test]
async fn correlation_writes_events_in_order() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let f = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    app.ok(&t, INGEST, json!({ "alerts": [alert_with("e1", "p1", "LOW", json!([{ "url": { "url": "https://a.example/" } }]))] })).await;
    app.ok(&t, INGEST, json!({ "alerts": [alert_with("e2", "p2", "LOW", json!([{ "url": { "url": "https://b.example/" } }]))] })).await;
    app.ok(
        &t,
        INGEST,
        json!({ "alerts": [alert_with("e3", "p3", "HIGH", json!([
        { "url": { "url": "https://a.example/" } }, { "url": { "url": "https://b.example/" } }
    ]))] }),
    )
    .await;
    app.ok(&f, INGEST, json!({ "alerts": [alert_with("e1", "p1", "LOW", json!([]))] })).await;
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<Ev> = diesel::sql_query("SELECT tenant_id, kind, payload FROM events ORDER BY seq")
        .load(&mut conn)
        .await
        .expect("events");
    let contoso: Vec<&Ev> = rows.iter().filter(|e| e.tenant_id == "contoso").collect();
    let kinds: Vec<(&str, String)> = contoso
        .iter()
        .map(|e| (e.kind.as_str(), e.payload["kind"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ALERT_CORRELATED", "NEW_INCIDENT".to_string()),
            ("INCIDENT_CHANGED", String::new()),
            ("ALERT_CORRELATED", "NEW_INCIDENT".to_string()),
            ("INCIDENT_CHANGED", String::new()),
            ("ALERT_CORRELATED", "MERGED".to_string()),
            ("INCIDENT_CHANGED", String::new()),
            ("ALERT_CORRELATED", "JOINED".to_string()),
            ("INCIDENT_CHANGED", String::new()),
        ],
        "{contoso:#?}"
    );
    let redirected = &contoso[5].payload["changedFields"];
    assert!(redirected.as_array().expect("fields").contains(&json!("status")));
    assert_eq!(rows.iter().filter(|e| e.tenant_id == "fabrikam").count(), 2);
}

#[tokio::test]
async fn triage_writes_events_naming_the_changed_fields() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let a = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let r = app.ok(&t, INGEST, json!({ "alerts": [alert_with("t1", "p1", "LOW", json!([]))] })).await;
    let inc = r["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].clone();
    app.ok(
        &a,
        "mutation($id: ID!) { updateIncident(id: $id, input: { status: IN_PROGRESS, assignedTo: \"alice@contoso.com\" }) { id } }",
        json!({ "id": inc }),
    )
    .await;
    app.ok(
        &a,
        "mutation($id: ID!) { addIncidentComment(id: $id, comment: \"looking\") { id } }",
        json!({ "id": inc }),
    )
    .await;
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<Ev> = diesel::sql_query("SELECT tenant_id, kind, payload FROM events ORDER BY seq")
        .load(&mut conn)
        .await
        .expect("events");
    let tail: Vec<(&str, &serde_json::Value)> =
        rows.iter().skip(2).map(|e| (e.kind.as_str(), &e.payload["changedFields"])).collect();
    assert_eq!(tail[0].0, "INCIDENT_CHANGED");
    let fields = tail[0].1.as_array().expect("fields");
    assert!(fields.contains(&json!("status")) && fields.contains(&json!("assignedTo")), "{tail:?}");
    assert!(tail.iter().any(
        |(k, f)| *k == "ALERT_CHANGED" && f.as_array().is_some_and(|f| f.contains(&json!("assignedTo")))
    ));
    assert_eq!(tail.last().map(|(k, f)| (*k, (*f).clone())), Some(("INCIDENT_CHANGED", json!(["comments"]))));
}
