//! Nested fields of incidents and alerts: alerts (paginated), evidence as an interface with one type per
//! kind and merged by entity, comments (oldest first), activity (newest first), counts and roll-ups,
//! and `Alert.incident` / `Alert.evidence` / `Alert.comments`.

mod common;

use common::seed::{self, hours_ago};
use common::*;
use parapet::auth::Role;
use parapet::db::models::{Alert, Incident};
use parapet::domain::enums::*;
use serde_json::{json, Value};

const T: &str = "contoso";

struct Fixture {
    app: TestApp,
    reader: String,
    inc: Incident,
    alerts: Vec<Alert>,
}

/// One incident with three alerts and evidence of every kind; the same e-mail copy is evidence of two
/// alerts (to be merged).
async fn fixture() -> Fixture {
    let app = TestApp::new().await;
    seed::tenant(&app, T).await;
    let inc = seed::incident(T, "Phish with malicious URL", Severity::High);
    seed::insert_incident(&app, &inc).await;
    let mut alerts = vec![];
    for (n, (sev, status, svc)) in [
        (Severity::High, AlertStatus::New, "microsoftDefenderForOffice365"),
        (Severity::Medium, AlertStatus::Resolved, "microsoftDefenderForOffice365"),
        (Severity::High, AlertStatus::New, "microsoftCloudAppSecurity"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = seed::alert(&inc, &format!("Alert {n}"), sev);
        a.status = status;
        a.service_source = svc.into();
        a.created_at = hours_ago(3 - n as i64);
        alerts.push(a);
    }
    seed::insert_alerts(&app, &alerts).await;

    let mut e0 = seed::email_evidence(&alerts[0], "nmid-1", "ceo@contoso.com", "attacker@evil.example");
    e0.verdict = Verdict::Suspicious;
    e0.roles = vec!["ATTACKED".into()];
    e0.created_at = hours_ago(3);
    let mut e1 = seed::email_evidence(&alerts[1], "nmid-1", "ceo@contoso.com", "attacker@evil.example");
    e1.verdict = Verdict::Malicious;
    e1.roles = vec!["attacked".into(), "CONTEXTUAL".into()];
    e1.remediation_status = RemediationStatus::Remediated;
    e1.data["latestDeliveryLocation"] = json!("SOFT_DELETED");
    e1.created_at = hours_ago(2);
    let a2 = &alerts[2];
    let rows = vec![
        e0,
        e1,
        seed::mailbox_evidence(&alerts[0], "ceo@contoso.com"),
        seed::evidence_row(
            a2,
            EvidenceKind::MailCluster,
            "MAIL_CLUSTER:c-1",
            json!({ "clusterId": "c-1", "clusterBy": "URL", "query": "url:evil", "emailCount": 50,
                    "networkMessageIds": ["nmid-1", "nmid-2"] }),
        ),
        seed::evidence_row(
            a2,
            EvidenceKind::MailboxConfiguration,
            "MAILBOX_CONFIGURATION:ceo@contoso.com:rule-1",
            json!({ "configurationType": "MAIL_FORWARDING_RULE", "mailboxPrimaryAddress": "ceo@contoso.com",
                    "forwardingTo": "drop@evil.example" }),
        ),
        seed::evidence_row(
            a2,
            EvidenceKind::User,
            "USER:ceo@contoso.com",
            json!({ "upn": "ceo@contoso.com",
            "displayName": "The CEO", "aadUserId": "0000" }),
        ),
        seed::evidence_row(
            a2,
            EvidenceKind::Url,
            "URL:https://evil.example/login",
            json!({ "url": "https://evil.example/login" }),
        ),
        seed::evidence_row(
            a2,
            EvidenceKind::File,
            &format!("FILE:{}", "ab".repeat(32)),
            json!({ "sha256": "ab".repeat(32), "name": "invoice.html", "size": 1234 }),
        ),
        seed::evidence_row(
            a2,
            EvidenceKind::Ip,
            "IP:203.0.113.7",
            json!({ "address": "203.0.113.7", "countryCode": "NL", "unexpected": [1, 2] }),
        ),
        // A row whose data is odd: unreadable fields become null, the rest still shows.
        seed::evidence_row(
            a2,
            EvidenceKind::Email,
            "EMAIL:nmid-9:cfo@contoso.com",
            json!({ "recipient": "cfo@contoso.com", "direction": "SIDEWAYS", "attachments": "nope",
                    "threatTypes": ["PHISH", "BOGUS"], "receivedAt": "yesterday" }),
        ),
    ];
    seed::insert_evidence(&app, &rows).await;
    seed::insert_keys(
        &app,
        &[
            seed::key(&alerts[0], KeyKind::Mailbox, "ceo@contoso.com"),
            seed::key(&alerts[1], KeyKind::Mailbox, "ceo@contoso.com"),
            seed::key(&alerts[1], KeyKind::Mailbox, "cfo@contoso.com"),
            seed::key(&alerts[2], KeyKind::Sender, "attacker@evil.example"),
        ],
    )
    .await;
    let comments: Vec<_> = (0..5)
        .map(|n| seed::comment(T, Some(inc.id), None, &format!("note {n}"), hours_ago(10 - n)))
        .collect();
    seed::insert_comments(&app, &comments).await;
    seed::insert_comments(&app, &[seed::comment(T, None, Some(alerts[0].id), "on the alert", hours_ago(1))])
        .await;
    let log: Vec<_> = (0..4)
        .map(|n| seed::activity(T, Some(inc.id), None, &format!("change {n}"), hours_ago(10 - n)))
        .collect();
    seed::insert_activity(&app, &log).await;
    seed::insert_activity(&app, &[seed::activity(T, None, Some(alerts[1].id), "alert change", hours_ago(1))])
        .await;
    let reader = app.token(T, "reader@contoso.com", &[Role::Reader]);
    Fixture { app, reader, inc, alerts }
}

const EVIDENCE: &str = r#"
  __typename id kind entityKey verdict remediationStatus roles createdAt alertIds
  ... on EmailEvidence { recipient envelopeSender headerFrom subject receivedAt direction deliveryAction
      latestDeliveryLocation threatTypes urls attachments { name sha256 size } networkMessageId }
  ... on MailboxEvidence { primaryAddress upn displayName }
  ... on MailClusterEvidence { clusterId clusterBy query emailCount networkMessageIds }
  ... on MailboxConfigurationEvidence { configurationType mailboxPrimaryAddress forwardingTo }
  ... on UserEvidence { upn displayName aadUserId }
  ... on UrlEvidence { url }
  ... on FileEvidence { sha256 name size }
  ... on IpEvidence { address countryCode }
"#;

fn by_key<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["entityKey"] == key))
        .unwrap_or_else(|| panic!("no evidence {key} in {list:#}"))
}

