//! The incidents and alerts queues through GraphQL: every filter, the orderings (severity by rank, not
//! alphabet), keyset pagination walks, page-size and cursor errors, REDIRECTED hidden by default, the
//! dashboard summary, and who may read the queue.

mod common;

use chrono::{DateTime, Utc};
use common::seed::{self, hours_ago};
use common::*;
use parapet::auth::Role;
use parapet::db::models::{Alert, Incident};
use parapet::domain::enums::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

const T: &str = "contoso";

const INCIDENTS: &str = r#"query($f: IncidentFilter, $o: IncidentOrder, $n: Int, $a: String) {
  incidents(filter: $f, orderBy: $o, first: $n, after: $a) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id displayName } }
    nodes { displayName }
  }
}"#;

const ALERTS: &str = r#"query($f: AlertFilter, $o: AlertOrder, $n: Int, $a: String) {
  alerts(filter: $f, orderBy: $o, first: $n, after: $a) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id title }
  }
}"#;

/// The fixture: five incidents A-E with one alert each, differing in every filterable field.
struct Queue {
    app: TestApp,
    reader: String,
    ids: HashMap<&'static str, uuid::Uuid>,
    alert_ids: HashMap<&'static str, uuid::Uuid>,
}

#[allow(clippy::too_many_arguments)]
fn inc(
    name: &str,
    severity: Severity,
    status: IncidentStatus,
    assigned: Option<&str>,
    priority: i32,
    created_h: i64,
    updated_h: i64,
) -> Incident {
    let mut i = seed::incident(T, name, severity);
    i.status = status;
    i.assigned_to = assigned.map(Into::into);
    i.priority_score = priority;
    i.created_at = hours_ago(created_h);
    i.last_update_at = hours_ago(updated_h);
    i
}

fn alert_of(
    i: &Incident,
    title: &str,
    provider: &str,
    svc: &str,
    det: Option<&str>,
    created: DateTime<Utc>,
) -> Alert {
    let mut a = seed::alert(i, title, i.severity);
    a.provider_alert_id = provider.into();
    a.service_source = svc.into();
    a.detection_source = det.map(Into::into);
    a.alert_policy = Some(format!("Policy {}", &title[..1]));
    a.created_at = created;
    a.activity_at = created;
    a
}

async fn queue() -> Queue {
    let app = TestApp::new().await;
    seed::tenant(&app, T).await;
    let mdo = "microsoftDefenderForOffice365";

    let mut a = inc(
        "Phish campaign to finance",
        Severity::High,
        IncidentStatus::Active,
        Some("Alice@Contoso.com"),
        80,
        10,
        1,
    );
    a.custom_tags = vec!["vip".into()];
    a.classification = Classification::TruePositive;
    a.determination = Determination::Phishing;
    let mut b =
        inc("Malware attachment detected", Severity::Medium, IncidentStatus::InProgress, None, 50, 20, 5);
    b.custom_tags = vec!["malware".into()];
    b.system_tags = vec!["auto-investigated".into()];
    let mut c = inc(
        "Suspicious inbox rule",
        Severity::Low,
        IncidentStatus::Resolved,
        Some("bob@contoso.com"),
        10,
        30,
        2,
    );
    c.classification = Classification::FalsePositive;
    c.determination = Determination::NotMalicious;
    let mut d = inc("Merged duplicate", Severity::Informational, IncidentStatus::Redirected, None, 0, 40, 3);
    d.redirect_incident_id = Some(a.id);
    let e = inc("Unknown signal", Severity::Unknown, IncidentStatus::Active, None, 30, 50, 50);
    for i in [&a, &b, &c, &d, &e] {
        seed::insert_incident(&app, i).await;
    }

    let mut a1 = alert_of(&a, "Malicious URL clicked", "p-a1", mdo, Some("antiPhish"), hours_ago(1));
    a1.assigned_to = Some("alice@contoso.com".into());
    let mut b1 = alert_of(&b, "Malware found in attachment", "p-b1", mdo, Some("antivirus"), hours_ago(5));
    b1.status = AlertStatus::InProgress;
    let mut c1 = alert_of(
        &c,
        "Forwarding rule created",
        "p-c1",
        "microsoftCloudAppSecurity",
        Some("mcas"),
        hours_ago(2),
    );
    c1.status = AlertStatus::Resolved;
    let d1 = alert_of(&d, "Duplicate phish", "p-d1", mdo, Some("antiPhish"), hours_ago(3));
    let mut e1 = alert_of(&e, "Unusual signal", "p-e1", "customSource", None, hours_ago(50));
    e1.activity_at = hours_ago(0); // the freshest activity, though received first
    seed::insert_alerts(&app, &[a1.clone(), b1.clone(), c1.clone(), d1.clone(), e1.clone()]).await;

    seed::insert_keys(
        &app,
        &[
            seed::key(&a1, KeyKind::Mailbox, "ceo@contoso.com"),
            seed::key(&a1, KeyKind::Sender, "attacker@evil.example"),
        ],
    )
    .await;
    seed::insert_evidence(
        &app,
        &[
            seed::email_evidence(&a1, "nmid-1", "ceo@contoso.com", "attacker@evil.example"),
            seed::mailbox_evidence(&b1, "bob@contoso.com"),
            seed::evidence_row(
                &c1,
                EvidenceKind::User,
                "USER:carol@contoso.com",
                json!({"upn": "carol@contoso.com"}),
            ),
        ],
    )
    .await;

    let reader = app.token(T, "reader@contoso.com", &[Role::Reader]);
    let ids = HashMap::from([("A", a.id), ("B", b.id), ("C", c.id), ("D", d.id), ("E", e.id)]);
    let alert_ids =
        HashMap::from([("a1", a1.id), ("b1", b1.id), ("c1", c1.id), ("d1", d1.id), ("e1", e1.id)]);
    Queue { app, reader, ids, alert_ids }
}

