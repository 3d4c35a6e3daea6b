//! Triage roll-ups between incidents and their alerts (assignment, resolution, reopening), and bulk
//! updates of incidents (all or nothing), through GraphQL with real tokens.

mod common;

use common::seed;
use common::*;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use parapet::db::models::{Activity, Alert, Incident};
use parapet::db::schema::activity;
use parapet::domain::enums::*;
use serde_json::{json, Value};
use uuid::Uuid;

const UPDATE_INCIDENT: &str = "mutation($id: ID!, $input: UpdateIncidentInput!) { updateIncident(id: $id, \
    input: $input) { id status assignedTo resolvedAt resolvingComment version lastModifiedBy } }";
const UPDATE_INCIDENTS: &str = "mutation($ids: [ID!]!, $input: UpdateIncidentInput!) \
    { updateIncidents(ids: $ids, input: $input) { id status assignedTo classification determination version } }";
const READ_INCIDENT: &str = "query($id: ID!) { incident(id: $id) { id status assignedTo classification \
    determination resolvedAt version lastModifiedBy } }";
const UPDATE_ALERT: &str =
    "mutation($id: ID!, $input: UpdateAlertInput!) { updateAlert(id: $id, input: $input) \
    { id status resolvedAt } }";
const READ_ALERT: &str = "query($id: ID!) { alert(id: $id) { id status assignedTo resolvedAt } }";

const ANALYST: &str = "alice@contoso.com";

/// An open incident with `n` new alerts in tenant `tenant`.
async fn seed_incident(app: &TestApp, tenant: &str, n: usize) -> (Incident, Vec<Alert>) {
    let mut conn = app.state.pool.get().await.expect("conn");
    parapet::db::queries::tenants::ensure(&mut conn, tenant).await.expect("tenant");
    let inc = seed::incident(tenant, "Phish campaign", Severity::Medium);
    seed::insert_incident(app, &inc).await;
    let alerts: Vec<Alert> =
        (0..n).map(|k| seed::alert(&inc, &format!("Alert {k}"), Severity::Medium)).collect();
    seed::insert_alerts(app, &alerts).await;
    (inc, alerts)
}

/// Activity rows naming an incident, oldest first.
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

async fn incident(app: &TestApp, t: &str, id: Uuid) -> Value {
    app.ok(t, READ_INCIDENT, json!({ "id": id })).await["incident"].clone()
}

async fn alert(app: &TestApp, t: &str, id: Uuid) -> Value {
    app.ok(t, READ_ALERT, json!({ "id": id })).await["alert"].clone()
}

async fn set_alert_status(app: &TestApp, t: &str, id: Uuid, status: &str) -> Value {
    app.ok(t, UPDATE_ALERT, json!({ "id": id, "input": { "status": status } })).await["updateAlert"].clone()
}

#[tokio::test]
async fn assigning_an_incident_assigns_its_alerts_and_null_unassigns_them() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", 3).await;
    // One alert already has another owner, one already has the new one.
    app.ok(&t, UPDATE_ALERT, json!({ "id": alerts[0].id, "input": { "assignedTo": "carol@contoso.com" } }))
        .await;
    app.ok(&t, UPDATE_ALERT, json!({ "id": alerts[1].id, "input": { "assignedTo": "bob@contoso.com" } }))
        .await;

    let got = app
        .ok(&t, UPDATE_INCIDENT, json!({ "id": inc.id, "input": { "assignedTo": "bob@contoso.com" } }))
        .await;
    assert_eq!(got["updateIncident"]["assignedTo"], "bob@contoso.com");
    for a in &alerts {
        assert_eq!(alert(&app, &t, a.id).await["assignedTo"], "bob@contoso.com");
    }
    let rollups: Vec<Activity> =
        activity_of(&app, inc.id).await.into_iter().filter(|a| a.kind == "ROLLUP").collect();
    assert_eq!(rollups.len(), 2, "only the alerts whose owner changed are logged");
    let carol = rollups.iter().find(|a| a.alert_id == Some(alerts[0].id)).expect("row for alert 0");
    assert_eq!(carol.before, Some(json!("carol@contoso.com")));
    assert_eq!(carol.after, Some(json!("bob@contoso.com")));
    assert_eq!(carol.actor, ANALYST);

    let got = app.ok(&t, UPDATE_INCIDENT, json!({ "id": inc.id, "input": { "assignedTo": null } })).await;
    assert_eq!(got["updateIncident"]["assignedTo"], Value::Null);
    assert_eq!(got["updateIncident"]["version"], 3);
    for a in &alerts {
        assert_eq!(alert(&app, &t, a.id).await["assignedTo"], Value::Null, "unassigned with the incident");
    }
}

