//! Automatic correlation through `ingestAlerts`: join, windows, weak keys, merges, hygiene, resolved
//! incidents, and the concurrent campaign.

mod common;

use common::alerts::*;
use common::*;
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use serde_json::{json, Value};

async fn ingest(app: &TestApp, token: &str, alerts: Value) -> Value {
    app.ok(token, INGEST, json!({ "alerts": alerts })).await["ingestAlerts"].clone()
}

fn incident_of(r: &Value, i: usize) -> String {
    r["items"][i]["alert"]["incident"]["id"].as_str().expect("incident id").to_string()
}

const ALERT_Q: &str =
    "query($id: ID!) { alert(id: $id) { incidentId correlation { kind matchedKeys { kind value } \
    skippedKeys { kind value reason } at } } }";
const INCIDENT_Q: &str = "query($id: ID!) { incident(id: $id) { id status alertCount displayName severity \
    priorityScore priorityReasons redirectIncidentId version } }";

async fn sql(app: &TestApp, q: &str) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::sql_query(q).execute(&mut conn).await.expect("sql");
}

#[tokio::test]
async fn alerts_sharing_a_strong_key_join_and_explain_why() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let a = ingest(
        &app,
        &t,
        json!([url_alert("a1", "alice@contoso.com", "https://evil.example/login", "x@evil.example")]),
    )
    .await;
    let b = ingest(
        &app,
        &t,
        json!([url_alert("a2", "bob@contoso.com", "https://EVIL.example/login", "y@other.example")]),
    )
    .await;
    assert_eq!(incident_of(&a, 0), incident_of(&b, 0));
    let first = app.ok(&r, ALERT_Q, json!({ "id": a["items"][0]["alert"]["id"] })).await;
    assert_eq!(first["alert"]["correlation"]["kind"], "NEW_INCIDENT");
    let second = app.ok(&r, ALERT_Q, json!({ "id": b["items"][0]["alert"]["id"] })).await;
    assert_eq!(second["alert"]["correlation"]["kind"], "JOINED");
    let keys = second["alert"]["correlation"]["matchedKeys"].as_array().expect("keys").clone();
    assert!(keys.contains(&json!({ "kind": "URL", "value": "https://evil.example/login" })), "{keys:?}");
    let inc = app.ok(&r, INCIDENT_Q, json!({ "id": incident_of(&a, 0) })).await;
    assert_eq!(inc["incident"]["alertCount"], 2);
    assert_eq!(
        inc["incident"]["displayName"],
        "Email messages containing malicious URL removed after delivery involving 2 mailboxes"
    );
    // The roll-up counts both alerts' mailboxes and their malicious evidence.
    assert_eq!(
        inc["incident"]["priorityReasons"],
        json!([
            "Informational severity (+5)",
            "2 impacted mailboxes (+4)",
            "Malicious evidence (+15)",
            "2 alerts (+1)"
        ])
    );
    assert_eq!(inc["incident"]["priorityScore"], 25);
}

#[tokio::test]
async fn unrelated_alerts_get_their_own_incidents_and_windows_apply() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let a = ingest(
        &app,
        &t,
        json!([url_alert("a1", "alice@contoso.com", "https://one.example/", "x@one.example")]),
    )
    .await;
    let b = ingest(
        &app,
        &t,
        json!([url_alert("a2", "bob@contoso.com", "https://two.example/", "y@two.example")]),
    )
    .await;
    assert_ne!(incident_of(&a, 0), incident_of(&b, 0));
    // Same URL, but four days apart: outside the 72 h strong window.
    let mut old = url_alert("w1", "carol@contoso.com", "https://three.example/", "z@three.example");
    old["lastActivityAt"] = json!("2026-01-01T00:00:00Z");
    let mut late = url_alert("w2", "dave@contoso.com", "https://three.example/", "q@four.example");
    late["lastActivityAt"] = json!("2026-01-05T00:00:00Z");
    let mut inside = url_alert("w3", "erin@contoso.com", "https://three.example/", "q@five.example");
    inside["lastActivityAt"] = json!("2026-01-03T12:00:00Z");
    let r = ingest(&app, &t, json!([old, late])).await;
    assert_ne!(incident_of(&r, 0), incident_of(&r, 1));
    // An alert in between shares the window with both: it joins one and merges the other.
    let m = ingest(&app, &t, json!([inside])).await;
    assert_eq!(incident_of(&m, 0), incident_of(&r, 0), "the oldest of equally good candidates wins");
}

#[tokio::test]
async fn a_weak_key_alone_joins_only_with_the_same_policy() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mbx = json!([{ "mailbox": { "primaryAddress": "alice@contoso.com" } }]);
    let r = ingest(
        &app,
        &t,
        json!([
            alert_with("m1", "A user is restricted from sending email", "HIGH", mbx.clone()),
            alert_with("m2", "Suspicious email sending patterns detected", "MEDIUM", mbx.clone()),
            alert_with("m3", "A user is restricted from sending email", "HIGH", mbx.clone()),
        ]),
    )
    .await;
    assert_ne!(incident_of(&r, 0), incident_of(&r, 1), "different policies: a shared mailbox is not enough");
    assert_eq!(incident_of(&r, 0), incident_of(&r, 2), "same policy: the mailbox joins them");
}