impl Queue {
    /// Letters (A-E) of the incidents listed for `filter` and `order`, in list order.
    async fn list(&self, filter: Value, order: Value) -> Vec<&'static str> {
        let data = self.app.ok(&self.reader, INCIDENTS, json!({ "f": filter, "o": order, "n": 100 })).await;
        let conn = &data["incidents"];
        let nodes = conn["edges"].as_array().expect("edges").clone();
        assert_eq!(conn["totalCount"], json!(nodes.len()), "totalCount matches a page holding everything");
        nodes.iter().map(|e| self.letter(e["node"]["id"].as_str().expect("id"))).collect()
    }

    async fn filter(&self, filter: Value) -> Vec<&'static str> {
        let mut v = self.list(filter, Value::Null).await;
        v.sort();
        v
    }

    fn letter(&self, id: &str) -> &'static str {
        self.ids.iter().find(|(_, v)| v.to_string() == id).map(|(k, _)| *k).expect("a fixture incident")
    }

    async fn alerts(&self, filter: Value, order: Value) -> Vec<&'static str> {
        let data = self.app.ok(&self.reader, ALERTS, json!({ "f": filter, "o": order, "n": 100 })).await;
        let nodes = data["alerts"]["nodes"].as_array().expect("nodes").clone();
        assert_eq!(data["alerts"]["totalCount"], json!(nodes.len()));
        nodes
            .iter()
            .map(|n| {
                let id = n["id"].as_str().expect("id");
                self.alert_ids.iter().find(|(_, v)| v.to_string() == id).map(|(k, _)| *k).expect("fixture")
            })
            .collect()
    }

    async fn alert_filter(&self, filter: Value) -> Vec<&'static str> {
        let mut v = self.alerts(filter, Value::Null).await;
        v.sort();
        v
    }
}