#[tokio::test]
async fn resolving_an_incident_resolves_its_open_alerts() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", 3).await;
    let first = set_alert_status(&app, &t, alerts[0].id, "RESOLVED").await;
    set_alert_status(&app, &t, alerts[1].id, "IN_PROGRESS").await;

    let input = json!({ "status": "RESOLVED", "resolvingComment": "Phish removed from all mailboxes." });
    let got =
        app.ok(&t, UPDATE_INCIDENT, json!({ "id": inc.id, "input": input })).await["updateIncident"].clone();
    assert_eq!(got["status"], "RESOLVED");
    assert!(got["resolvedAt"].is_string());
    assert_eq!(got["resolvingComment"], "Phish removed from all mailboxes.");
    assert_eq!(got["version"], 2);

    for a in &alerts[1..] {
        let a = alert(&app, &t, a.id).await;
        assert_eq!(a["status"], "RESOLVED");
        assert_eq!(a["resolvedAt"], got["resolvedAt"], "resolved with the incident, at the same time");
    }
    assert_eq!(
        alert(&app, &t, alerts[0].id).await["resolvedAt"],
        first["resolvedAt"],
        "already resolved: kept"
    );
    let log = activity_of(&app, inc.id).await;
    let resolved_alerts: Vec<Option<Uuid>> = log
        .iter()
        .filter(|a| a.kind == "ROLLUP" && a.field.as_deref() == Some("status"))
        .map(|a| a.alert_id)
        .collect();
    assert_eq!(resolved_alerts.len(), 2);
    assert!(log.iter().any(|a| a.field.as_deref() == Some("resolvingComment")));

    // Reopening the incident clears resolvedAt (its alerts stay as they are).
    let got = app.ok(&t, UPDATE_INCIDENT, json!({ "id": inc.id, "input": { "status": "ACTIVE" } })).await;
    assert_eq!(got["updateIncident"]["resolvedAt"], Value::Null);
    assert_eq!(alert(&app, &t, alerts[1].id).await["status"], "RESOLVED");
}

#[tokio::test]
async fn resolving_the_last_open_alert_resolves_the_incident_by_the_system() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", 2).await;

    set_alert_status(&app, &t, alerts[0].id, "RESOLVED").await;
    let i = incident(&app, &t, inc.id).await;
    assert_eq!(
        (i["status"].clone(), i["version"].clone()),
        (json!("ACTIVE"), json!(1)),
        "one alert still open"
    );

    set_alert_status(&app, &t, alerts[1].id, "RESOLVED").await;
    let i = incident(&app, &t, inc.id).await;
    assert_eq!(i["status"], "RESOLVED");
    assert!(i["resolvedAt"].is_string());
    assert_eq!(i["version"], 2, "the roll-up moves the version");
    assert_eq!(i["lastModifiedBy"], "system");

    let rollup: Vec<Activity> = activity_of(&app, inc.id)
        .await
        .into_iter()
        .filter(|a| a.kind == "ROLLUP" && a.alert_id.is_none())
        .collect();
    assert_eq!(rollup.len(), 1);
    assert_eq!(rollup[0].actor, "system");
    assert_eq!(rollup[0].field.as_deref(), Some("status"));
    assert_eq!(
        (rollup[0].before.clone(), rollup[0].after.clone()),
        (Some(json!("ACTIVE")), Some(json!("RESOLVED")))
    );
    assert!(rollup[0].message.contains("all its alerts are resolved"), "{}", rollup[0].message);
}

