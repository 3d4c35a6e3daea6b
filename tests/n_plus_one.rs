//! No N+1: the number of SQL statements for a page of incidents with their alerts, evidence and comments
//! does not grow with the page size. Its own test binary, so the process-wide statement counter (a
//! Diesel default instrumentation installed on every new connection) sees no other test's queries.

mod common;

use common::seed::{self, hours_ago};
use common::*;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use parapet::auth::Role;
use parapet::domain::enums::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
static PINGS: AtomicUsize = AtomicUsize::new(0);
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts the statements of the app's own work. The connection set-up (`SET statement_timeout`)
/// depends on how many connections the pool happens to open, not on the query, so it is left out; a
/// liveness ping per checkout (`SELECT $1`, what the pool's default recycling sends) is counted apart,
/// and must never be seen.
struct Counter;

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            if text.starts_with("SELECT $1") {
                PINGS.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if text.starts_with("SET ") {
                return;
            }
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut log) = LOG.lock() {
                log.push(text.chars().take(160).collect());
            }
        }
    }
}

const PAGE: &str = r#"query($n: Int) {
  incidents(first: $n) {
    totalCount
    nodes {
      id displayName alertCount impactedMailboxes serviceSources pendingActionCount
      actions(first: 3) { nodes { id status } }
      alertsBySeverity { severity count }
      alerts(first: 10) {
        totalCount
        nodes {
          id title
          incident { id }
          evidence(first: 10) { kind ... on EmailEvidence { recipient } }
          comments(first: 5) { nodes { body } }
        }
      }
      evidence(first: 10) { totalCount nodes { entityKey ... on MailboxEvidence { primaryAddress } } }
      comments(first: 5) { totalCount nodes { body author } }
      activity(first: 5) { nodes { message } }
    }
  }
}"#;

async fn statements_for(app: &TestApp, token: &str, n: usize) -> (usize, Vec<String>) {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let data = app.ok(token, PAGE, json!({ "n": n })).await;
    let after = STATEMENTS.load(Ordering::SeqCst);
    let nodes = data["incidents"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n, "a full page");
    for i in nodes {
        assert_eq!(i["alerts"]["nodes"].as_array().map(Vec::len), Some(2));
        assert_eq!(i["alerts"]["nodes"][0]["evidence"].as_array().map(Vec::len), Some(2));
        assert_eq!(i["alerts"]["nodes"][0]["comments"]["nodes"].as_array().map(Vec::len), Some(1));
        assert_eq!(i["comments"]["totalCount"], 2);
        assert_eq!(i["impactedMailboxes"], 2);
    }
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    (after - before, log)
}