#[tokio::test]
async fn every_incident_filter_narrows_the_queue() {
    let q = queue().await;
    assert_eq!(q.filter(json!(null)).await, ["A", "B", "C", "E"], "REDIRECTED is hidden by default");
    assert_eq!(q.filter(json!({ "status": ["ACTIVE"] })).await, ["A", "E"]);
    assert_eq!(q.filter(json!({ "status": "REDIRECTED" })).await, ["D"], "REDIRECTED when named");
    assert_eq!(q.filter(json!({ "status": ["ACTIVE", "REDIRECTED"] })).await, ["A", "D", "E"]);
    assert_eq!(q.filter(json!({ "severity": ["HIGH", "LOW"] })).await, ["A", "C"]);
    assert_eq!(
        q.filter(json!({ "assignedTo": ["alice@contoso.com"] })).await,
        ["A"],
        "UPNs case-insensitive"
    );
    assert_eq!(q.filter(json!({ "unassigned": true })).await, ["B", "E"]);
    assert_eq!(q.filter(json!({ "unassigned": false })).await, ["A", "C"]);
    assert_eq!(q.filter(json!({ "tags": ["vip"] })).await, ["A"]);
    assert_eq!(q.filter(json!({ "tags": ["auto-investigated"] })).await, ["B"], "system tags count");
    assert_eq!(q.filter(json!({ "tags": ["vip", "malware"] })).await, ["A", "B"], "any of the tags");
    assert_eq!(q.filter(json!({ "classification": ["TRUE_POSITIVE"] })).await, ["A"]);
    assert_eq!(q.filter(json!({ "determination": ["NOT_MALICIOUS"] })).await, ["C"]);
    assert_eq!(q.filter(json!({ "serviceSource": ["microsoftCloudAppSecurity"] })).await, ["C"]);
    assert_eq!(q.filter(json!({ "serviceSource": ["microsoftDefenderForOffice365"] })).await, ["A", "B"]);
    assert_eq!(q.filter(json!({ "detectionSource": ["antivirus"] })).await, ["B"]);
    let h = |n: i64| hours_ago(n).to_rfc3339();
    assert_eq!(q.filter(json!({ "createdAfter": h(25) })).await, ["A", "B"]);
    assert_eq!(q.filter(json!({ "createdBefore": h(25) })).await, ["C", "E"]);
    assert_eq!(q.filter(json!({ "updatedAfter": h(3) })).await, ["A", "C"]);
    assert_eq!(q.filter(json!({ "updatedBefore": h(4) })).await, ["B", "E"]);
    assert_eq!(q.filter(json!({ "status": ["ACTIVE"], "severity": ["HIGH"] })).await, ["A"], "fields AND");
    assert_eq!(q.filter(json!({ "status": ["ACTIVE"], "severity": ["LOW"] })).await, Vec::<&str>::new());
}