#[tokio::test]
async fn reopening_an_alert_reopens_its_resolved_incident() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, alerts) = seed_incident(&app, "contoso", 2).await;
    app.ok(&t, UPDATE_INCIDENT, json!({ "id": inc.id, "input": { "status": "RESOLVED" } })).await;
    assert_eq!(incident(&app, &t, inc.id).await["version"], 2);

    let a = set_alert_status(&app, &t, alerts[0].id, "IN_PROGRESS").await;
    assert_eq!(a["resolvedAt"], Value::Null);
    let i = incident(&app, &t, inc.id).await;
    assert_eq!(i["status"], "ACTIVE");
    assert_eq!(i["resolvedAt"], Value::Null);
    assert_eq!(i["version"], 3);
    assert_eq!(i["lastModifiedBy"], "system");
    let log = activity_of(&app, inc.id).await;
    let reopen = log.last().expect("rows");
    assert_eq!((reopen.actor.as_str(), reopen.kind.as_str()), ("system", "ROLLUP"));
    assert_eq!(reopen.after, Some(json!("ACTIVE")));

    // Another alert reopened while the incident is already open: no further roll-up.
    set_alert_status(&app, &t, alerts[1].id, "NEW").await;
    assert_eq!(incident(&app, &t, inc.id).await["version"], 3);
    // Resolving them both again resolves the incident again.
    set_alert_status(&app, &t, alerts[0].id, "RESOLVED").await;
    set_alert_status(&app, &t, alerts[1].id, "RESOLVED").await;
    assert_eq!(incident(&app, &t, inc.id).await["status"], "RESOLVED");
}

#[tokio::test]
async fn bulk_update_changes_every_incident_and_returns_them_in_order() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let mut seeded = Vec::new();
    for _ in 0..3 {
        seeded.push(seed_incident(&app, "contoso", 2).await);
    }
    let ids = vec![seeded[2].0.id, seeded[0].0.id, seeded[1].0.id, seeded[0].0.id];
    let input = json!({
        "status": "IN_PROGRESS",
        "assignedTo": "bob@contoso.com",
        "classification": "TRUE_POSITIVE",
        "determination": "PHISHING",
    });
    let got =
        app.ok(&t, UPDATE_INCIDENTS, json!({ "ids": ids, "input": input })).await["updateIncidents"].clone();
    let returned: Vec<&str> = got.as_array().expect("list").iter().filter_map(|i| i["id"].as_str()).collect();
    let expected: Vec<String> = ids[..3].iter().map(Uuid::to_string).collect();
    assert_eq!(returned, expected, "in the order given, duplicates once");
    for (inc, alerts) in &seeded {
        let i = incident(&app, &t, inc.id).await;
        assert_eq!(i["status"], "IN_PROGRESS");
        assert_eq!(i["determination"], "PHISHING");
        assert_eq!(i["version"], 2);
        for a in alerts {
            assert_eq!(alert(&app, &t, a.id).await["assignedTo"], "bob@contoso.com");
        }
    }
    // An empty list is an empty answer.
    let got = app.ok(&t, UPDATE_INCIDENTS, json!({ "ids": [], "input": input })).await;
    assert_eq!(got["updateIncidents"], json!([]));
}