#[tokio::test]
async fn an_alert_bridging_two_incidents_merges_them() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let a = ingest(
        &app,
        &t,
        json!([alert_with("b1", "p1", "LOW", json!([{ "url": { "url": "https://a.example/" } }]))]),
    )
    .await;
    let b = ingest(
        &app,
        &t,
        json!([alert_with("b2", "p2", "HIGH", json!([{ "file": { "sha256": "a".repeat(64) } }]))]),
    )
    .await;
    let (ia, ib) = (incident_of(&a, 0), incident_of(&b, 0));
    assert_ne!(ia, ib);
    let c = ingest(
        &app,
        &t,
        json!([alert_with(
            "b3",
            "p3",
            "MEDIUM",
            json!([
                { "url": { "url": "https://a.example/" } }, { "file": { "sha256": "A".repeat(64) } }
            ])
        )]),
    )
    .await;
    let target = incident_of(&c, 0);
    assert_eq!(target, ia, "ties go to the oldest incident");
    let src = app.ok(&r, INCIDENT_Q, json!({ "id": ib })).await;
    assert_eq!(src["incident"]["status"], "REDIRECTED");
    assert_eq!(src["incident"]["redirectIncidentId"], json!(target));
    let tgt = app.ok(&r, INCIDENT_Q, json!({ "id": target })).await;
    assert_eq!(tgt["incident"]["alertCount"], 3);
    assert_eq!(tgt["incident"]["severity"], "HIGH");
    let moved = app.ok(&r, ALERT_Q, json!({ "id": b["items"][0]["alert"]["id"] })).await;
    assert_eq!(moved["alert"]["incidentId"], json!(target));
    assert_eq!(moved["alert"]["correlation"]["kind"], "MERGED");
    assert_eq!(moved["alert"]["correlation"]["matchedKeys"][0]["kind"], "FILE_SHA256");
}

#[tokio::test]
async fn incidents_with_different_owners_are_not_merged() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let a = ingest(
        &app,
        &t,
        json!([alert_with("c1", "p1", "LOW", json!([{ "url": { "url": "https://a.example/" } }]))]),
    )
    .await;
    let b = ingest(
        &app,
        &t,
        json!([alert_with("c2", "p2", "LOW", json!([{ "url": { "url": "https://b.example/" } }]))]),
    )
    .await;
    sql(
        &app,
        &format!(
            "UPDATE incidents SET assigned_to = 'alice@contoso.com' WHERE id = '{}'",
            incident_of(&a, 0)
        ),
    )
    .await;
    sql(
        &app,
        &format!("UPDATE incidents SET assigned_to = 'bob@contoso.com' WHERE id = '{}'", incident_of(&b, 0)),
    )
    .await;
    let c = ingest(
        &app,
        &t,
        json!([alert_with(
            "c3",
            "p3",
            "LOW",
            json!([
                { "url": { "url": "https://a.example/" } }, { "url": { "url": "https://b.example/" } }
            ])
        )]),
    )
    .await;
    assert_eq!(incident_of(&c, 0), incident_of(&a, 0));
    let other = app.ok(&r, INCIDENT_Q, json!({ "id": incident_of(&b, 0) })).await;
    assert_eq!(other["incident"]["status"], "ACTIVE");
}

#[tokio::test]
async fn a_new_alert_never_joins_a_resolved_incident() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let a = ingest(
        &app,
        &t,
        json!([url_alert("r1", "alice@contoso.com", "https://evil.example/", "x@evil.example")]),
    )
    .await;
    sql(&app, &format!("UPDATE incidents SET status = 'RESOLVED' WHERE id = '{}'", incident_of(&a, 0))).await;
    let b = ingest(
        &app,
        &t,
        json!([url_alert("r2", "bob@contoso.com", "https://evil.example/", "x@evil.example")]),
    )
    .await;
    assert_ne!(incident_of(&a, 0), incident_of(&b, 0));
    // A re-send of the alert in the resolved incident updates it in place: no split, no reopen.
    let again = ingest(
        &app,
        &t,
        json!([url_alert("r1", "alice@contoso.com", "https://evil.example/", "x@evil.example")]),
    )
    .await;
    assert_eq!(again["items"][0]["status"], "UPDATED");
    assert_eq!(incident_of(&again, 0), incident_of(&a, 0));
}

