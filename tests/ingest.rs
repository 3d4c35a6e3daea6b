//! `ingestAlerts`: roles, per-item validation, idempotent re-sends, batch limits.

mod common;

use common::alerts::*;
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

async fn ingest(app: &TestApp, token: &str, alerts: Value) -> Value {
    app.ok(token, INGEST, json!({ "alerts": alerts })).await["ingestAlerts"].clone()
}

#[tokio::test]
async fn ingestor_and_admin_may_ingest_others_may_not() {
    let app = TestApp::new().await;
    let a = url_alert("p1", "alice@contoso.com", "https://evil.example/a", "bad@evil.example");
    for role in [Role::Reader, Role::Analyst, Role::Responder] {
        let t = app.token("contoso", "x@contoso.com", &[role]);
        assert_eq!(app.err_code(Some(&t), INGEST, json!({ "alerts": [a.clone()] })).await, "FORBIDDEN");
    }
    assert_eq!(app.err_code(None, INGEST, json!({ "alerts": [a.clone()] })).await, "UNAUTHENTICATED");
    for (i, role) in [Role::Ingestor, Role::Admin].into_iter().enumerate() {
        let t = app.token("contoso", "gw@contoso.com", &[role]);
        let r = ingest(
            &app,
            &t,
            json!([url_alert(&format!("q{i}"), "a@contoso.com", "https://x.example/", "s@y.example")]),
        )
        .await;
        assert_eq!(r["accepted"], 1);
    }
}

#[tokio::test]
async fn bad_items_are_rejected_alone_and_good_ones_committed() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let good = url_alert("good-1", "alice@contoso.com", "https://evil.example/a", "bad@evil.example");
    let no_kind = alert_with("bad-0", "p", "LOW", json!([{ "verdict": "MALICIOUS" }]));
    let two_kinds = alert_with(
        "bad-1",
        "p",
        "LOW",
        json!([{ "url": { "url": "https://a.example/" }, "ip": { "address": "10.0.0.1" } }]),
    );
    let bad_hash = alert_with("bad-2", "p", "LOW", json!([{ "file": { "sha256": "abc", "name": "x.exe" } }]));
    let bad_addr =
        alert_with("bad-3", "p", "LOW", json!([{ "mailbox": { "primaryAddress": "not an address" } }]));
    let bad_url = alert_with("bad-4", "p", "LOW", json!([{ "url": { "url": "javascript:alert(1)" } }]));
    let mut long = alert_with("bad-5", "p", "LOW", json!([]));
    long["title"] = json!("x".repeat(5000));
    let good2 = alert_with("good-2", "p", "HIGH", json!([{ "ip": { "address": "198.51.100.4" } }]));
    let r =
        ingest(&app, &t, json!([good, no_kind, two_kinds, bad_hash, bad_addr, bad_url, long, good2])).await;
    assert_eq!(r["accepted"], 2, "{r:#}");
    assert_eq!(r["rejected"], 6);
    let items = r["items"].as_array().expect("items");
    assert_eq!(items[0]["status"], "CREATED");
    assert_eq!(items[7]["status"], "CREATED");
    for (i, needle) in [
        (1, "exactly one"),
        (2, "exactly one"),
        (3, "SHA-256"),
        (4, "e-mail address"),
        (5, "URL"),
        (6, "longer"),
    ] {
        assert_eq!(items[i]["status"], "REJECTED");
        assert_eq!(items[i]["index"], i);
        assert!(items[i]["alert"].is_null());
        let err = items[i]["error"].as_str().unwrap_or_default();
        assert!(err.contains(needle), "item {i}: {err}");
    }
    // The good ones are really there.
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let id = items[7]["alert"]["id"].as_str().expect("id");
    let d =
        app.ok(&reader, "query($id: ID!) { alert(id: $id) { title severity } }", json!({ "id": id })).await;
    assert_eq!(d["alert"]["severity"], "HIGH");
}

#[tokio::test]
async fn an_unknown_enum_value_refuses_the_whole_request() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut bad = url_alert("p1", "alice@contoso.com", "https://evil.example/a", "bad@evil.example");
    bad["severity"] = json!("CATASTROPHIC");
    let good = url_alert("p2", "bob@contoso.com", "https://evil.example/a", "bad@evil.example");
    let resp = app.gql(Some(&t), INGEST, json!({ "alerts": [good, bad] })).await;
    assert!(resp["errors"].is_array(), "{resp:#}");
    let analyst = app.token("contoso", "a@contoso.com", &[Role::Analyst]);
    let again = app
        .ok(
            &t,
            INGEST,
            json!({ "alerts": [url_alert("p3", "c@contoso.com", "https://other.example/", "z@q.example")] }),
        )
        .await;
    // Only p3 exists: one incident with one alert.
    let inc =
        again["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].as_str().expect("incident").to_string();
    let d =
        app.ok(&analyst, "query($id: ID!) { incident(id: $id) { alertCount } }", json!({ "id": inc })).await;
    assert_eq!(d["incident"]["alertCount"], 1);
}