#[tokio::test]
async fn search_finds_names_ids_mailboxes_users_and_senders() {
    let q = queue().await;
    assert_eq!(q.filter(json!({ "search": "PHISH campaign" })).await, ["A"], "name, case-insensitive");
    assert_eq!(q.filter(json!({ "search": q.ids["C"].to_string() })).await, ["C"], "exact id");
    assert_eq!(q.filter(json!({ "search": "CEO@contoso.com" })).await, ["A"], "mailbox key");
    assert_eq!(q.filter(json!({ "search": "attacker@evil.example" })).await, ["A"], "sender key");
    assert_eq!(q.filter(json!({ "search": "bob@contoso.com" })).await, ["B"], "mailbox evidence");
    assert_eq!(q.filter(json!({ "search": "carol@contoso.com" })).await, ["C"], "user evidence");
    assert_eq!(q.filter(json!({ "search": "ceo@" })).await, Vec::<&str>::new(), "addresses match exactly");
    assert_eq!(q.filter(json!({ "search": "%" })).await, Vec::<&str>::new(), "LIKE wildcards are literal");
    assert_eq!(q.filter(json!({ "search": "   " })).await, ["A", "B", "C", "E"], "blank search is no filter");
    let long = "x".repeat(300);
    assert_eq!(
        q.app.err_code(Some(&q.reader), INCIDENTS, json!({ "f": { "search": long } })).await,
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn incident_orderings_follow_the_key_and_severity_rank() {
    let q = queue().await;
    let all = json!({ "status": ["ACTIVE", "IN_PROGRESS", "RESOLVED", "REDIRECTED"] });
    assert_eq!(q.list(json!(null), json!(null)).await, ["A", "C", "B", "E"], "default LAST_UPDATE_AT DESC");
    assert_eq!(
        q.list(json!(null), json!({ "field": "LAST_UPDATE_AT", "direction": "ASC" })).await,
        ["E", "B", "C", "A"]
    );
    assert_eq!(q.list(json!(null), json!({ "field": "CREATED_AT" })).await, ["A", "B", "C", "E"]);
    assert_eq!(
        q.list(all.clone(), json!({ "field": "SEVERITY", "direction": "DESC" })).await,
        ["A", "B", "C", "D", "E"],
        "HIGH > MEDIUM > LOW > INFORMATIONAL > UNKNOWN, not alphabetical"
    );
    assert_eq!(
        q.list(all, json!({ "field": "SEVERITY", "direction": "ASC" })).await,
        ["E", "D", "C", "B", "A"]
    );
    assert_eq!(q.list(json!(null), json!({ "field": "PRIORITY_SCORE" })).await, ["A", "B", "E", "C"]);
}

#[tokio::test]
async fn every_alert_filter_and_ordering_works() {
    let q = queue().await;
    assert_eq!(q.alert_filter(json!(null)).await, ["a1", "b1", "c1", "d1", "e1"]);
    assert_eq!(q.alert_filter(json!({ "status": ["RESOLVED"] })).await, ["c1"]);
    assert_eq!(q.alert_filter(json!({ "severity": ["HIGH", "MEDIUM"] })).await, ["a1", "b1"]);
    assert_eq!(q.alert_filter(json!({ "assignedTo": ["ALICE@contoso.com"] })).await, ["a1"]);
    assert_eq!(q.alert_filter(json!({ "serviceSource": ["microsoftCloudAppSecurity"] })).await, ["c1"]);
    assert_eq!(q.alert_filter(json!({ "detectionSource": ["antivirus"] })).await, ["b1"]);
    assert_eq!(q.alert_filter(json!({ "alertPolicy": ["Policy M"] })).await, ["a1", "b1"]);
    assert_eq!(q.alert_filter(json!({ "incidentId": q.ids["B"].to_string() })).await, ["b1"]);
    let h = |n: i64| hours_ago(n).to_rfc3339();
    assert_eq!(q.alert_filter(json!({ "createdAfter": h(4) })).await, ["a1", "c1", "d1"]);
    assert_eq!(q.alert_filter(json!({ "createdBefore": h(4) })).await, ["b1", "e1"]);
    assert_eq!(q.alert_filter(json!({ "search": "url CLICKED" })).await, ["a1"], "title substring");
    assert_eq!(q.alert_filter(json!({ "search": "p-b1" })).await, ["b1"], "provider alert id");
    assert_eq!(q.alert_filter(json!({ "search": q.alert_ids["c1"].to_string() })).await, ["c1"], "alert id");
    assert_eq!(
        q.app.err_code(Some(&q.reader), ALERTS, json!({ "f": { "incidentId": ["nope"] } })).await,
        "BAD_USER_INPUT"
    );

    assert_eq!(q.alerts(json!(null), json!(null)).await, ["a1", "c1", "d1", "b1", "e1"], "CREATED_AT DESC");
    assert_eq!(q.alerts(json!(null), json!({ "field": "LAST_ACTIVITY_AT" })).await[0], "e1");
    assert_eq!(
        q.alerts(json!(null), json!({ "field": "SEVERITY", "direction": "DESC" })).await,
        ["a1", "b1", "c1", "d1", "e1"]
    );
    assert_eq!(
        q.alerts(json!(null), json!({ "field": "CREATED_AT", "direction": "ASC" })).await,
        ["e1", "b1", "d1", "c1", "a1"]
    );
}

/// Walks `query` page by page with `first` and returns the ids in order, checking page info on the way.
async fn walk(app: &TestApp, token: &str, query: &str, field: &str, vars: Value, first: i64) -> Vec<String> {
    let mut out = vec![];
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut v = vars.clone();
        v["n"] = json!(first);
        v["a"] = json!(after);
        let data = app.ok(token, query, v).await;
        let conn = &data[field];
        let edges = conn["edges"].as_array().expect("edges");
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], json!(after.is_some()));
        for e in edges {
            out.push(e["node"]["id"].as_str().expect("id").to_string());
        }
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        if conn["pageInfo"]["hasNextPage"] == json!(true) {
            assert_eq!(edges.len() as i64, first, "only the last page is short");
            after = Some(conn["pageInfo"]["endCursor"].as_str().expect("endCursor").to_string());
            assert_eq!(edges.last().expect("edge")["cursor"].as_str(), after.as_deref());
        } else {
            return out;
        }
    }
}

