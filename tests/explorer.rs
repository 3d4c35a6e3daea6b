//! Threat Explorer through the API: every filter, paging with cursors, exact and estimated counts,
//! grouped counts, roles, tenants kept apart, bad input, and 32 concurrent 30-day hunts on
//! PostgreSQL's default lock settings.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::alerts::INGEST;
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const PUSH: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected \
                    items { status error email { id } } } }";
const HUNT: &str = "query($f: EmailFilter!, $first: Int, $after: String, $o: EmailOrder) { \
    emails(filter: $f, first: $first, after: $after, orderBy: $o) { totalCount totalCountIsEstimate \
    pageInfo { hasNextPage endCursor } nodes { id networkMessageId recipient subject receivedAt } } }";
const AGG: &str = "query($f: EmailFilter!, $g: EmailGroupBy!, $first: Int) { \
    emailAggregate(filter: $f, groupBy: $g, first: $first) { key count } }";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Seven copies of contoso's mail, each differing in what a filter picks out.
fn corpus() -> Vec<Value> {
    let now = Utc::now();
    let at = |h: i64| iso(now - Duration::hours(h));
    vec![
        json!({ "networkMessageId": "m1", "recipient": "alice@contoso.com", "receivedAt": at(1),
                "envelopeSender": "bounce@mail.fabrikam.example", "headerFrom": "billing@fabrikam.example",
                "subject": "Invoice 4471 overdue", "urls": ["https://evil.example/pay?id=1", "https://cdn.good.example/x.png"],
                "attachments": [{ "name": "Invoice.PDF", "sha256": "a".repeat(64) }],
                "threatTypes": ["PHISH"], "phishConfidence": "HIGH", "detectionTechnologies": ["URL detonation"],
                "deliveryAction": "DELIVERED", "latestDeliveryLocation": "QUARANTINE", "clusterId": "c-1",
                "senderIp": "203.0.113.9" }),
        json!({ "networkMessageId": "m1", "recipient": "bob@contoso.com", "receivedAt": at(1),
                "envelopeSender": "bounce@mail.fabrikam.example", "headerFrom": "billing@fabrikam.example",
                "subject": "Invoice 4471 overdue", "urls": ["https://evil.example/pay?id=2"],
                "threatTypes": ["PHISH"], "phishConfidence": "HIGH", "detectionTechnologies": ["URL detonation"],
                "deliveryAction": "DELIVERED", "clusterId": "c-1", "senderIp": "203.0.113.9" }),
        json!({ "networkMessageId": "m2", "recipient": "carol@contoso.com", "receivedAt": at(30),
                "headerFrom": "news@sub.fabrikam.example", "subject": "Weekly news",
                "deliveryAction": "DELIVERED_TO_JUNK", "threatTypes": ["SPAM"] }),
        json!({ "networkMessageId": "m3", "recipient": "alice@contoso.com", "receivedAt": at(72),
                "headerFrom": "hr@contoso.com", "subject": "Payroll", "direction": "INTRA_ORG",
                "attachments": [{ "name": "payroll.xlsx", "sha256": "b".repeat(64) }] }),
        json!({ "networkMessageId": "m4", "recipient": "dave@contoso.com", "receivedAt": at(24 * 10),
                "headerFrom": "x@fabrikam.example.org", "subject": "not a fabrikam.example domain",
                "deliveryAction": "BLOCKED", "threatTypes": ["MALWARE"],
                "attachments": [{ "name": "x.exe", "sha256": "c".repeat(64) }] }),
        json!({ "networkMessageId": "m5", "recipient": "erin@partner.example", "receivedAt": at(5),
                "envelopeSender": "alice@contoso.com", "headerFrom": "alice@contoso.com", "subject": "Re: INVOICE",
                "direction": "OUTBOUND", "urls": ["https://evil.example/other"] }),
        json!({ "networkMessageId": "m6", "recipient": "frank@contoso.com", "receivedAt": at(2),
                "envelopeSender": "billing@fabrikam.example", "headerFrom": "spoof@lookalike.example",
                "subject": "Invoice", "urls": ["http://evil.example.net/"] }),
    ]
}

async fn seed(app: &TestApp, tenant: &str) {
    let gw = app.token(tenant, &format!("gw@{tenant}"), &[Role::Ingestor]);
    let r = app.ok(&gw, PUSH, json!({ "e": corpus() })).await;
    assert_eq!(r["ingestEmails"]["accepted"], 7, "{r:#}");
}

