//! The mail store through the API: `ingestEmails` (per-record outcomes, limits, roles), re-sends that
//! update a copy and extend its timeline without duplicates, stale updates, the link between alerts'
//! e-mail evidence and copies in both orders of arrival, tenants kept apart, and retention by partition.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::alerts::INGEST;
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const PUSH: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected \
                    items { index status error email { id } } } }";
const READ: &str = "query($id: ID!) { email(id: $id) { id networkMessageId recipient recipientDomain \
    envelopeSender headerFrom senderDomain subject receivedAt deliveryAction originalDeliveryLocation \
    latestDeliveryLocation threatTypes urls urlDomains attachments { name sha256 size } source \
    timeline { kind at fromLocation toLocation actor reason } alerts { id title } } }";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn record(nmid: &str, recipient: &str, received: chrono::DateTime<Utc>) -> Value {
    json!({
        "networkMessageId": nmid,
        "recipient": recipient,
        "receivedAt": iso(received),
        "envelopeSender": "bounce@mail.fabrikam.example",
        "headerFrom": "Billing@Fabrikam.example",
        "subject": "Invoice 4471",
        "urls": ["https://evil.example/pay?x=1"],
        "attachments": [{ "name": "invoice.pdf", "sha256": "A".repeat(64), "size": 1200 }],
        "threatTypes": ["PHISH"],
        "deliveryAction": "DELIVERED"
    })
}

async fn push(app: &TestApp, token: &str, records: Value) -> Value {
    app.ok(token, PUSH, json!({ "e": records })).await["ingestEmails"].clone()
}

async fn read(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(token, READ, json!({ "id": id })).await["email"].clone()
}

