//! No request can make the server do unbounded work: list fields count in the complexity limit by their
//! page size (a dashboard's page passes, a campaign's whole evidence graph does not), and an incident's
//! evidence is a connection of merged entities with a capped page.

mod common;

use common::seed;
use common::*;
use parapet::auth::Role;
use parapet::domain::enums::*;
use serde_json::{json, Value};

/// The dashboard: 50 incidents, 10 alerts each with 10 evidence items and 5 comments.
const DASHBOARD: &str = r#"query {
  incidents(first: 50) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id displayName severity status assignedTo priorityScore alertCount impactedMailboxes lastUpdateAt
      alertsBySeverity { severity count }
      alerts(first: 10) {
        totalCount
        nodes {
          id title severity status createdAt
          evidence(first: 10) { kind entityKey verdict ... on EmailEvidence { recipient subject } }
          comments(first: 5) { nodes { body author createdAt } }
        }
      }
      evidence(first: 10) { totalCount nodes { kind entityKey verdict alertCount } }
      comments(first: 5) { totalCount nodes { body author } }
    }
  }
}"#;

/// A reader pulling a whole campaign: every alert of 100 incidents with all of their evidence.
const CAMPAIGN_GRAPH: &str = r#"query {
  incidents(first: 100) {
    nodes {
      alerts(first: 100) { nodes { evidence { entityKey ... on EmailEvidence { recipient subject urls } } } }
    }
  }
}"#;

#[tokio::test]
async fn list_fields_count_by_their_page_size() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let data = app.ok(&reader, DASHBOARD, json!({})).await;
    assert_eq!(data["incidents"]["totalCount"], 0);

    let resp = app.gql(Some(&reader), CAMPAIGN_GRAPH, json!({})).await;
    let err = &resp["errors"][0];
    assert_eq!(err["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{resp:#}");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex") && message.contains("first"), "{message}");
    assert!(resp["data"].is_null(), "nothing ran: {resp:#}");

    // A list's page counts even when the client leaves `first` out: an alert's evidence by its cap.
    let unpaged = "query { alerts(first: 100) { nodes { evidence { entityKey kind verdict } } } }";
    let resp = app.gql(Some(&reader), unpaged, json!({})).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{resp:#}");
    let paged = "query { alerts(first: 100) { nodes { evidence(first: 10) { entityKey kind verdict } } } }";
    app.ok(&reader, paged, json!({})).await;

    // `first` above a list's cap is refused, not clamped.
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let alert = common::alerts::url_alert("one", "a@contoso.com", "https://one.example/", "x@evil.example");
    app.ok(&ing, common::alerts::INGEST, json!({ "alerts": [alert] })).await;
    let over = "query { alerts(first: 1) { nodes { evidence(first: 201) { entityKey } } } }";
    assert_eq!(app.err_code(Some(&reader), over, json!({})).await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn incident_evidence_is_paged_by_entity() {
    let app = TestApp::new().await;
    let t = "contoso";
    seed::tenant(&app, t).await;
    // 150 alerts, each naming its own URL and the one sender they share: 151 entities.
    let inc = seed::incident(t, "Campaign", Severity::High);
    seed::insert_incident(&app, &inc).await;
    let mut alerts = vec![];
    let mut evidence = vec![];
    for n in 0..150 {
        let mut a = seed::alert(&inc, &format!("Alert {n}"), Severity::High);
        a.created_at = seed::hours_ago(200 - n);
        let url = format!("https://c{n}.evil.example/x");
        let mut e = seed::evidence_row(&a, EvidenceKind::Url, &format!("URL:{url}"), json!({ "url": url }));
        e.created_at = a.created_at;
        evidence.push(e);
        let mut s =
            seed::evidence_row(&a, EvidenceKind::Ip, "IP:203.0.113.9", json!({ "address": "203.0.113.9" }));
        s.created_at = a.created_at;
        s.verdict = if n == 77 { Verdict::Malicious } else { Verdict::Suspicious };
        evidence.push(s);
        alerts.push(a);
    }
    seed::insert_alerts(&app, &alerts).await;
    seed::insert_evidence(&app, &evidence).await;
    let reader = app.token(t, "r@contoso.com", &[Role::Reader]);

    let q = r#"query($id: ID!, $n: Int, $a: String, $k: [EvidenceKind!]) { incident(id: $id) {
        evidence(first: $n, after: $a, kind: $k) {
          totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
          edges { cursor node { entityKey verdict alertCount alertIds } } } } }"#;
    let page = |n: i64, a: Value, k: Value| json!({ "id": inc.id, "n": n, "a": a, "k": k });
    let first = app.ok(&reader, q, page(100, Value::Null, Value::Null)).await;
    let ev = &first["incident"]["evidence"];
    assert_eq!(ev["totalCount"], 151);
    assert_eq!(ev["pageInfo"]["hasNextPage"], true);
    assert_eq!(ev["pageInfo"]["hasPreviousPage"], false);
    let edges = ev["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100);
    // In order of first appearance: the oldest alert's URL and the shared IP come first.
    assert_eq!(edges[0]["node"]["entityKey"], "URL:https://c0.evil.example/x");
    let ip = edges.iter().find(|e| e["node"]["entityKey"] == "IP:203.0.113.9").expect("shared IP");
    assert_eq!(ip["node"]["alertCount"], 150, "every alert naming it is counted");
    assert_eq!(ip["node"]["alertIds"].as_array().map(Vec::len), Some(100), "at most 100 listed");
    assert_eq!(ip["node"]["verdict"], "MALICIOUS", "the strongest verdict of its 150 rows");

    let rest = app.ok(&reader, q, page(100, ev["pageInfo"]["endCursor"].clone(), Value::Null)).await;
    let ev2 = &rest["incident"]["evidence"];
    assert_eq!(ev2["pageInfo"]["hasNextPage"], false);
    assert_eq!(ev2["pageInfo"]["hasPreviousPage"], true);
    let more = ev2["edges"].as_array().expect("edges");
    assert_eq!(more.len(), 51);
    let mut keys: Vec<&str> =
        edges.iter().chain(more).filter_map(|e| e["node"]["entityKey"].as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 151, "every entity once across the pages");

    let ips = app.ok(&reader, q, page(10, Value::Null, json!(["IP"]))).await;
    assert_eq!(ips["incident"]["evidence"]["totalCount"], 1);
    assert_eq!(ips["incident"]["evidence"]["edges"][0]["node"]["entityKey"], "IP:203.0.113.9");

    // Pages are capped; a cursor of another list is refused.
    let over = app.gql(Some(&reader), q, page(101, Value::Null, Value::Null)).await;
    assert_eq!(over["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{over:#}");
    let alerts_q = "query($id: ID!) { incident(id: $id) { alerts(first: 1) { pageInfo { endCursor } } } }";
    let other = app.ok(&reader, alerts_q, json!({ "id": inc.id })).await;
    let foreign = other["incident"]["alerts"]["pageInfo"]["endCursor"].clone();
    let bad = app.gql(Some(&reader), q, page(10, foreign, Value::Null)).await;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{bad:#}");
}