async fn ids(app: &TestApp, token: &str, filter: Value) -> Vec<String> {
    let d = app.ok(token, HUNT, json!({ "f": filter, "first": 100 })).await;
    let nodes = d["emails"]["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(d["emails"]["totalCount"], nodes.len(), "count agrees with the page: {d:#}");
    let mut out: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}/{}",
                n["networkMessageId"].as_str().unwrap_or(""),
                n["recipient"].as_str().unwrap_or("").split('@').next().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_filter_picks_out_its_copies() {
    let app = TestApp::new().await;
    seed(&app, "contoso").await;
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let all = ids(&app, &r, json!({})).await;
    assert_eq!(all.len(), 7);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // Sender: a domain exactly (envelope or header), *.domain for subdomains too, an address.
        (json!({ "sender": "fabrikam.example" }), vec!["m1/alice", "m1/bob", "m6/frank"]),
        (json!({ "sender": "*.fabrikam.example" }), vec!["m1/alice", "m1/bob", "m2/carol", "m6/frank"]),
        (json!({ "sender": "Billing@Fabrikam.example" }), vec!["m1/alice", "m1/bob", "m6/frank"]),
        (json!({ "sender": "mail.fabrikam.example" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "recipient": "alice@contoso.com" }), vec!["m1/alice", "m3/alice"]),
        (json!({ "recipient": "partner.example" }), vec!["m5/erin"]),
        (json!({ "subjectContains": "invoice" }), vec!["m1/alice", "m1/bob", "m5/erin", "m6/frank"]),
        (json!({ "subjectContains": "4471" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "direction": "OUTBOUND" }), vec!["m5/erin"]),
        (json!({ "direction": ["OUTBOUND", "INTRA_ORG"] }), vec!["m3/alice", "m5/erin"]),
        (json!({ "deliveryAction": "BLOCKED" }), vec!["m4/dave"]),
        (json!({ "originalDeliveryLocation": "JUNK" }), vec!["m2/carol"]),
        (json!({ "latestDeliveryLocation": "QUARANTINE" }), vec!["m1/alice", "m4/dave"]),
        (json!({ "threatTypes": ["MALWARE", "SPAM"] }), vec!["m2/carol", "m4/dave"]),
        (json!({ "phishConfidence": "HIGH" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "detectionTechnology": "url DETONATION" }), vec!["m1/alice", "m1/bob"]),
        // URL: a full URL matches as a prefix; a bare domain matches URLs on that host only.
        (json!({ "url": "https://evil.example/pay" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "url": "https://EVIL.example/pay?id=1" }), vec!["m1/alice"]),
        (json!({ "url": "evil.example" }), vec!["m1/alice", "m1/bob", "m5/erin"]),
        (json!({ "url": "evil.example.net" }), vec!["m6/frank"]),
        (json!({ "attachmentSha256": "B".repeat(64) }), vec!["m3/alice"]),
        (json!({ "attachmentName": "invoice.pdf" }), vec!["m1/alice"]),
        (json!({ "networkMessageId": "M1" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "clusterId": "c-1" }), vec!["m1/alice", "m1/bob"]),
        (json!({ "senderIp": "203.0.113.9" }), vec!["m1/alice", "m1/bob"]),
        (
            json!({ "receivedAfter": iso(Utc::now() - Duration::hours(4)) }),
            vec!["m1/alice", "m1/bob", "m6/frank"],
        ),
        (json!({ "receivedBefore": iso(Utc::now() - Duration::hours(48)) }), vec!["m3/alice", "m4/dave"]),
        // Conditions combine.
        (
            json!({ "sender": "fabrikam.example", "url": "evil.example", "recipient": "bob@contoso.com" }),
            vec!["m1/bob"],
        ),
        (json!({ "sender": "nobody.example" }), vec![]),
    ];
    for (filter, want) in cases {
        assert_eq!(ids(&app, &r, filter.clone()).await, want, "filter {filter}");
    }
}

#[tokio::test]
async fn the_alert_filter_finds_the_copies_its_evidence_names() {
    let app = TestApp::new().await;
    seed(&app, "contoso").await;
    let gw = app.token("contoso", "gw@contoso", &[Role::Ingestor]);
    let alert = json!({
        "providerAlertId": "p-1", "serviceSource": "microsoftDefenderForOffice365", "title": "Phish",
        "severity": "HIGH", "evidence": [
            { "email": { "networkMessageId": "M1", "recipient": "bob@contoso.com" } },
            { "email": { "networkMessageId": "m3", "recipient": "alice@contoso.com" } }
        ]
    });
    let d = app.ok(&gw, INGEST, json!({ "alerts": [alert] })).await;
    let alert_id = d["ingestAlerts"]["items"][0]["alert"]["id"].as_str().expect("alert").to_string();
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    assert_eq!(ids(&app, &r, json!({ "alertId": alert_id })).await, vec!["m1/bob", "m3/alice"]);
    // Another tenant's reader names the same alert id and finds nothing.
    let other = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    assert!(ids(&app, &other, json!({ "alertId": alert_id })).await.is_empty());
}

#[tokio::test]
async fn pages_follow_cursors_in_either_order() {
    let app = TestApp::new().await;
    seed(&app, "contoso").await;
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    for order in [json!(null), json!({ "field": "RECEIVED_AT", "direction": "ASC" })] {
        let mut seen: Vec<String> = vec![];
        let mut after = Value::Null;
        loop {
            let d = app.ok(&r, HUNT, json!({ "f": {}, "first": 3, "after": after, "o": order })).await
                ["emails"]
                .clone();
            assert_eq!(d["totalCount"], 7);
            for n in d["nodes"].as_array().into_iter().flatten() {
                seen.push(
                    n["receivedAt"].as_str().unwrap_or("").to_string() + n["id"].as_str().unwrap_or(""),
                );
            }
            if d["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = d["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen.len(), 7, "each copy once");
        let distinct: std::collections::HashSet<&String> = seen.iter().collect();
        assert_eq!(distinct.len(), 7, "no copy twice: {seen:?}");
        let mut sorted = seen.clone();
        sorted.sort();
        if order.is_null() {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "order {order}");
    }
    // A cursor of the other order is refused.
    let d = app.ok(&r, HUNT, json!({ "f": {}, "first": 1 })).await;
    let cursor = d["emails"]["pageInfo"]["endCursor"].clone();
    let asc = json!({ "field": "RECEIVED_AT", "direction": "ASC" });
    let code = app.err_code(Some(&r), HUNT, json!({ "f": {}, "after": cursor, "o": asc })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(app.err_code(Some(&r), HUNT, json!({ "f": {}, "first": 101 })).await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn aggregates_group_the_copies_a_filter_matches() {
    let app = TestApp::new().await;
    seed(&app, "contoso").await;
    seed(&app, "fabrikam").await;
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let agg = |g: &str, f: Value, first: Value| {
        let (app, r, g) = (&app, r.clone(), g.to_string());
        async move { app.ok(&r, AGG, json!({ "f": f, "g": g, "first": first })).await["emailAggregate"].clone() }
    };
    assert_eq!(
        agg("DELIVERY_ACTION", json!({}), Value::Null).await,
        json!([{ "key": "DELIVERED", "count": 5 }, { "key": "BLOCKED", "count": 1 }, { "key": "DELIVERED_TO_JUNK", "count": 1 }]),
        "one tenant's copies only, largest first"
    );
    assert_eq!(agg("URL_DOMAIN", json!({}), json!(1)).await, json!([{ "key": "evil.example", "count": 3 }]));
    assert_eq!(
        agg("THREAT_TYPE", json!({ "sender": "*.fabrikam.example" }), Value::Null).await,
        json!([{ "key": "PHISH", "count": 2 }, { "key": "SPAM", "count": 1 }])
    );
    assert_eq!(agg("SENDER_IP", json!({}), Value::Null).await, json!([{ "key": "203.0.113.9", "count": 2 }]));
    let days = agg("DAY", json!({}), Value::Null).await;
    let keys: Vec<&str> = days.as_array().into_iter().flatten().filter_map(|b| b["key"].as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "days in time order");
    assert_eq!(days.as_array().into_iter().flatten().filter_map(|b| b["count"].as_i64()).sum::<i64>(), 7);
    let hours = agg("HOUR", json!({ "networkMessageId": "m1" }), Value::Null).await;
    assert_eq!(hours.as_array().map(Vec::len), Some(1));
    assert!(hours[0]["key"].as_str().is_some_and(|k| k.ends_with(":00:00Z")), "{hours}");
    for bad in [json!(0), json!(1001)] {
        let code = app.err_code(Some(&r), AGG, json!({ "f": {}, "g": "SENDER_DOMAIN", "first": bad })).await;
        assert_eq!(code, "BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn hunting_needs_a_reader_and_bad_filters_are_refused() {
    let app = TestApp::new().await;
    seed(&app, "contoso").await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    assert_eq!(app.err_code(Some(&gw), HUNT, json!({ "f": {} })).await, "FORBIDDEN");
    assert_eq!(app.err_code(Some(&gw), AGG, json!({ "f": {}, "g": "DAY" })).await, "FORBIDDEN");
    assert_eq!(app.err_code(None, HUNT, json!({ "f": {} })).await, "UNAUTHENTICATED");
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    for bad in [
        json!({ "attachmentSha256": "xyz" }),
        json!({ "sender": "not a sender" }),
        json!({ "url": "javascript:alert(1)" }),
        json!({ "recipient": "" }),
        json!({ "subjectContains": "a\u{0}b" }),
        json!({ "senderIp": "300.1.1.1" }),
        json!({ "alertId": "nope" }),
        json!({ "receivedAfter": iso(Utc::now()), "receivedBefore": iso(Utc::now() - Duration::days(1)) }),
    ] {
        let resp = app.gql(Some(&r), HUNT, json!({ "f": bad })).await;
        assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{bad}: {resp:#}");
    }
    // Another tenant counts nothing of contoso's.
    let other = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let d = app.ok(&other, HUNT, json!({ "f": {} })).await;
    assert_eq!(d["emails"]["totalCount"], 0);
    let d = app.ok(&other, AGG, json!({ "f": {}, "g": "DELIVERY_ACTION" })).await;
    assert_eq!(d["emailAggregate"], json!([]));
}

#[tokio::test]
async fn past_ten_thousand_the_count_is_an_estimate() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let now = Utc::now();
    for batch in 0..6 {
        let records: Vec<Value> = (0..2000)
            .map(|i| {
                json!({ "networkMessageId": format!("bulk-{batch}-{i}"), "recipient": format!("u{i}@contoso.com"),
                        "receivedAt": iso(now - Duration::minutes(i64::from(i))), "headerFrom": "promo@bulk.example",
                        "subject": "Sale" })
            })
            .collect();
        assert_eq!(app.ok(&gw, PUSH, json!({ "e": records })).await["ingestEmails"]["accepted"], 2000);
    }
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let d =
        app.ok(&r, HUNT, json!({ "f": { "sender": "bulk.example" }, "first": 5 })).await["emails"].clone();
    assert_eq!(d["totalCountIsEstimate"], true, "{d:#}");
    assert!(d["totalCount"].as_i64().is_some_and(|n| n > 10_000), "{d:#}");
    assert_eq!(d["nodes"].as_array().map(Vec::len), Some(5));
    let d = app.ok(&r, HUNT, json!({ "f": { "recipient": "u7@contoso.com" } })).await["emails"].clone();
    assert_eq!((d["totalCount"].clone(), d["totalCountIsEstimate"].clone()), (json!(6), json!(false)));
}

#[tokio::test]
async fn thirty_two_concurrent_thirty_day_hunts_raise_no_lock_error() {
    let app = TestApp::with_pool_size(33).await;
    let now = Utc::now();
    // Copies in every week of the window, so each hunt touches every partition and its indexes.
    parapet::mail::partitions::maintain(&app.state.pool, now, 5_000).await.expect("partitions");
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let records: Vec<Value> = (0..30)
        .map(|d| json!({ "networkMessageId": format!("d{d}"), "recipient": "a@contoso.com",
                         "receivedAt": iso(now - Duration::days(d) - Duration::minutes(1)), "subject": "Daily report",
                         "headerFrom": "r@reports.example", "urls": ["https://reports.example/d"] }))
        .collect();
    assert_eq!(app.ok(&gw, PUSH, json!({ "e": records })).await["ingestEmails"]["accepted"], 30);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let hunts = (0..32).map(|i| {
        let (app, r) = (&app, r.clone());
        async move {
            let f = if i % 2 == 0 {
                json!({ "subjectContains": "report" })
            } else {
                json!({ "url": "reports.example" })
            };
            app.gql(Some(&r), HUNT, json!({ "f": f, "first": 50 })).await
        }
    });
    for resp in futures::future::join_all(hunts).await {
        assert!(resp.get("errors").is_none(), "{resp:#}");
        assert_eq!(resp["data"]["emails"]["totalCount"], 30);
    }
}