#[tokio::test]
async fn records_are_stored_per_item_and_read_back_by_readers_of_the_tenant() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let now = Utc::now();
    let mut old = record("old-1", "bob@contoso.com", now - Duration::days(31));
    old["networkMessageId"] = json!("old-1");
    let mut bad_hash = record("bad-1", "bob@contoso.com", now - Duration::hours(2));
    bad_hash["attachments"] = json!([{ "sha256": "xyz" }]);
    let mut no_time = record("nt-1", "bob@contoso.com", now);
    no_time.as_object_mut().map(|o| o.remove("receivedAt"));
    let r = push(
        &app,
        &gw,
        json!([record("NMID-1", "Bob@Contoso.com", now - Duration::hours(1)), old, bad_hash, no_time]),
    )
    .await;
    assert_eq!((r["accepted"].clone(), r["rejected"].clone()), (json!(1), json!(3)), "{r:#}");
    assert_eq!(r["items"][0]["status"], "CREATED");
    let err = |i: usize| r["items"][i]["error"].as_str().unwrap_or_default().to_string();
    assert!(err(1).contains("30 days"), "{}", err(1));
    assert!(err(2).contains("SHA-256"), "{}", err(2));
    assert!(err(3).contains("receivedAt is required"), "{}", err(3));
    let id = r["items"][0]["email"]["id"].as_str().expect("id").to_string();

    let e = read(&app, &reader, &id).await;
    assert_eq!(e["networkMessageId"], "nmid-1");
    assert_eq!(e["recipient"], "bob@contoso.com");
    assert_eq!(e["recipientDomain"], "contoso.com");
    assert_eq!(e["senderDomain"], "fabrikam.example", "the From: header's domain");
    assert_eq!(e["urlDomains"], json!(["evil.example"]));
    assert_eq!(e["attachments"][0]["sha256"], "a".repeat(64));
    assert_eq!(e["originalDeliveryLocation"], "INBOX");
    assert_eq!(e["latestDeliveryLocation"], "INBOX");
    assert_eq!(e["source"], "MAIL_FLOW");
    assert_eq!(e["timeline"].as_array().map(Vec::len), Some(1));
    assert_eq!(e["timeline"][0]["kind"], "ORIGINAL_DELIVERY");
    assert_eq!(e["timeline"][0]["toLocation"], "INBOX");
    assert_eq!(e["timeline"][0]["actor"], "mail flow");

    // Roles: ingestors push but don't read; readers read but don't push; no token, no entry.
    assert_eq!(app.err_code(Some(&gw), READ, json!({ "id": id })).await, "FORBIDDEN");
    assert_eq!(app.err_code(Some(&reader), PUSH, json!({ "e": [] })).await, "FORBIDDEN");
    let analyst = app.token("contoso", "a@contoso.com", &[Role::Analyst]);
    assert_eq!(app.err_code(Some(&analyst), PUSH, json!({ "e": [] })).await, "FORBIDDEN");
    assert_eq!(app.err_code(None, PUSH, json!({ "e": [] })).await, "UNAUTHENTICATED");
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    assert_eq!(push(&app, &admin, json!([])).await["accepted"], 0);
    let (_, _, metrics) = app.get_text("/metrics").await;
    assert!(metrics.contains("parapet_emails_ingested_total 1\n"), "{metrics}");

    // Another tenant sees nothing of it, not even that it exists.
    let other = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    assert_eq!(read(&app, &other, &id).await, Value::Null);
    assert_eq!(app.err_code(Some(&reader), READ, json!({ "id": "nope" })).await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn more_than_two_thousand_records_are_refused_whole() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let now = Utc::now();
    let many: Vec<Value> =
        (0..2001).map(|i| record(&format!("n{i}"), "bob@contoso.com", now - Duration::minutes(5))).collect();
    let resp = app.gql(Some(&gw), PUSH, json!({ "e": many })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{resp:#}");
    assert!(resp["errors"][0]["message"].as_str().unwrap_or_default().contains("2000"));
    // Exactly 2,000 go in, in one call.
    let r = push(&app, &gw, json!(many[..2000])).await;
    assert_eq!(r["accepted"], 2000);
}

#[tokio::test]
async fn a_resend_updates_the_copy_and_its_timeline_once() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let received = Utc::now() - Duration::hours(3);
    let first = record("zap-1", "bob@contoso.com", received);
    let id = push(&app, &gw, json!([first.clone()])).await["items"][0]["email"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Zero-hour auto purge moved it to quarantine an hour later.
    let mut zap = first.clone();
    zap["latestDeliveryLocation"] = json!("QUARANTINE");
    zap["eventAt"] = json!(iso(received + Duration::hours(1)));
    zap["eventReason"] = json!("Phish ZAP");
    zap["threatTypes"] = json!(["PHISH", "MALWARE"]);
    for _ in 0..2 {
        let r = push(&app, &gw, json!([zap.clone()])).await;
        assert_eq!(r["items"][0]["status"], "UPDATED");
        assert_eq!(r["items"][0]["email"]["id"], id.as_str(), "the same copy");
    }
    let e = read(&app, &reader, &id).await;
    assert_eq!(e["latestDeliveryLocation"], "QUARANTINE");
    assert_eq!(e["originalDeliveryLocation"], "INBOX");
    assert_eq!(e["threatTypes"], json!(["MALWARE", "PHISH"]));
    let timeline = e["timeline"].as_array().cloned().unwrap_or_default();
    assert_eq!(timeline.len(), 2, "re-sending the move adds no duplicate: {timeline:#?}");
    assert_eq!(timeline[1]["kind"], "ZAP");
    assert_eq!(timeline[1]["fromLocation"], "INBOX");
    assert_eq!(timeline[1]["toLocation"], "QUARANTINE");
    assert_eq!(timeline[1]["reason"], "Phish ZAP");

    // An update older than the copy's state only adds to the timeline.
    let mut stale = first.clone();
    stale["latestDeliveryLocation"] = json!("JUNK");
    stale["eventAt"] = json!(iso(received + Duration::minutes(30)));
    stale["eventType"] = json!("DELIVERY_UPDATE");
    assert_eq!(push(&app, &gw, json!([stale])).await["items"][0]["status"], "UPDATED");
    let e = read(&app, &reader, &id).await;
    assert_eq!(e["latestDeliveryLocation"], "QUARANTINE", "the stale update leaves the location alone");
    let kinds: Vec<&str> =
        e["timeline"].as_array().into_iter().flatten().filter_map(|t| t["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["ORIGINAL_DELIVERY", "DELIVERY_UPDATE", "ZAP"], "in time order");

    // Released from quarantine later: the inferred kind says so; and the original re-sent changes
    // nothing it should not (no new event, the copy goes back to where the record says).
    let mut release = first.clone();
    release["latestDeliveryLocation"] = json!("INBOX");
    release["eventAt"] = json!(iso(received + Duration::hours(2)));
    push(&app, &gw, json!([release])).await;
    let e = read(&app, &reader, &id).await;
    assert_eq!(e["latestDeliveryLocation"], "INBOX");
    let last = e["timeline"].as_array().and_then(|t| t.last().cloned()).unwrap_or_default();
    assert_eq!(
        (last["kind"].clone(), last["fromLocation"].clone()),
        (json!("QUARANTINE_RELEASE"), json!("QUARANTINE"))
    );
    assert_eq!(e["timeline"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn one_batch_may_carry_a_delivery_and_its_later_move() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let received = Utc::now() - Duration::hours(3);
    let first = record("both-1", "bob@contoso.com", received);
    let mut moved = first.clone();
    moved["latestDeliveryLocation"] = json!("SOFT_DELETED");
    moved["eventAt"] = json!(iso(received + Duration::hours(1)));
    let r = push(&app, &gw, json!([first, moved])).await;
    assert_eq!(r["items"][0]["status"], "CREATED");
    assert_eq!(r["items"][1]["status"], "UPDATED");
    assert_eq!(r["items"][0]["email"]["id"], r["items"][1]["email"]["id"]);
    let e = read(&app, &reader, r["items"][0]["email"]["id"].as_str().unwrap_or_default()).await;
    assert_eq!(e["latestDeliveryLocation"], "SOFT_DELETED");
    assert_eq!(e["timeline"].as_array().map(Vec::len), Some(2));
}

const EVIDENCE: &str = "query($id: ID!) { alert(id: $id) { id evidence { ... on EmailEvidence { \
    networkMessageId email { id source receivedAt alerts { id } } } } } }";

fn alert_naming(
    provider_id: &str,
    nmid: &str,
    recipient: &str,
    received: Option<chrono::DateTime<Utc>>,
) -> Value {
    let mut email = json!({ "networkMessageId": nmid, "recipient": recipient, "headerFrom": "x@fabrikam.example",
                            "subject": "Invoice 4471", "threatTypes": ["PHISH"] });
    if let Some(t) = received {
        email["receivedAt"] = json!(iso(t));
    }
    json!({
        "providerAlertId": provider_id,
        "serviceSource": "microsoftDefenderForOffice365",
        "alertPolicy": "A potentially malicious URL click was detected",
        "title": "Suspicious e-mail",
        "severity": "MEDIUM",
        "evidence": [{ "verdict": "MALICIOUS", "email": email }]
    })
}

async fn ingest_alert(app: &TestApp, token: &str, alert: Value) -> String {
    let r = app.ok(token, INGEST, json!({ "alerts": [alert] })).await;
    r["ingestAlerts"]["items"][0]["alert"]["id"].as_str().expect("alert id").to_string()
}

#[tokio::test]
async fn evidence_links_to_the_copy_when_the_mail_flow_came_first() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let received = Utc::now() - Duration::hours(5);
    let copy = push(&app, &gw, json!([record("LINK-1", "bob@contoso.com", received)])).await["items"][0]
        ["email"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let alert = ingest_alert(&app, &gw, alert_naming("a-1", "link-1", "Bob@contoso.com", None)).await;
    let ev = app.ok(&reader, EVIDENCE, json!({ "id": alert })).await["alert"]["evidence"][0]["email"].clone();
    assert_eq!(ev["id"], copy.as_str(), "the evidence names the mail-flow copy");
    assert_eq!(ev["source"], "MAIL_FLOW");
    assert_eq!(ev["alerts"][0]["id"], alert.as_str());
    let e = read(&app, &reader, &copy).await;
    assert_eq!(e["alerts"].as_array().map(Vec::len), Some(1), "Email.alerts: {e:#}");
    // No learned duplicate was made.
    let count = count_copies(&app, "link-1").await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn evidence_creates_a_copy_that_the_mail_flow_record_then_adopts() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let alert = ingest_alert(&app, &gw, alert_naming("a-2", "LINK-2", "bob@contoso.com", None)).await;
    let learned =
        app.ok(&reader, EVIDENCE, json!({ "id": alert })).await["alert"]["evidence"][0]["email"].clone();
    assert_eq!(learned["source"], "ALERT", "learned from the alert: {learned:#}");
    let learned_id = learned["id"].as_str().expect("a learned copy").to_string();
    let e = read(&app, &reader, &learned_id).await;
    assert_eq!(e["timeline"][0]["actor"], "alert evidence");
    assert_eq!(e["subject"], "Invoice 4471");
    // Re-sending the alert learns nothing twice.
    ingest_alert(&app, &gw, alert_naming("a-2", "LINK-2", "bob@contoso.com", None)).await;
    assert_eq!(count_copies(&app, "link-2").await, 1);

    // The gateway's record arrives with the real receive time: it adopts the learned copy.
    let received = Utc::now() - Duration::days(2);
    let r = push(&app, &gw, json!([record("link-2", "bob@contoso.com", received)])).await;
    assert_eq!(r["items"][0]["status"], "UPDATED", "{r:#}");
    assert_eq!(r["items"][0]["email"]["id"], learned_id.as_str(), "the same copy");
    let e = read(&app, &reader, &learned_id).await;
    assert_eq!(e["source"], "MAIL_FLOW");
    assert_eq!(ts(&e["receivedAt"]).timestamp_micros(), received.timestamp_micros());
    assert_eq!(e["timeline"].as_array().map(Vec::len), Some(1), "one original delivery: {e:#}");
    assert_eq!(e["timeline"][0]["actor"], "mail flow");
    assert_eq!(e["alerts"][0]["id"], alert.as_str());
    assert_eq!(count_copies(&app, "link-2").await, 1);
}

#[tokio::test]
async fn a_learned_copy_named_exactly_is_not_adopted_by_another_record_of_the_batch() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let t1 = Utc::now() - Duration::hours(5);
    let alert = ingest_alert(&app, &gw, alert_naming("a-3", "twin-1", "bob@contoso.com", Some(t1))).await;
    let learned = app.ok(&reader, EVIDENCE, json!({ "id": alert })).await["alert"]["evidence"][0]["email"]
        ["id"]
        .clone();
    // One batch: the record with the learned copy's own receive time, and one of another time.
    let r = push(
        &app,
        &gw,
        json!([
            record("twin-1", "bob@contoso.com", t1),
            record("twin-1", "bob@contoso.com", t1 - Duration::hours(1))
        ]),
    )
    .await;
    assert_eq!(r["items"][0]["email"]["id"], learned, "the exact record updates the learned copy: {r:#}");
    assert_eq!(r["items"][1]["status"], "CREATED", "the other is a copy of its own: {r:#}");
    assert_eq!(count_copies(&app, "twin-1").await, 2);
    let e = read(&app, &reader, learned.as_str().unwrap_or_default()).await;
    assert_eq!(ts(&e["receivedAt"]).timestamp_micros(), t1.timestamp_micros(), "not moved: {e:#}");
}

#[tokio::test]
async fn copies_and_links_stay_inside_their_tenant() {
    let app = TestApp::new().await;
    let gw_a = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let gw_b = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let reader_b = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let received = Utc::now() - Duration::hours(1);
    push(&app, &gw_a, json!([record("shared-1", "bob@contoso.com", received)])).await;
    // Fabrikam's alert names the same message id and recipient: it learns its own copy.
    let alert =
        ingest_alert(&app, &gw_b, alert_naming("b-1", "shared-1", "bob@contoso.com", Some(received))).await;
    let ev =
        app.ok(&reader_b, EVIDENCE, json!({ "id": alert })).await["alert"]["evidence"][0]["email"].clone();
    assert_eq!(ev["source"], "ALERT", "never contoso's copy: {ev:#}");
    assert_eq!(count_copies(&app, "shared-1").await, 2);
}

async fn count_copies(app: &TestApp, nmid: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<N> = diesel::sql_query("SELECT count(*) AS n FROM emails WHERE network_message_id = $1")
        .bind::<diesel::sql_types::Text, _>(nmid)
        .load(&mut conn)
        .await
        .expect("count");
    rows.into_iter().next().map(|r| r.n).unwrap_or(-1)
}

async fn partitions(app: &TestApp) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT relname::text AS name FROM pg_class WHERE relname ~ '^(emails|email_events)_p[0-9]{8}$' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .expect("partitions");
    rows.into_iter().map(|r| r.name).collect()
}

#[tokio::test]
async fn retention_detaches_and_drops_whole_weeks() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let now = Utc::now();
    let r = push(
        &app,
        &gw,
        json!([
            record("old-week", "bob@contoso.com", now - Duration::days(29)),
            record("this-week", "bob@contoso.com", now)
        ]),
    )
    .await;
    let old_id = r["items"][0]["email"]["id"].as_str().unwrap_or_default().to_string();
    let new_id = r["items"][1]["email"]["id"].as_str().unwrap_or_default().to_string();
    let old_week = (now - Duration::days(29))
        .date_naive()
        .week(chrono::Weekday::Mon)
        .first_day()
        .format("%Y%m%d")
        .to_string();
    assert!(partitions(&app).await.contains(&format!("emails_p{old_week}")));

    // A pass today retires nothing that still holds a copy of the last 30 days.
    let report = parapet::mail::partitions::maintain(&app.state.pool, now, 5_000).await.expect("pass");
    assert!(report.ran && report.detached.is_empty(), "{report:?}");
    assert!(report.made > 0, "the coming weeks are made ahead: {report:?}");

    // Ten days on, the old week is past the window: its partitions are detached and dropped, whole.
    let later = now + Duration::days(10);
    let report = parapet::mail::partitions::maintain(&app.state.pool, later, 5_000).await.expect("pass");
    assert!(report.detached.contains(&format!("emails_p{old_week}")), "{report:?}");
    assert!(report.dropped.contains(&format!("email_events_p{old_week}")), "{report:?}");
    let left = partitions(&app).await;
    assert!(!left.iter().any(|p| p.ends_with(&old_week)), "{left:?}");
    assert_eq!(count_copies(&app, "old-week").await, 0);
    assert_eq!(read(&app, &reader, &old_id).await, Value::Null);
    assert_eq!(read(&app, &reader, &new_id).await["networkMessageId"], "this-week", "the recent copy stays");
    // A second pass finds nothing to do.
    let again = parapet::mail::partitions::maintain(&app.state.pool, later, 5_000).await.expect("pass");
    assert!(again.detached.is_empty() && again.dropped.is_empty(), "{again:?}");
}

const CREATE_ENTRY: &str =
    "mutation($i: CreateAllowBlockEntryInput!) { createAllowBlockEntry(input: $i) { id } }";
const ENTRY: &str = "query($id: ID!) { allowBlockEntry(id: $id) { lastUsedAt } }";
const VERDICT: &str =
    "query($id: ID!) { email(id: $id) { threatTypes phishConfidence detectionTechnologies overrideSource } }";

async fn entry(app: &TestApp, admin: &str, kind: &str, value: &str, action: &str) -> String {
    let d =
        app.ok(admin, CREATE_ENTRY, json!({ "i": { "kind": kind, "value": value, "action": action } })).await;
    d["createAllowBlockEntry"]["id"].as_str().expect("entry id").to_string()
}

async fn last_used(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(token, ENTRY, json!({ "id": id })).await["allowBlockEntry"]["lastUsedAt"].clone()
}

#[tokio::test]
async fn the_tenant_list_judges_every_copy_written() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let sender_block = entry(&app, &admin, "SENDER", "*.fabrikam.example", "BLOCK").await;
    let file_block = entry(&app, &admin, "FILE_HASH", &"d".repeat(64), "BLOCK").await;
    let allow = entry(&app, &admin, "SENDER", "newsletter@partner.example", "ALLOW").await;
    let unused = entry(&app, &admin, "URL", "https://never.example/", "BLOCK").await;
    let now = Utc::now() - Duration::minutes(10);

    let mut blocked = record("tabl-1", "bob@contoso.com", now);
    blocked["threatTypes"] = json!([]);
    let mut malware = record("tabl-2", "bob@contoso.com", now);
    malware["headerFrom"] = json!("x@elsewhere.example");
    malware["envelopeSender"] = json!("x@elsewhere.example");
    malware["threatTypes"] = json!([]);
    malware["attachments"] = json!([{ "name": "a.exe", "sha256": "D".repeat(64) }]);
    let mut spam = record("tabl-3", "bob@contoso.com", now);
    spam["headerFrom"] = json!("newsletter@partner.example");
    spam["envelopeSender"] = json!("newsletter@partner.example");
    spam["threatTypes"] = json!(["SPAM"]);
    spam["attachments"] = json!([]);
    let mut high = spam.clone();
    high["networkMessageId"] = json!("tabl-4");
    high["threatTypes"] = json!(["PHISH"]);
    high["phishConfidence"] = json!("HIGH");
    let r = push(&app, &gw, json!([blocked, malware, spam, high])).await;
    let id = |i: usize| r["items"][i]["email"]["id"].as_str().unwrap_or_default().to_string();
    let verdict = |i: usize| {
        let (app, reader, id) = (&app, reader.clone(), id(i));
        async move { app.ok(&reader, VERDICT, json!({ "id": id })).await["email"].clone() }
    };

    let v = verdict(0).await;
    assert_eq!(v["threatTypes"], json!(["PHISH"]), "a blocked sender's copy is phish: {v:#}");
    assert_eq!(v["phishConfidence"], "HIGH");
    assert!(v["detectionTechnologies"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("Tenant Allow/Block List sender block"))));
    assert_eq!(v["overrideSource"], "Tenant Allow/Block List");
    let v = verdict(1).await;
    assert_eq!(v["threatTypes"], json!(["MALWARE"]), "a blocked file's copy is malware: {v:#}");
    let v = verdict(2).await;
    assert_eq!(v["threatTypes"], json!([]), "an allow clears spam: {v:#}");
    assert_eq!(v["overrideSource"], "Tenant Allow/Block List");
    let v = verdict(3).await;
    assert_eq!(v["threatTypes"], json!(["PHISH"]), "an allow never clears high-confidence phish: {v:#}");
    assert_eq!(v["overrideSource"], Value::Null);

    for used in [&sender_block, &file_block, &allow] {
        assert!(last_used(&app, &admin, used).await.is_string(), "entry {used} was used");
    }
    assert_eq!(last_used(&app, &admin, &unused).await, Value::Null, "an entry that matched nothing");

    // Copies learned from alerts are judged too.
    let alert = json!({ "providerAlertId": "tabl-a", "serviceSource": "mdo", "title": "x", "severity": "LOW",
        "evidence": [{ "email": { "networkMessageId": "tabl-5", "recipient": "carol@contoso.com",
                                   "headerFrom": "ceo@mail.fabrikam.example" } }] });
    let d = app.ok(&gw, INGEST, json!({ "alerts": [alert] })).await;
    let alert_id = d["ingestAlerts"]["items"][0]["alert"]["id"].as_str().unwrap_or_default().to_string();
    let ev = app.ok(&reader, "query($id: ID!) { alert(id: $id) { evidence { ... on EmailEvidence { email { threatTypes overrideSource } } } } }", json!({ "id": alert_id })).await;
    assert_eq!(ev["alert"]["evidence"][0]["email"]["threatTypes"], json!(["PHISH"]), "{ev:#}");

    // Another tenant's mail is untouched by contoso's list.
    let gw_b = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let reader_b = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let mut clean = record("tabl-b", "bob@fabrikam.com", now);
    clean["threatTypes"] = json!([]);
    let b = push(&app, &gw_b, json!([clean])).await;
    let v = app.ok(&reader_b, VERDICT, json!({ "id": b["items"][0]["email"]["id"] })).await;
    assert_eq!(v["email"]["threatTypes"], json!([]));
}

#[tokio::test]
async fn a_detach_held_up_by_a_reader_is_finished_by_the_next_pass() {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let now = Utc::now();
    push(&app, &gw, json!([record("held-1", "bob@contoso.com", now - Duration::days(29))])).await;
    let week = (now - Duration::days(29))
        .date_naive()
        .week(chrono::Weekday::Mon)
        .first_day()
        .format("%Y%m%d")
        .to_string();

    // A long hunt holds its snapshot of the mail store open: the detach cannot finish under its
    // lock timeout and is left pending; nothing else breaks.
    let mut reader = diesel_async::AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    reader.batch_execute("BEGIN; SELECT count(*) FROM emails;").await.expect("a long reader");
    let later = now + Duration::days(10);
    let report = parapet::mail::partitions::maintain(&app.state.pool, later, 300).await.expect("pass");
    assert!(report.failed.contains(&format!("emails_p{week}")), "{report:?}");
    assert_eq!(count_copies(&app, "held-1").await, 0, "a copy pending detach is out of the store's reach");

    reader.batch_execute("COMMIT").await.expect("the reader ends");
    let report = parapet::mail::partitions::maintain(&app.state.pool, later, 5_000).await.expect("pass");
    assert!(report.detached.contains(&format!("emails_p{week}")), "finalised: {report:?}");
    assert!(report.dropped.contains(&format!("emails_p{week}")), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!partitions(&app).await.iter().any(|p| p.ends_with(&week)));
}

#[tokio::test]
async fn list_values_keep_quotes_backslashes_braces_and_commas() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let now = Utc::now();
    let mut odd = record("odd-1", "bob@contoso.com", now - Duration::hours(1));
    let techs = json!(["Spoof \"DMARC\"", "back\\slash", "{braces},commas", "NULL", ""]);
    odd["detectionTechnologies"] = techs;
    odd["urls"] = json!(["https://evil.example/a,b{c}", "https://other.example/x?q=\"1\""]);
    let mut bare = record("bare-1", "bob@contoso.com", now - Duration::hours(1));
    for field in ["urls", "attachments", "threatTypes"] {
        bare.as_object_mut().map(|o| o.remove(field));
    }
    let r = push(&app, &gw, json!([odd, bare])).await;
    assert_eq!(r["accepted"], 2, "{r:#}");
    let q = "query($id: ID!) { email(id: $id) { detectionTechnologies urls urlDomains threatTypes attachments { name } } }";
    let id = |i: usize| json!({ "id": r["items"][i]["email"]["id"] });
    let e = app.ok(&reader, q, id(0)).await["email"].clone();
    assert_eq!(
        e["detectionTechnologies"],
        json!(["Spoof \"DMARC\"", "back\\slash", "{braces},commas", "NULL"])
    );
    assert_eq!(e["urlDomains"], json!(["evil.example", "other.example"]));
    assert_eq!(e["urls"].as_array().map(Vec::len), Some(2));
    assert!(e["urls"][0].as_str().is_some_and(|u| u.contains("a,b")), "{e:#}");
    let e = app.ok(&reader, q, id(1)).await["email"].clone();
    assert_eq!(e["urls"], json!([]));
    assert_eq!(e["urlDomains"], json!([]));
    assert_eq!(e["threatTypes"], json!([]));
    assert_eq!(e["attachments"], json!([]));
}