#[tokio::test]
async fn incident_evidence_is_merged_by_entity_with_one_type_per_kind() {
    let f = fixture().await;
    let q = format!(
        "query($id: ID!) {{ incident(id: $id) {{ evidence {{ totalCount pageInfo {{ hasNextPage }} nodes {{ {EVIDENCE} alertCount }} }} }} }}"
    );
    let data = f.app.ok(&f.reader, &q, json!({ "id": f.inc.id })).await;
    let ev = &data["incident"]["evidence"]["nodes"];
    assert_eq!(ev.as_array().map(Vec::len), Some(9), "10 rows, one entity twice: {ev:#}");
    assert_eq!(data["incident"]["evidence"]["totalCount"], 9);
    assert_eq!(data["incident"]["evidence"]["pageInfo"]["hasNextPage"], false);

    let email = by_key(ev, "EMAIL:nmid-1:ceo@contoso.com");
    assert_eq!(email["__typename"], "EmailEvidence");
    assert_eq!(email["kind"], "EMAIL");
    assert_eq!(email["verdict"], "MALICIOUS", "strongest verdict of the two rows");
    assert_eq!(email["roles"], json!(["ATTACKED", "CONTEXTUAL"]), "roles merged");
    assert_eq!(email["remediationStatus"], "REMEDIATED", "latest row's state");
    assert_eq!(email["latestDeliveryLocation"], "SOFT_DELETED", "latest row's data");
    let mut ids: Vec<String> = [f.alerts[0].id, f.alerts[1].id].iter().map(|i| i.to_string()).collect();
    ids.sort();
    let mut got: Vec<String> = serde_json::from_value(email["alertIds"].clone()).expect("ids");
    got.sort();
    assert_eq!(got, ids);
    assert_eq!(email["alertCount"], 2);
    assert_eq!(email["recipient"], "ceo@contoso.com");
    assert_eq!(email["envelopeSender"], "attacker@evil.example");
    assert_eq!(email["direction"], "INBOUND");
    assert_eq!(email["threatTypes"], json!(["PHISH"]));
    assert_eq!(email["urls"], json!(["https://evil.example/login"]));
    assert_eq!(
        email["attachments"],
        json!([{ "name": "invoice.html", "sha256": "ab".repeat(32), "size": 1234 }])
    );
    assert_eq!(email["receivedAt"], "2026-11-20T10:00:00+00:00");

    let mbx = by_key(ev, "MAILBOX:ceo@contoso.com");
    assert_eq!(mbx["__typename"], "MailboxEvidence");
    assert_eq!(mbx["primaryAddress"], "ceo@contoso.com");
    let cluster = by_key(ev, "MAIL_CLUSTER:c-1");
    assert_eq!((cluster["emailCount"].clone(), cluster["clusterBy"].clone()), (json!(50), json!("URL")));
    assert_eq!(cluster["networkMessageIds"], json!(["nmid-1", "nmid-2"]));
    let rule = by_key(ev, "MAILBOX_CONFIGURATION:ceo@contoso.com:rule-1");
    assert_eq!(rule["configurationType"], "MAIL_FORWARDING_RULE");
    assert_eq!(rule["forwardingTo"], "drop@evil.example");
    assert_eq!(by_key(ev, "USER:ceo@contoso.com")["displayName"], "The CEO");
    assert_eq!(by_key(ev, "URL:https://evil.example/login")["url"], "https://evil.example/login");
    let file = by_key(ev, &format!("FILE:{}", "ab".repeat(32)));
    assert_eq!((file["name"].clone(), file["size"].clone()), (json!("invoice.html"), json!(1234)));
    assert_eq!(by_key(ev, "IP:203.0.113.7")["countryCode"], "NL");

    let odd = by_key(ev, "EMAIL:nmid-9:cfo@contoso.com");
    assert_eq!(odd["recipient"], "cfo@contoso.com", "readable fields still show");
    assert_eq!(odd["direction"], Value::Null, "an unknown enum value is null");
    assert_eq!(odd["receivedAt"], Value::Null);
    assert_eq!(odd["attachments"], json!([]));
    assert_eq!(odd["threatTypes"], json!(["PHISH"]));
    assert_eq!(odd["subject"], Value::Null, "a missing field is null");

    let q =
        "query($id: ID!) { incident(id: $id) { evidence(kind: [URL, FILE]) { totalCount nodes { kind } } } }";
    let data = f.app.ok(&f.reader, q, json!({ "id": f.inc.id })).await;
    assert_eq!(
        data["incident"]["evidence"],
        json!({ "totalCount": 2, "nodes": [{ "kind": "URL" }, { "kind": "FILE" }] })
    );
}