#[tokio::test]
async fn ignored_and_too_prevalent_keys_do_not_correlate_and_say_why() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    // The tenant row appears with the first token; set the hygiene settings directly.
    app.ok(&r, "{ me { sub } }", json!({})).await;
    sql(&app, "UPDATE tenants SET correlation_ignore = '{contoso.com}', max_key_prevalence = 2 WHERE id = 'contoso'").await;
    let ev = |u: &str| json!([{ "url": { "url": u } }, { "user": { "upn": "it@contoso.com" } }]);
    let a =
        ingest(&app, &t, json!([alert_with("h1", "same", "LOW", ev("https://docs.contoso.com/a"))])).await;
    let b =
        ingest(&app, &t, json!([alert_with("h2", "same", "LOW", ev("https://docs.contoso.com/a"))])).await;
    assert_ne!(incident_of(&a, 0), incident_of(&b, 0), "an ignored domain does not correlate");
    let d = app.ok(&r, ALERT_Q, json!({ "id": b["items"][0]["alert"]["id"] })).await;
    let skipped = d["alert"]["correlation"]["skippedKeys"].as_array().expect("skipped").clone();
    assert!(skipped.iter().any(|k| k["kind"] == "URL" && k["reason"] == "IGNORE_LIST"), "{skipped:?}");
    // Three alerts carry the same URL; the fourth sees it on more than 2 others.
    let p = |id: &str| alert_with(id, id, "LOW", json!([{ "url": { "url": "https://cdn.example/x" } }]));
    let r3 = ingest(&app, &t, json!([p("v1"), p("v2"), p("v3"), p("v4")])).await;
    assert_eq!(incident_of(&r3, 0), incident_of(&r3, 2));
    assert_ne!(incident_of(&r3, 0), incident_of(&r3, 3));
    let d = app.ok(&r, ALERT_Q, json!({ "id": r3["items"][3]["alert"]["id"] })).await;
    assert_eq!(d["alert"]["correlation"]["skippedKeys"][0]["reason"], "TOO_PREVALENT");
}

/// One campaign (one URL, 50 recipients) from 8 concurrent clients in random order, and an unrelated
/// campaign at the same time: exactly one incident each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingestion_of_a_campaign_yields_one_incident() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut alerts: Vec<Value> = (0..50)
        .map(|i| {
            url_alert(
                &format!("camp-{i}"),
                &format!("user{i}@contoso.com"),
                "https://phish.example/login",
                &format!("s{i}@phish.example"),
            )
        })
        .collect();
    alerts.extend((0..20).map(|i| {
        url_alert(
            &format!("other-{i}"),
            &format!("person{i}@contoso.com"),
            "https://unrelated.example/",
            &format!("n{i}@unrelated.example"),
        )
    }));
    // Shuffle deterministically per run but differently across positions.
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(7)
            as u64;
    let mut state = seed | 1;
    for i in (1..alerts.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        alerts.swap(i, (state % (i as u64 + 1)) as usize);
    }
    // Batches of 12: large enough to read their carriers before taking their key locks.
    let chunks: Vec<Vec<Value>> = alerts.chunks(12).map(|c| c.to_vec()).collect();
    let mut handles = vec![];
    for (n, chunk) in chunks.into_iter().enumerate() {
        let app = app.clone();
        let t = t.clone();
        handles.push(tokio::spawn(async move {
            // Clients send one by one or in small batches.
            let mut out = vec![];
            if n % 2 == 0 {
                for a in chunk {
                    out.push(app.ok(&t, INGEST, json!({ "alerts": [a] })).await["ingestAlerts"].clone());
                }
            } else {
                out.push(app.ok(&t, INGEST, json!({ "alerts": chunk })).await["ingestAlerts"].clone());
            }
            out
        }));
    }
    for h in handles {
        for r in h.await.expect("client") {
            assert_eq!(r["rejected"], 0, "{r:#}");
        }
    }
    let mut conn = app.state.pool.get().await.expect("conn");
    #[derive(diesel::QueryableByName, Debug)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Int4)]
        alert_count: i32,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT status, alert_count FROM incidents WHERE tenant_id = 'contoso' ORDER BY alert_count",
    )
    .load(&mut conn)
    .await
    .expect("incidents");
    let open: Vec<&Row> = rows.iter().filter(|r| r.status != "REDIRECTED").collect();
    assert_eq!(open.len(), 2, "{rows:?}");
    assert_eq!(open[0].alert_count, 20);
    assert_eq!(open[1].alert_count, 50);
    assert_eq!(rows.len(), 2, "no transient incident was created and merged away: {rows:?}");
}

#[tokio::test]
async fn within_one_batch_every_item_reports_where_its_alert_ended() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let res = ingest(&app, &t, json!([
        alert_with("x1", "p1", "LOW", json!([{ "url": { "url": "https://one.example/" } }])),
        alert_with("x2", "p2", "HIGH", json!([{ "url": { "url": "https://two.example/" } }])),
        alert_with("x3", "p3", "LOW", json!([{ "url": { "url": "https://one.example/" } }, { "url": { "url": "https://two.example/" } }])),
    ])).await;
    let target = incident_of(&res, 0);
    assert_eq!(incident_of(&res, 1), target);
    assert_eq!(incident_of(&res, 2), target);
    let inc = app.ok(&r, INCIDENT_Q, json!({ "id": target })).await;
    assert_eq!(inc["incident"]["alertCount"], 3);
    assert_eq!(inc["incident"]["severity"], "HIGH");
    assert_eq!(inc["incident"]["status"], "ACTIVE");
}