#[tokio::test]
async fn pagination_walks_every_ordering_without_gaps_or_duplicates() {
    let app = TestApp::new().await;
    seed::tenant(&app, T).await;
    // 23 incidents with many ties in every sort key, so the id tie-breaker matters.
    let base = chrono::Utc::now();
    for n in 0..23i64 {
        let sev = Severity::ALL[(n % 5) as usize];
        let mut i = seed::incident(T, &format!("Incident {n:02}"), sev);
        i.last_update_at = base - chrono::Duration::hours(n % 4);
        i.created_at = base - chrono::Duration::hours(n % 3);
        i.priority_score = (n % 2) as i32 * 50;
        seed::insert_incident(&app, &i).await;
    }
    let reader = app.token(T, "reader@contoso.com", &[Role::Reader]);
    let query = r#"query($o: IncidentOrder, $n: Int, $a: String) {
      incidents(orderBy: $o, first: $n, after: $a) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } }"#;
    for field in ["LAST_UPDATE_AT", "CREATED_AT", "SEVERITY", "PRIORITY_SCORE"] {
        for dir in ["ASC", "DESC"] {
            let vars = json!({ "o": { "field": field, "direction": dir } });
            let all = walk(&app, &reader, query, "incidents", vars.clone(), 100).await;
            assert_eq!(all.len(), 23);
            for first in [1, 5, 7] {
                let walked = walk(&app, &reader, query, "incidents", vars.clone(), first).await;
                assert_eq!(walked, all, "{field} {dir} by {first}: same rows, same order");
                assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 23, "no duplicates");
            }
        }
    }
    let data = app.ok(&reader, query, json!({ "n": 5 })).await;
    assert_eq!(data["incidents"]["totalCount"], 23, "totalCount counts every page");
    assert_eq!(data["incidents"]["edges"].as_array().map(Vec::len), Some(5));
    let data = app.ok(&reader, query, json!({})).await;
    assert_eq!(data["incidents"]["edges"].as_array().map(Vec::len), Some(20), "default page is 20");
    let data = app.ok(&reader, query, json!({ "n": 0 })).await;
    assert_eq!(data["incidents"]["edges"], json!([]));
    assert_eq!(data["incidents"]["totalCount"], 23);
}

#[tokio::test]
async fn alerts_paginate_without_gaps() {
    let app = TestApp::new().await;
    seed::tenant(&app, T).await;
    let i = seed::incident(T, "Big incident", Severity::High);
    seed::insert_incident(&app, &i).await;
    let base = chrono::Utc::now();
    let alerts: Vec<Alert> = (0..17i64)
        .map(|n| {
            let mut a = seed::alert(&i, &format!("Alert {n}"), Severity::ALL[(n % 3) as usize]);
            a.created_at = base - chrono::Duration::minutes(n % 4);
            a
        })
        .collect();
    seed::insert_alerts(&app, &alerts).await;
    let reader = app.token(T, "reader@contoso.com", &[Role::Reader]);
    let query = r#"query($o: AlertOrder, $n: Int, $a: String) {
      alerts(orderBy: $o, first: $n, after: $a) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } }"#;
    for field in ["CREATED_AT", "LAST_ACTIVITY_AT", "SEVERITY"] {
        let vars = json!({ "o": { "field": field } });
        let all = walk(&app, &reader, query, "alerts", vars.clone(), 100).await;
        assert_eq!(all.len(), 17);
        assert_eq!(walk(&app, &reader, query, "alerts", vars, 4).await, all, "{field}");
    }
}