/// Making a week's partitions while other batches write, each round a new week: no batch fails. With
/// `CREATE TABLE … PARTITION OF` under a `SHARE ROW EXCLUSIVE` lock on the parents (raised to `ACCESS
/// EXCLUSIVE` to make the partition) this deadlocked with a batch between its locking read and its
/// insert, and the maker's error reached the client (benches/explorer.rs seeding a month in time order;
/// two runs in four here); `CREATE` + `ATTACH` takes nothing a batch waits for.
#[tokio::test]
async fn new_weeks_are_made_while_other_batches_write() {
    let app = TestApp::with_pool_size(16).await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let now = Utc::now();
    let busy = |round: usize, b: usize, n: usize| -> Value {
        (0..n)
            .map(|i| record(&format!("busy-{round}-{b}-{i}"), "bob@contoso.com", now - Duration::minutes(5)))
            .collect()
    };
    assert_eq!(push(&app, &gw, busy(0, 0, 1)).await["accepted"], 1);
    // Each round needs one new week (1 to 4 weeks ago) while six batches write to this week.
    for (round, size) in [(1usize, 1usize), (2, 300), (3, 800), (4, 1500)] {
        let week_ago = now - Duration::days(7 * round as i64) - Duration::hours(1);
        let new_week: Value =
            (0..size).map(|i| record(&format!("week-{round}-{i}"), "bob@contoso.com", week_ago)).collect();
        let mut batches: Vec<(Value, usize)> = (1..=6).map(|b| (busy(round, b, 400), 400)).collect();
        batches.insert(3, (new_week, size));
        let calls = batches.into_iter().map(|(records, n)| {
            let (app, gw) = (&app, gw.clone());
            async move { (app.gql(Some(&gw), PUSH, json!({ "e": records })).await, n) }
        });
        for (resp, n) in futures::future::join_all(calls).await {
            assert!(resp.get("errors").is_none(), "round {round}: {resp:#}");
            assert_eq!(resp["data"]["ingestEmails"]["accepted"], n, "round {round}");
        }
    }
}