#[tokio::test]
async fn incident_alerts_comments_and_activity_are_paginated_connections() {
    let f = fixture().await;
    let q = r#"query($id: ID!, $n: Int, $a: String, $cn: Int, $ca: String, $an: Int, $aa: String) {
      incident(id: $id) {
        alertCount
        alerts(first: $n, after: $a) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
                                       nodes { id title } }
        comments(first: $cn, after: $ca) { totalCount pageInfo { hasNextPage endCursor }
                                          edges { node { body comment author authorName createdAt } } }
        activity(first: $an, after: $aa) { totalCount pageInfo { hasNextPage endCursor }
                                          nodes { actor kind field before after message } }
      } }"#;
    let data = f.app.ok(&f.reader, q, json!({ "id": f.inc.id, "n": 2, "cn": 3, "an": 3 })).await;
    let i = &data["incident"];
    assert_eq!(i["alertCount"], 3);
    assert_eq!(i["alerts"]["totalCount"], 3);
    assert_eq!(
        i["alerts"]["nodes"],
        json!([
            { "id": f.alerts[0].id, "title": "Alert 0" }, { "id": f.alerts[1].id, "title": "Alert 1" }
        ]),
        "oldest first"
    );
    assert_eq!(i["alerts"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(i["alerts"]["pageInfo"]["hasPreviousPage"], false);
    let bodies: Vec<&str> = i["comments"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["note 0", "note 1", "note 2"], "comments oldest first, the alert's comment not here");
    assert_eq!(i["comments"]["totalCount"], 5);
    assert_eq!(i["comments"]["edges"][0]["node"]["comment"], "note 0");
    assert_eq!(i["comments"]["edges"][0]["node"]["authorName"], "Alice");
    let msgs: Vec<&str> = i["activity"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["message"].as_str())
        .collect();
    assert_eq!(msgs, ["change 3", "change 2", "change 1"], "activity newest first");
    assert_eq!(i["activity"]["nodes"][0]["before"], "ACTIVE");
    assert_eq!(i["activity"]["nodes"][0]["after"], "IN_PROGRESS");
    assert_eq!(i["activity"]["totalCount"], 4);

    let next = json!({
        "id": f.inc.id, "n": 2, "a": i["alerts"]["pageInfo"]["endCursor"],
        "cn": 3, "ca": i["comments"]["pageInfo"]["endCursor"],
        "an": 3, "aa": i["activity"]["pageInfo"]["endCursor"],
    });
    let data = f.app.ok(&f.reader, q, next).await;
    let i = &data["incident"];
    assert_eq!(i["alerts"]["nodes"], json!([{ "id": f.alerts[2].id, "title": "Alert 2" }]));
    assert_eq!(i["alerts"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(i["alerts"]["pageInfo"]["hasPreviousPage"], true);
    let bodies: Vec<&str> = i["comments"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["note 3", "note 4"]);
    assert_eq!(i["activity"]["nodes"][0]["message"], "change 0");
    assert_eq!(i["activity"]["pageInfo"]["hasNextPage"], false);

    let r = Some(f.reader.as_str());
    let too_many = json!({ "id": f.inc.id, "n": 101 });
    assert_eq!(f.app.err_code(r, q, too_many).await, "BAD_USER_INPUT");
    let bad_cursor = json!({ "id": f.inc.id, "ca": i["alerts"]["pageInfo"]["endCursor"] });
    assert_eq!(
        f.app.err_code(r, q, bad_cursor).await,
        "BAD_USER_INPUT",
        "an alerts cursor is not a comments cursor"
    );
}

#[tokio::test]
async fn incident_counts_and_rollups() {
    let f = fixture().await;
    let q = r#"query($id: ID!) { incident(id: $id) {
        impactedMailboxes alertsByStatus { status count } alertsBySeverity { severity count }
        serviceSources detectionSources redirectIncident { id } } }"#;
    let data = f.app.ok(&f.reader, q, json!({ "id": f.inc.id })).await;
    let i = &data["incident"];
    assert_eq!(i["impactedMailboxes"], 2, "ceo twice counts once, plus cfo");
    assert_eq!(
        i["alertsByStatus"],
        json!([{ "status": "NEW", "count": 2 }, { "status": "IN_PROGRESS", "count": 0 },
               { "status": "RESOLVED", "count": 1 }])
    );
    assert_eq!(i["alertsBySeverity"][0], json!({ "severity": "HIGH", "count": 2 }));
    assert_eq!(i["alertsBySeverity"][1], json!({ "severity": "MEDIUM", "count": 1 }));
    assert_eq!(i["alertsBySeverity"].as_array().map(Vec::len), Some(5));
    assert_eq!(i["serviceSources"], json!(["microsoftCloudAppSecurity", "microsoftDefenderForOffice365"]));
    assert_eq!(i["detectionSources"], json!(["microsoftDefenderForOffice365"]));
    assert_eq!(i["redirectIncident"], Value::Null);

    // A merged incident points at its target.
    let mut merged = seed::incident(T, "Merged away", Severity::Low);
    merged.status = IncidentStatus::Redirected;
    merged.redirect_incident_id = Some(f.inc.id);
    seed::insert_incident(&f.app, &merged).await;
    let data = f.app.ok(&f.reader, q, json!({ "id": merged.id })).await;
    assert_eq!(data["incident"]["redirectIncident"]["id"], json!(f.inc.id));
    assert_eq!(data["incident"]["impactedMailboxes"], 0);
}

#[tokio::test]
async fn alert_nested_fields() {
    let f = fixture().await;
    let q = r#"query($id: ID!) { alert(id: $id) {
        incident { id displayName alertCount }
        evidence { __typename kind verdict alertIds ... on EmailEvidence { recipient } }
        comments(first: 10) { totalCount nodes { body } }
        activity { totalCount nodes { message } } } }"#;
    let data = f.app.ok(&f.reader, q, json!({ "id": f.alerts[0].id })).await;
    let a = &data["alert"];
    assert_eq!(a["incident"]["id"], json!(f.inc.id));
    assert_eq!(a["incident"]["alertCount"], 3);
    assert_eq!(
        a["evidence"],
        json!([
            { "__typename": "EmailEvidence", "kind": "EMAIL", "verdict": "SUSPICIOUS",
              "alertIds": [f.alerts[0].id], "recipient": "ceo@contoso.com" },
            { "__typename": "MailboxEvidence", "kind": "MAILBOX", "verdict": "UNKNOWN",
              "alertIds": [f.alerts[0].id] }
        ]),
        "an alert's own rows, unmerged"
    );
    assert_eq!(a["comments"], json!({ "totalCount": 1, "nodes": [{ "body": "on the alert" }] }));
    assert_eq!(a["activity"], json!({ "totalCount": 0, "nodes": [] }));
    let data = f.app.ok(&f.reader, q, json!({ "id": f.alerts[1].id })).await;
    assert_eq!(data["alert"]["activity"]["nodes"], json!([{ "message": "alert change" }]));

    // From the queue, through lists: alerts of incidents of alerts.
    let q = r#"{ alerts(first: 10) { nodes { title incident { alerts(first: 1) { nodes { title } } } } } }"#;
    let data = f.app.ok(&f.reader, q, json!({})).await;
    let nodes = data["alerts"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["incident"]["alerts"]["nodes"] == json!([{ "title": "Alert 0" }])));
}