#[tokio::test]
async fn page_size_and_cursor_errors_are_bad_user_input() {
    let q = queue().await;
    let r = Some(q.reader.as_str());
    assert_eq!(q.app.err_code(r, INCIDENTS, json!({ "n": 101 })).await, "BAD_USER_INPUT", "not clamped");
    assert_eq!(q.app.err_code(r, INCIDENTS, json!({ "n": -1 })).await, "BAD_USER_INPUT");
    assert_eq!(q.app.err_code(r, ALERTS, json!({ "n": 101 })).await, "BAD_USER_INPUT");
    assert_eq!(q.app.err_code(r, INCIDENTS, json!({ "a": "garbage" })).await, "BAD_USER_INPUT");
    assert_eq!(q.app.err_code(r, ALERTS, json!({ "a": "eyJ4IjoxfQ" })).await, "BAD_USER_INPUT");
    // A cursor is tied to the list and ordering that produced it.
    let page = q.app.ok(&q.reader, INCIDENTS, json!({ "n": 1 })).await;
    let cursor = page["incidents"]["pageInfo"]["endCursor"].as_str().expect("cursor").to_string();
    let other = json!({ "a": cursor, "o": { "field": "SEVERITY" } });
    assert_eq!(q.app.err_code(r, INCIDENTS, other).await, "BAD_USER_INPUT");
    assert_eq!(q.app.err_code(r, ALERTS, json!({ "a": cursor })).await, "BAD_USER_INPUT");
    let bad_id = "query { incident(id: \"not-a-uuid\") { id } }";
    assert_eq!(q.app.err_code(r, bad_id, json!({})).await, "BAD_USER_INPUT");
    let resp = q.app.gql(r, INCIDENTS, json!({ "n": 500 })).await;
    let msg = resp["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("at most 100"), "the message says why: {msg}");
}

#[tokio::test]
async fn single_objects_are_found_or_null() {
    let q = queue().await;
    let query = "query($i: ID!, $a: ID!) { incident(id: $i) { displayName } alert(id: $a) { title } }";
    let data = q.app.ok(&q.reader, query, json!({ "i": q.ids["A"], "a": q.alert_ids["b1"] })).await;
    assert_eq!(data["incident"]["displayName"], "Phish campaign to finance");
    assert_eq!(data["alert"]["title"], "Malware found in attachment");
    let missing = uuid::Uuid::now_v7();
    let data = q.app.ok(&q.reader, query, json!({ "i": missing, "a": missing })).await;
    assert_eq!(data, json!({ "incident": null, "alert": null }));
}

#[tokio::test]
async fn summary_counts_open_incidents_with_stable_shapes() {
    let q = queue().await;
    let query = r#"{ incidentSummary {
        byStatus { status count } bySeverity { severity count } unassigned open alertsLast24h } }"#;
    let s = q.app.ok(&q.reader, query, json!({})).await["incidentSummary"].clone();
    assert_eq!(
        s["byStatus"],
        json!([
            { "status": "ACTIVE", "count": 2 },
            { "status": "IN_PROGRESS", "count": 1 },
            { "status": "RESOLVED", "count": 1 }
        ]),
        "REDIRECTED is not counted"
    );
    assert_eq!(
        s["bySeverity"],
        json!([
            { "severity": "HIGH", "count": 1 },
            { "severity": "MEDIUM", "count": 1 },
            { "severity": "LOW", "count": 0 },
            { "severity": "INFORMATIONAL", "count": 0 },
            { "severity": "UNKNOWN", "count": 1 }
        ]),
        "open incidents only, every severity listed"
    );
    assert_eq!(s["unassigned"], 2);
    assert_eq!(s["open"], 3);
    assert_eq!(s["alertsLast24h"], 4);

    // An empty tenant still gets every row, with zeros.
    let other = q.app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let s = q.app.ok(&other, query, json!({})).await["incidentSummary"].clone();
    assert_eq!(s["byStatus"].as_array().map(Vec::len), Some(3));
    assert_eq!(s["bySeverity"].as_array().map(Vec::len), Some(5));
    assert!(s["bySeverity"].as_array().expect("list").iter().all(|c| c["count"] == 0));
    assert_eq!(s["alertsLast24h"], 0);
}

#[tokio::test]
async fn only_readers_and_above_read_the_queue() {
    let q = queue().await;
    let queries = [
        "{ incidents { totalCount } }",
        "{ alerts { totalCount } }",
        "{ incidentSummary { open } }",
        &format!("{{ incident(id: \"{}\") {{ id }} }}", q.ids["A"]),
        &format!("{{ alert(id: \"{}\") {{ id }} }}", q.alert_ids["a1"]),
    ];
    let ingestor = q.app.token(T, "gateway@contoso.com", &[Role::Ingestor]);
    let analyst = q.app.token(T, "analyst@contoso.com", &[Role::Analyst]);
    let admin = q.app.token(T, "admin@contoso.com", &[Role::Admin]);
    for query in queries {
        assert_eq!(q.app.err_code(Some(&ingestor), query, json!({})).await, "FORBIDDEN", "{query}");
        assert_eq!(q.app.err_code(None, query, json!({})).await, "UNAUTHENTICATED", "{query}");
        assert_eq!(q.app.err_code(Some("bad.token.here"), query, json!({})).await, "UNAUTHENTICATED");
        for t in [&q.reader, &analyst, &admin] {
            q.app.ok(t, query, json!({})).await;
        }
    }
}