#[tokio::test]
async fn statements_do_not_grow_with_the_page_size() {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Counter))).expect("instrumentation");
    let app = TestApp::new().await;
    let t = "contoso";
    seed::tenant(&app, t).await;
    // 60 incidents, each with 2 alerts, 2 evidence rows per alert, comments and log entries.
    let mut incidents = vec![];
    let mut alerts = vec![];
    let mut evidence = vec![];
    let mut keys = vec![];
    let mut comments = vec![];
    let mut log = vec![];
    for n in 0..60 {
        let mut i = seed::incident(t, &format!("Incident {n}"), Severity::ALL[n % 5]);
        i.last_update_at = hours_ago(n as i64);
        for m in 0..2 {
            let a = seed::alert(&i, &format!("Alert {n}.{m}"), Severity::High);
            let mailbox = format!("user{m}@contoso.com");
            evidence.push(seed::email_evidence(&a, &format!("nmid-{n}"), &mailbox, "bad@evil.example"));
            evidence.push(seed::mailbox_evidence(&a, &mailbox));
            keys.push(seed::key(&a, KeyKind::Mailbox, &mailbox));
            comments.push(seed::comment(t, None, Some(a.id), "alert note", hours_ago(1)));
            alerts.push(a);
        }
        comments.push(seed::comment(t, Some(i.id), None, "first", hours_ago(2)));
        comments.push(seed::comment(t, Some(i.id), None, "second", hours_ago(1)));
        log.push(seed::activity(t, Some(i.id), None, "changed", hours_ago(1)));
        incidents.push(i);
    }
    for i in &incidents {
        seed::insert_incident(&app, i).await;
    }
    seed::insert_alerts(&app, &alerts).await;
    seed::insert_evidence(&app, &evidence).await;
    seed::insert_keys(&app, &keys).await;
    seed::insert_comments(&app, &comments).await;
    seed::insert_activity(&app, &log).await;

    let token = app.token(t, "reader@contoso.com", &[Role::Reader]);
    app.ok(&token, "{ me { sub } }", json!({})).await; // warm up: the tenant row, the pool

    let (small, small_log) = statements_for(&app, &token, 10).await;
    let (large, large_log) = statements_for(&app, &token, 50).await;
    let (again, _) = statements_for(&app, &token, 50).await;
    eprintln!("statements: {small} for 10 incidents, {large} for 50");
    assert_eq!(small, large, "10 incidents: {small_log:#?}\n50 incidents: {large_log:#?}");
    assert_eq!(large, again, "stable from run to run");
    // One statement per list and per nested level, whatever the page size: the page, its count, and
    // one batch each for alert pages, alert counts, roll-ups, mailboxes, incident evidence, incident
    // comments and their count, activity, pending-action counts, first actions, then per alert: incident,
    // evidence, comments. The incident's evidence page is two (its entities, then their latest rows) and
    // its count one more.
    assert!(large <= 17, "{large} statements: {large_log:#?}");

    // The alerts queue, down through each alert's incident to that incident's alerts and evidence.
    let (small, small_log) = alert_statements_for(&app, &token, 10).await;
    let (large, large_log) = alert_statements_for(&app, &token, 50).await;
    eprintln!("statements: {small} for 10 alerts, {large} for 50");
    assert_eq!(small, large, "10 alerts: {small_log:#?}\n50 alerts: {large_log:#?}");
    assert!(large <= 9, "{large} statements: {large_log:#?}");
    // Threat Explorer: a page of copies with each copy's timeline and alerts.
    let gw = app.token(t, "gw@contoso.com", &[Role::Ingestor]);
    let now = chrono::Utc::now();
    let records: Vec<serde_json::Value> = (0..60)
        .map(|n| {
            json!({ "networkMessageId": format!("hunt-{n}"), "recipient": "user0@contoso.com",
                         "receivedAt": (now - chrono::Duration::minutes(n)).to_rfc3339(),
                         "headerFrom": "bad@evil.example", "latestDeliveryLocation": "QUARANTINE" })
        })
        .collect();
    let pushed = app
        .ok(
            &gw,
            "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted } }",
            json!({ "e": records }),
        )
        .await;
    assert_eq!(pushed["ingestEmails"]["accepted"], 60);
    let (small, small_log) = email_statements_for(&app, &token, 10).await;
    let (large, large_log) = email_statements_for(&app, &token, 50).await;
    eprintln!("statements: {small} for 10 copies, {large} for 50");
    assert_eq!(small, large, "10 copies: {small_log:#?}\n50 copies: {large_log:#?}");
    // The page, its count, the page's timelines, the page's alerts.
    assert!(large <= 4, "{large} statements: {large_log:#?}");
    // Submissions: a page with each one's copy and the entry it created.
    let admin = app.token(t, "admin@contoso.com", &[Role::Admin]);
    let ids: Vec<String> = app
        .ok(&token, "{ emails(filter: {}, first: 60) { nodes { id } } }", json!({}))
        .await["emails"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 60);
    for (n, id) in ids.iter().enumerate() {
        let input = if n % 2 == 0 {
            json!({ "contentType": "EMAIL", "emailId": id, "category": "PHISHING" })
        } else {
            json!({ "contentType": "URL", "url": format!("https://bad{n}.example/x"), "category": "PHISHING",
                    "createEntry": { "action": "BLOCK" } })
        };
        app.ok(&admin, "mutation($i: SubmitInput!) { submit(input: $i) { id } }", json!({ "i": input }))
            .await;
    }
    let (small, small_log) = submission_statements_for(&app, &token, 10).await;
    let (large, large_log) = submission_statements_for(&app, &token, 50).await;
    eprintln!("statements: {small} for 10 submissions, {large} for 50");
    // The page, its copies, its entries: the page is a sibling set, so however slowly its resolvers
    // arrive, each nested field is one statement (one per submission would be 51).
    assert_eq!(small, large, "10 submissions: {small_log:#?}\n50 submissions: {large_log:#?}");
    assert!(large <= 3, "{large} statements: {large_log:#?}");
    // Actions: a page with each one's incident and first targets (each target with where its copy is now).
    let analyst = app.token(t, "ann@contoso.com", &[Role::Analyst]);
    let incident_ids: Vec<String> =
        app.ok(&token, "{ incidents(first: 5) { nodes { id } } }", json!({})).await["incidents"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str().map(str::to_string))
            .collect();
    assert!(!incident_ids.is_empty());
    for (n, id) in ids.iter().enumerate() {
        let incident = &incident_ids[n % incident_ids.len()];
        app.ok(
            &analyst,
            "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id } }",
            json!({ "i": { "emailIds": [id], "action": "MOVE_TO_INBOX", "incidentId": incident } }),
        )
        .await;
    }
    let (small, small_log) = action_statements_for(&app, &token, 10).await;
    let (large, large_log) = action_statements_for(&app, &token, 50).await;
    eprintln!("statements: {small} for 10 actions, {large} for 50");
    assert_eq!(small, large, "10 actions: {small_log:#?}\n50 actions: {large_log:#?}");
    // The page, its count, the incidents, the targets.
    assert!(large <= 4, "{large} statements: {large_log:#?}");
    // Connections are lent again without a round trip: no ping on any of the checkouts above.
    assert_eq!(PINGS.load(Ordering::SeqCst), 0, "a checkout sent a liveness query");
}