/// A week's partition that filled after the server's connection had planned its statements (every
/// partition is made ahead of its week, empty) is still probed through its unique index, not scanned
/// once per record: counted by PostgreSQL's per-table statistics, not timed.
#[tokio::test]
async fn a_week_that_filled_after_the_plans_were_made_is_not_scanned_per_record() {
    use diesel::sql_types::{BigInt, Text, Timestamptz};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    #[derive(diesel::QueryableByName)]
    struct Stats {
        #[diesel(sql_type = BigInt)]
        seq_scan: i64,
        #[diesel(sql_type = BigInt)]
        inserted: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    // One connection: the plans it caches are the ones every batch uses.
    let app = TestApp::with_pool_size(1).await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let now = Utc::now();
    let old = now - Duration::days(21);
    let mut conn = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    parapet::db::queries::emails::ensure_partitions(&mut conn, old, now).await.expect("partitions");
    conn.batch_execute("VACUUM ANALYZE emails").await.expect("vacuum");
    let name = diesel::sql_query(
        "SELECT 'emails_p' || to_char(date_trunc('week', $1 AT TIME ZONE 'UTC'), 'YYYYMMDD') AS name",
    )
    .bind::<Timestamptz, _>(old)
    .get_result::<Name>(&mut conn)
    .await
    .expect("name")
    .name;
    // Full batches (for small ones PostgreSQL keeps planning each execution anyway).
    for round in 0..7 {
        let batch: Vec<Value> = (0..2000)
            .map(|i| record(&format!("now-{round}-{i}"), "bob@contoso.com", now - Duration::hours(1)))
            .collect();
        assert_eq!(push(&app, &gw, json!(batch)).await["accepted"], 2000);
    }
    // The old week fills behind the cached plans' back.
    conn.batch_execute(&format!(
        "INSERT INTO emails (tenant_id, id, received_at, network_message_id, recipient, recipient_domain, \
             direction, delivery_action, original_delivery_location, latest_delivery_location, source, \
             state_at, created_at, updated_at) \
         SELECT 'contoso', gen_random_uuid(), timestamptz '{}' + g * interval '1 millisecond', 'filler-' || g, \
             'bob@contoso.com', 'contoso.com', 'INBOUND', 'DELIVERED', 'INBOX', 'INBOX', 'MAIL_FLOW', now(), \
             now(), now() FROM generate_series(1, 20000) g",
        iso(old)
    ))
    .await
    .expect("fill");
    async fn stats(conn: &mut AsyncPgConnection, name: &str) -> Stats {
        diesel::sql_query(
            "SELECT seq_scan, n_tup_ins AS inserted FROM pg_stat_user_tables WHERE relname = $1",
        )
        .bind::<Text, _>(name)
        .get_result::<Stats>(conn)
        .await
        .expect("stats")
    }
    conn.batch_execute("SELECT pg_stat_force_next_flush()").await.expect("flush");
    let mut before = stats(&mut conn, &name).await;
    for _ in 0..100 {
        if before.inserted >= 20_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        before = stats(&mut conn, &name).await;
    }
    assert!(before.inserted >= 20_000, "the filler's statistics arrived: {}", before.inserted);
    let batch: Vec<Value> = (0..2000)
        .map(|i| record(&format!("old-{i}"), "bob@contoso.com", old + Duration::minutes(1)))
        .collect();
    assert_eq!(push(&app, &gw, json!(batch)).await["accepted"], 2000);
    // The server's backend reports its statistics once idle (within about 10 s).
    let mut after = stats(&mut conn, &name).await;
    for _ in 0..150 {
        if after.inserted >= before.inserted + 2000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        after = stats(&mut conn, &name).await;
    }
    assert!(after.inserted >= before.inserted + 2000, "statistics never arrived");
    // A few scans of the empty week by earlier batches may be reported late; one per record is the bug.
    assert!(
        after.seq_scan - before.seq_scan < 200,
        "{} sequential scans of {name} for a batch of 2,000",
        after.seq_scan - before.seq_scan
    );
}

const HUNT: &str =
    "query($f: EmailFilter!) { emails(filter: $f, first: 10) { totalCount nodes { id receivedAt } } }";

/// (totalCount, ids of the page) of a hunt.
async fn hunt(app: &TestApp, token: &str, filter: Value) -> (i64, Vec<String>) {
    let d = app.ok(token, HUNT, json!({ "f": filter })).await;
    let ids = d["emails"]["nodes"].as_array().into_iter().flatten();
    let ids = ids.filter_map(|n| n["id"].as_str().map(str::to_string)).collect();
    (d["emails"]["totalCount"].as_i64().unwrap_or(-1), ids)
}

#[tokio::test]
async fn hunts_by_key_follow_every_change_of_a_copy() {
    let app = TestApp::new().await;
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let received = Utc::now() - Duration::hours(3);
    let mut first = record("keys-1", "bob@contoso.com", received);
    first["detectionTechnologies"] = json!(["URL detonation"]);
    let id = push(&app, &gw, json!([first.clone()])).await["items"][0]["email"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let by_tech = |t: &str| json!({ "detectionTechnology": t });
    assert_eq!(hunt(&app, &reader, by_tech("url detonation")).await, (1, vec![id.clone()]));

    // A re-send that changes the copy's values changes its keys: the new value finds it (alone, and
    // with a condition on the copy), the old one no longer does.
    let mut zap = first.clone();
    zap["detectionTechnologies"] = json!(["ZAP"]);
    zap["urls"] = json!(["https://other.example/x"]);
    zap["latestDeliveryLocation"] = json!("QUARANTINE");
    zap["eventAt"] = json!(iso(received + Duration::hours(1)));
    assert_eq!(push(&app, &gw, json!([zap])).await["items"][0]["status"], "UPDATED");
    assert_eq!(hunt(&app, &reader, by_tech("ZAP")).await, (1, vec![id.clone()]));
    let zap_quarantined = json!({ "detectionTechnology": "ZAP", "latestDeliveryLocation": ["QUARANTINE"] });
    assert_eq!(hunt(&app, &reader, zap_quarantined).await, (1, vec![id.clone()]));
    assert_eq!(hunt(&app, &reader, by_tech("URL detonation")).await, (0, vec![]));
    assert_eq!(hunt(&app, &reader, json!({ "url": "evil.example" })).await, (0, vec![]));
    assert_eq!(hunt(&app, &reader, json!({ "url": "other.example" })).await, (1, vec![id.clone()]));
    // Two keys: the page and its count agree.
    let two = json!({ "url": "other.example", "recipient": "bob@contoso.com" });
    assert_eq!(hunt(&app, &reader, two).await, (1, vec![id.clone()]));

    // A copy the tenant block list marks is found by the detection technology the list gave it.
    let entry = json!({ "i": { "kind": "SENDER", "value": "blocked.example", "action": "BLOCK" } });
    app.ok(&admin, CREATE_ENTRY, entry).await;
    let mut blocked = record("keys-2", "carol@contoso.com", received);
    blocked["headerFrom"] = json!("boss@blocked.example");
    let blocked_id = push(&app, &gw, json!([blocked])).await["items"][0]["email"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let by_list = by_tech("Tenant Allow/Block List sender block");
    assert_eq!(hunt(&app, &reader, by_list).await, (1, vec![blocked_id]));

    // A copy learned from an alert, then adopted by the gateway's record under its real receive time:
    // found in the day it was received, once.
    ingest_alert(&app, &gw, alert_naming("keys-a", "keys-3", "dave@contoso.com", None)).await;
    let real = Utc::now() - Duration::days(2);
    let r = push(&app, &gw, json!([record("keys-3", "dave@contoso.com", real)])).await;
    assert_eq!(r["items"][0]["status"], "UPDATED", "{r:#}");
    let adopted = r["items"][0]["email"]["id"].as_str().unwrap_or_default().to_string();
    let that_day =
        json!({ "recipient": "dave@contoso.com", "receivedBefore": iso(real + Duration::hours(1)) });
    assert_eq!(hunt(&app, &reader, that_day).await, (1, vec![adopted.clone()]));
    let since = json!({ "recipient": "dave@contoso.com", "receivedAfter": iso(real + Duration::hours(1)) });
    assert_eq!(hunt(&app, &reader, since).await, (0, vec![]));

    // Another tenant's copies with the same values count nothing here.
    let gw_b = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    push(&app, &gw_b, json!([record("keys-b", "bob@contoso.com", received)])).await;
    let r = hunt(&app, &reader, json!({ "recipient": "bob@contoso.com" })).await;
    assert_eq!(r, (1, vec![id]), "only contoso's copy");
}
