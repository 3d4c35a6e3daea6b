//! Two tenants with look-alike data never see each other through the queue: lists, single objects,
//! nested fields, counts, search, filters and the summary.

mod common;

use common::seed::{self, hours_ago};
use common::*;
use parapet::auth::Role;
use parapet::db::models::{Alert, Incident};
use parapet::domain::enums::*;
use serde_json::json;

struct Side {
    token: String,
    inc: Incident,
    alert: Alert,
}

/// A tenant with one incident (and `extra` more), one alert, evidence, keys, a comment and a log entry;
/// both tenants name the same shared mailbox, and each has one mailbox of its own.
async fn side(app: &TestApp, tenant: &str, name: &str, own_mailbox: &str, extra: usize) -> Side {
    seed::tenant(app, tenant).await;
    let inc = seed::incident(tenant, name, Severity::High);
    seed::insert_incident(app, &inc).await;
    for n in 0..extra {
        let mut more = seed::incident(tenant, &format!("{name} #{n}"), Severity::Low);
        more.created_at = hours_ago(1);
        seed::insert_incident(app, &more).await;
    }
    let alert = seed::alert(&inc, &format!("{name} alert"), Severity::High);
    seed::insert_alerts(app, std::slice::from_ref(&alert)).await;
    seed::insert_evidence(
        app,
        &[
            seed::mailbox_evidence(&alert, "shared@partner.example"),
            seed::mailbox_evidence(&alert, own_mailbox),
            seed::email_evidence(&alert, "nmid-shared", "shared@partner.example", "attacker@evil.example"),
        ],
    )
    .await;
    seed::insert_keys(
        app,
        &[
            seed::key(&alert, KeyKind::Mailbox, "shared@partner.example"),
            seed::key(&alert, KeyKind::Mailbox, own_mailbox),
            seed::key(&alert, KeyKind::Sender, "attacker@evil.example"),
        ],
    )
    .await;
    seed::insert_comments(
        app,
        &[seed::comment(tenant, Some(inc.id), Some(alert.id), &format!("{name} note"), hours_ago(1))],
    )
    .await;
    seed::insert_activity(
        app,
        &[seed::activity(tenant, Some(inc.id), Some(alert.id), &format!("{name} log"), hours_ago(1))],
    )
    .await;
    let token = app.token(tenant, &format!("reader@{tenant}.com"), &[Role::Reader]);
    Side { token, inc, alert }
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::new().await;
    let c = side(&app, "contoso", "Contoso phish", "ceo@contoso.com", 0).await;
    let f = side(&app, "fabrikam", "Fabrikam phish", "ceo@fabrikam.com", 2).await;

    // Lists and counts.
    let list = "{ incidents { totalCount nodes { id displayName } } alerts { totalCount nodes { id } } }";
    let data = app.ok(&c.token, list, json!({})).await;
    assert_eq!(data["incidents"]["totalCount"], 1);
    assert_eq!(data["incidents"]["nodes"], json!([{ "id": c.inc.id, "displayName": "Contoso phish" }]));
    assert_eq!(data["alerts"], json!({ "totalCount": 1, "nodes": [{ "id": c.alert.id }] }));
    let data = app.ok(&f.token, list, json!({})).await;
    assert_eq!(data["incidents"]["totalCount"], 3);
    assert_eq!(data["alerts"]["nodes"], json!([{ "id": f.alert.id }]));

    // By id: another tenant's objects behave as missing.
    let by_id = "query($i: ID!, $a: ID!) { incident(id: $i) { id } alert(id: $a) { id } }";
    let data = app.ok(&c.token, by_id, json!({ "i": f.inc.id, "a": f.alert.id })).await;
    assert_eq!(data, json!({ "incident": null, "alert": null }));
    let data = app.ok(&f.token, by_id, json!({ "i": c.inc.id, "a": c.alert.id })).await;
    assert_eq!(data, json!({ "incident": null, "alert": null }));

    // Nested: only the tenant's own rows, even for the shared mailbox and message.
    let nested = r#"query($i: ID!) { incident(id: $i) {
        alerts { totalCount nodes { id incident { id } evidence { entityKey } comments { nodes { body } } } }
        evidence { totalCount nodes { entityKey alertIds } } comments { totalCount nodes { body } }
        activity { totalCount nodes { message } } impactedMailboxes alertsByStatus { status count } } }"#;
    let data = app.ok(&c.token, nested, json!({ "i": c.inc.id })).await;
    let i = &data["incident"];
    assert_eq!(i["alerts"]["totalCount"], 1);
    assert_eq!(i["alerts"]["nodes"][0]["incident"]["id"], json!(c.inc.id));
    assert_eq!(i["alerts"]["nodes"][0]["evidence"].as_array().map(Vec::len), Some(3));
    assert_eq!(i["alerts"]["nodes"][0]["comments"]["nodes"], json!([{ "body": "Contoso phish note" }]));
    assert_eq!(i["evidence"]["totalCount"], 3);
    let ev = i["evidence"]["nodes"].as_array().expect("evidence");
    assert_eq!(ev.len(), 3, "the shared entities appear once, from this tenant only");
    assert!(ev.iter().all(|e| e["alertIds"] == json!([c.alert.id])));
    assert_eq!(i["comments"], json!({ "totalCount": 1, "nodes": [{ "body": "Contoso phish note" }] }));
    assert_eq!(i["activity"], json!({ "totalCount": 1, "nodes": [{ "message": "Contoso phish log" }] }));
    assert_eq!(i["impactedMailboxes"], 2, "shared + own, not the other tenant's");
    assert_eq!(i["alertsByStatus"][0], json!({ "status": "NEW", "count": 1 }));

    // Search: the shared mailbox and sender find only the tenant's own incident; the other tenant's own
    // mailbox and incident id find nothing.
    let search = "query($s: String) { incidents(filter: { search: $s }) { totalCount nodes { id } } }";
    for s in ["shared@partner.example", "attacker@evil.example", "ceo@contoso.com", "phish"] {
        let data = app.ok(&c.token, search, json!({ "s": s })).await;
        assert_eq!(data["incidents"]["nodes"], json!([{ "id": c.inc.id }]), "{s}");
    }
    for s in ["ceo@fabrikam.com".to_string(), f.inc.id.to_string(), "Fabrikam".to_string()] {
        let data = app.ok(&c.token, search, json!({ "s": s })).await;
        assert_eq!(data["incidents"]["totalCount"], 0, "{s}");
    }
    let alert_search = "query($s: String) { alerts(filter: { search: $s }) { totalCount } }";
    let data = app.ok(&c.token, alert_search, json!({ "s": f.alert.id.to_string() })).await;
    assert_eq!(data["alerts"]["totalCount"], 0);
    let data = app.ok(&c.token, alert_search, json!({ "s": f.alert.provider_alert_id })).await;
    assert_eq!(data["alerts"]["totalCount"], 0);

    // Filters naming the other tenant's objects match nothing.
    let by_incident = "query($i: [ID!]) { alerts(filter: { incidentId: $i }) { totalCount } }";
    let data = app.ok(&c.token, by_incident, json!({ "i": [f.inc.id] })).await;
    assert_eq!(data["alerts"]["totalCount"], 0);

    // Summary.
    let summary = "{ incidentSummary { byStatus { status count } unassigned open alertsLast24h } }";
    let data = app.ok(&c.token, summary, json!({})).await;
    assert_eq!(data["incidentSummary"]["open"], 1);
    assert_eq!(data["incidentSummary"]["unassigned"], 1);
    assert_eq!(data["incidentSummary"]["alertsLast24h"], 1);
    assert_eq!(data["incidentSummary"]["byStatus"][0], json!({ "status": "ACTIVE", "count": 1 }));
    let data = app.ok(&f.token, summary, json!({})).await;
    assert_eq!(data["incidentSummary"]["open"], 3);

    // A cursor carries no tenant power: the other tenant's cursor only positions within one's own list.
    let page = "query($a: String) { incidents(first: 1, after: $a) { totalCount nodes { id } pageInfo { endCursor } } }";
    let data = app.ok(&f.token, page, json!({})).await;
    let cursor = data["incidents"]["pageInfo"]["endCursor"].clone();
    let data = app.ok(&c.token, page, json!({ "a": cursor })).await;
    let nodes = data["incidents"]["nodes"].as_array().expect("nodes");
    assert!(nodes.iter().all(|n| n["id"] == json!(c.inc.id)));
    assert_eq!(data["incidents"]["totalCount"], 1);
}