#[tokio::test]
async fn resending_updates_the_alert_and_never_duplicates() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut a = url_alert("same-id", "alice@contoso.com", "https://evil.example/a", "bad@evil.example");
    let first = ingest(&app, &t, json!([a.clone()])).await;
    a["severity"] = json!("HIGH");
    a["title"] = json!("Updated title");
    let second = ingest(&app, &t, json!([a.clone(), a])).await;
    assert_eq!(second["items"][0]["status"], "UPDATED");
    assert_eq!(second["items"][1]["status"], "UPDATED");
    let id = first["items"][0]["alert"]["id"].clone();
    assert_eq!(second["items"][0]["alert"]["id"], id);
    assert_eq!(second["items"][1]["alert"]["id"], id);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let d = app
        .ok(&reader, "query($id: ID!) { alert(id: $id) { title severity incidentId } }", json!({ "id": id }))
        .await;
    assert_eq!(d["alert"]["severity"], "HIGH");
    assert_eq!(d["alert"]["title"], "Updated title");
    let inc = d["alert"]["incidentId"].clone();
    let d = app
        .ok(&reader, "query($id: ID!) { incident(id: $id) { alertCount severity } }", json!({ "id": inc }))
        .await;
    assert_eq!(d["incident"]["alertCount"], 1);
    assert_eq!(d["incident"]["severity"], "HIGH");
}

#[tokio::test]
async fn batches_are_capped_at_500() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let many: Vec<Value> = (0..501).map(|i| alert_with(&format!("n{i}"), "p", "LOW", json!([]))).collect();
    assert_eq!(app.err_code(Some(&t), INGEST, json!({ "alerts": many })).await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn an_ingestor_limited_to_a_service_source_cannot_push_others() {
    let app = TestApp::new().await;
    let t = token_with(
        "contoso",
        "gw@contoso.com",
        &[Role::Ingestor],
        Some("microsoftDefenderForOffice365"),
        600,
    );
    let mut other = alert_with("o1", "p", "LOW", json!([]));
    other["serviceSource"] = json!("microsoftDefenderForEndpoint");
    let own = alert_with("o2", "p", "LOW", json!([]));
    let r = ingest(&app, &t, json!([other, own])).await;
    assert_eq!(r["items"][0]["status"], "REJECTED");
    assert!(r["items"][0]["error"].as_str().unwrap_or_default().contains("serviceSource"));
    assert_eq!(r["items"][1]["status"], "CREATED");
}

#[tokio::test]
async fn tenants_never_correlate_or_see_each_other() {
    let app = TestApp::new().await;
    let a = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let b = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let ra = ingest(
        &app,
        &a,
        json!([url_alert("p1", "x@shared.example", "https://evil.example/", "s@evil.example")]),
    )
    .await;
    let rb = ingest(
        &app,
        &b,
        json!([url_alert("p1", "x@shared.example", "https://evil.example/", "s@evil.example")]),
    )
    .await;
    assert_eq!(rb["items"][0]["status"], "CREATED", "same provider id in another tenant is a new alert");
    assert_ne!(ra["items"][0]["alert"]["incident"]["id"], rb["items"][0]["alert"]["incident"]["id"]);
    let reader_b = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let id_a = ra["items"][0]["alert"]["id"].clone();
    let inc_a = ra["items"][0]["alert"]["incident"]["id"].clone();
    let d = app
        .ok(
            &reader_b,
            "query($a: ID!, $i: ID!) { alert(id: $a) { id } incident(id: $i) { id } }",
            json!({ "a": id_a, "i": inc_a }),
        )
        .await;
    assert!(d["alert"].is_null() && d["incident"].is_null());
}

/// Batches written before their key locks race on providerAlertId: the first to commit creates each
/// alert and every other batch updates it, never a second row and never an error.
#[tokio::test]
async fn concurrent_batches_sending_the_same_alerts_store_each_once() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let batch: Vec<Value> = (0..10)
        .map(|i| {
            url_alert(
                &format!("dup-{i}"),
                &format!("u{i}@contoso.com"),
                "https://evil.example/x",
                "s@evil.example",
            )
        })
        .collect();
    let calls = (0..4).map(|k| {
        let mut b = batch.clone();
        b.rotate_left(k * 3);
        let (app, t) = (&app, &t);
        async move { ingest(app, t, Value::Array(b)).await }
    });
    let results = futures::future::join_all(calls).await;
    let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut created = 0;
    for r in &results {
        assert_eq!(r["accepted"], 10, "{r}");
        for item in r["items"].as_array().expect("items") {
            let status = item["status"].as_str().expect("status");
            assert!(status == "CREATED" || status == "UPDATED", "{item}");
            created += usize::from(status == "CREATED");
            let id = item["alert"]["id"].as_str().expect("id").to_string();
            let incident = item["alert"]["incident"]["id"].as_str().expect("incident").to_string();
            let prev = ids.insert(id, incident.clone());
            assert!(prev.is_none_or(|p| p == incident), "an alert is in one incident");
        }
    }
    assert_eq!(created, 10, "each alert is created exactly once");
    assert_eq!(ids.len(), 10, "one row per providerAlertId");
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let d =
        app.ok(&reader, "{ alerts(first: 100) { totalCount } incidents { totalCount } }", json!({})).await;
    assert_eq!(d["alerts"]["totalCount"], 10);
    assert_eq!(d["incidents"]["totalCount"], 1, "the shared URL correlates them all");
}