const ALERT_PAGE: &str = r#"query($n: Int) {
  alerts(first: $n) {
    nodes {
      id
      evidence(first: 10) { kind }
      comments(first: 10) { totalCount nodes { body } }
      incident { displayName alerts(first: 5) { nodes { id evidence(first: 10) { entityKey } } } }
    }
  }
}"#;

async fn alert_statements_for(app: &TestApp, token: &str, n: usize) -> (usize, Vec<String>) {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let data = app.ok(token, ALERT_PAGE, json!({ "n": n })).await;
    let after = STATEMENTS.load(Ordering::SeqCst);
    let nodes = data["alerts"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n);
    for a in nodes {
        assert_eq!(a["evidence"].as_array().map(Vec::len), Some(2));
        assert_eq!(a["comments"]["totalCount"], 1);
        assert_eq!(a["incident"]["alerts"]["nodes"].as_array().map(Vec::len), Some(2));
        assert_eq!(a["incident"]["alerts"]["nodes"][1]["evidence"].as_array().map(Vec::len), Some(2));
    }
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    (after - before, log)
}

const EMAIL_PAGE: &str = r#"query($n: Int) {
  emails(filter: { sender: "evil.example" }, first: $n) {
    totalCount
    nodes { id timeline { kind toLocation } alerts { id } }
  }
}"#;

async fn email_statements_for(app: &TestApp, token: &str, n: usize) -> (usize, Vec<String>) {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let data = app.ok(token, EMAIL_PAGE, json!({ "n": n })).await;
    let after = STATEMENTS.load(Ordering::SeqCst);
    let nodes = data["emails"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n);
    assert_eq!(data["emails"]["totalCount"], 60);
    for e in nodes {
        assert_eq!(e["timeline"].as_array().map(Vec::len), Some(2), "delivery and the move: {e}");
    }
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    (after - before, log)
}

const SUBMISSION_PAGE: &str = r#"query($n: Int) {
  submissions(first: $n) { nodes { id email { id } allowBlockEntry { id } } }
}"#;

const ACTION_PAGE: &str = r#"query($n: Int) {
  actions(first: $n) {
    totalCount
    nodes {
      id status source incident { id displayName }
      targets(first: 5) { totalCount nodes { recipient outcome currentLocation atDestination } }
    }
  }
}"#;

async fn action_statements_for(app: &TestApp, token: &str, n: usize) -> (usize, Vec<String>) {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let data = app.ok(token, ACTION_PAGE, json!({ "n": n })).await;
    let after = STATEMENTS.load(Ordering::SeqCst);
    let nodes = data["actions"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n);
    for a in nodes {
        assert_eq!(a["status"], "PENDING");
        assert!(a["incident"]["id"].is_string(), "{a:#}");
        assert_eq!(a["targets"]["totalCount"], 1);
        assert_eq!(a["targets"]["nodes"][0]["currentLocation"], "QUARANTINE", "{a:#}");
    }
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    (after - before, log)
}

async fn submission_statements_for(app: &TestApp, token: &str, n: usize) -> (usize, Vec<String>) {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let data = app.ok(token, SUBMISSION_PAGE, json!({ "n": n })).await;
    let after = STATEMENTS.load(Ordering::SeqCst);
    let nodes = data["submissions"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), n);
    let copies = nodes.iter().filter(|s| s["email"]["id"].is_string()).count();
    let entries = nodes.iter().filter(|s| s["allowBlockEntry"]["id"].is_string()).count();
    assert_eq!((copies, entries), (n / 2, n / 2), "{data:#}");
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    (after - before, log)
}