#[tokio::test]
async fn bulk_update_is_all_or_nothing() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (a, _) = seed_incident(&app, "contoso", 1).await;
    let (b, _) = seed_incident(&app, "contoso", 1).await;
    let (foreign, _) = seed_incident(&app, "fabrikam", 1).await;
    // `a` and `b` are true positives, `c` a false positive, so MALWARE fits all but `c`; `c` is the newest,
    // so it fails after `a` and `b` were written (incidents are changed in id order).
    let (c, _) = seed_incident(&app, "contoso", 1).await;
    for (id, class) in [(a.id, "TRUE_POSITIVE"), (b.id, "TRUE_POSITIVE"), (c.id, "FALSE_POSITIVE")] {
        app.ok(&t, UPDATE_INCIDENT, json!({ "id": id, "input": { "classification": class } })).await;
    }
    let mut merged = seed::incident("contoso", "merged", Severity::Low);
    merged.status = IncidentStatus::Redirected;
    merged.redirect_incident_id = Some(a.id);
    seed::insert_incident(&app, &merged).await;

    let snapshot = async || {
        let mut v = Vec::new();
        for id in [a.id, b.id, c.id, merged.id] {
            v.push(incident(&app, &t, id).await);
        }
        v
    };
    let before = snapshot().await;
    let log_before = activity_of(&app, a.id).await.len() + activity_of(&app, b.id).await.len();

    let unknown = Uuid::now_v7();
    let status = json!({ "status": "RESOLVED", "assignedTo": "bob@contoso.com" });
    let cases = [
        (vec![a.id, b.id, unknown], status.clone(), "NOT_FOUND", unknown),
        (vec![a.id, foreign.id, b.id], status.clone(), "NOT_FOUND", foreign.id),
        (vec![merged.id, a.id, b.id], status.clone(), "CONFLICT", merged.id),
        (
            vec![c.id, a.id, b.id],
            json!({ "status": "RESOLVED", "determination": "MALWARE" }),
            "BAD_USER_INPUT",
            c.id,
        ),
    ];
    for (ids, input, want, failing) in cases {
        let resp = app.gql(Some(&t), UPDATE_INCIDENTS, json!({ "ids": ids, "input": input })).await;
        let e = &resp["errors"][0];
        assert_eq!(e["extensions"]["code"], want, "{resp:#}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(message.contains(&failing.to_string()), "names the failing id: {message}");
        assert!(!message.contains("fabrikam"));
        assert_eq!(snapshot().await, before, "nothing changed after {want}");
    }
    assert_eq!(activity_of(&app, a.id).await.len() + activity_of(&app, b.id).await.len(), log_before);
    assert_eq!(activity_of(&app, foreign.id).await.len(), 0);
}

#[tokio::test]
async fn bulk_update_refuses_more_than_100_and_bad_ids() {
    let app = TestApp::new().await;
    let t = app.token("contoso", ANALYST, &[Role::Analyst]);
    let (inc, _) = seed_incident(&app, "contoso", 1).await;
    let ids: Vec<String> = (0..101).map(|_| Uuid::now_v7().to_string()).collect();
    let resp =
        app.gql(Some(&t), UPDATE_INCIDENTS, json!({ "ids": ids, "input": { "status": "RESOLVED" } })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(resp["errors"][0]["message"].as_str().unwrap_or_default().contains("100"));

    let ids = json!([inc.id, "nope"]);
    assert_eq!(
        app.err_code(Some(&t), UPDATE_INCIDENTS, json!({ "ids": ids, "input": { "status": "RESOLVED" } }))
            .await,
        "BAD_USER_INPUT"
    );
    let input = json!({ "status": "REDIRECTED" });
    assert_eq!(
        app.err_code(Some(&t), UPDATE_INCIDENTS, json!({ "ids": [inc.id], "input": input })).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(incident(&app, &t, inc.id).await["version"], 1);

    // Exactly 100 is fine (here: the one incident named 100 times).
    let ids: Vec<Uuid> = vec![inc.id; 100];
    let got = app.ok(&t, UPDATE_INCIDENTS, json!({ "ids": ids, "input": { "status": "IN_PROGRESS" } })).await;
    assert_eq!(got["updateIncidents"].as_array().map(Vec::len), Some(1));
}
