//! Remediation actions end to end (issue 11), through the GraphQL API with real tokens on a real
//! database: who may propose, approve, reject and cancel; the four-eyes rule both ways; decisions as
//! exclusive conditional updates (CONFLICT, concurrent approvals that move each copy once); rejection,
//! cancellation and expiry; re-evaluation to ALREADY_REMEDIATED as copies move; release from
//! quarantine; the preview's exclusions; outcomes of copies that moved or vanished before the run;
//! tenant isolation; the `actionChanged` subscription with replay; the incident's pending count,
//! `incidentChanged`, activity log and evidence remediation status; the action center's queries; and
//! input validation.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::alerts::{alert_with, INGEST};
use common::*;
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const TENANT: &str = "contoso";

const PUSH: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected \
                    items { index status error email { id } } } }";

const ACTION: &str = "id type source status incidentId incident { id } proposedBy proposedByName comment \
    fourEyes decidedBy decidedAt decisionComment \
    preview { selected targetCount mailboxCount byLocation { location count } alreadyInDestination \
              notRemediable { location count } excludedCount notFound } \
    targetCount atDestinationCount successCount failedCount alreadyInDestinationCount notFoundCount \
    openTargetCount \
    targets(first: 100) { totalCount nodes { emailId email { id } recipient locationAtProposal \
              currentLocation atDestination outcome fromLocation toLocation executedAt } } \
    expiresAt createdAt updatedAt startedAt completedAt";

const PREVIEW: &str = "selected targetCount mailboxCount byLocation { location count } \
    alreadyInDestination notRemediable { location count } excludedCount notFound";

const EMAIL: &str = "query($id: ID!) { email(id: $id) { id latestDeliveryLocation movedAt \
    timeline { kind at fromLocation toLocation actor reason actionId } actions(first: 100) { id status } } }";

const ACTION_SUB: &str =
    "subscription($f: ActionChangedFilter, $after: String) { actionChanged(filter: $f, after: $after) { \
    cursor status changedFields actor at action { id status incidentId } } }";

const INCIDENT_SUB: &str = "subscription($f: IncidentChangedFilter) { incidentChanged(filter: $f) { \
    cursor changedFields actor incident { id pendingActionCount } } }";

const SETTINGS: &str =
    "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { fourEyes } }";

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// Everyone a test needs in one tenant.
struct Team {
    gw: String,
    reader: String,
    analyst: String,
    analyst2: String,
    responder: String,
    responder2: String,
    admin: String,
}

fn team(app: &TestApp, tenant: &str) -> Team {
    Team {
        gw: app.token(tenant, &format!("gw@{tenant}.com"), &[Role::Ingestor]),
        reader: app.token(tenant, &format!("rita@{tenant}.com"), &[Role::Reader]),
        analyst: app.token(tenant, &format!("ann@{tenant}.com"), &[Role::Analyst]),
        analyst2: app.token(tenant, &format!("al@{tenant}.com"), &[Role::Analyst]),
        responder: app.token(tenant, &format!("rob@{tenant}.com"), &[Role::Responder]),
        responder2: app.token(tenant, &format!("ray@{tenant}.com"), &[Role::Responder]),
        admin: app.token(tenant, &format!("ada@{tenant}.com"), &[Role::Admin]),
    }
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A mail-flow record of one copy, received three hours ago (so a test's copies share a receive time
/// and a record can be re-sent to move its copy). `location`: where it is now.
fn rec(nmid: &str, recipient: &str, location: &str) -> Value {
    let received = Utc::now() - Duration::hours(3);
    let received = received - Duration::nanoseconds(i64::from(received.timestamp_subsec_nanos()));
    let mut r = json!({
        "networkMessageId": nmid,
        "recipient": recipient,
        "receivedAt": iso(received),
        "envelopeSender": "bounce@evil.example",
        "headerFrom": "billing@evil.example",
        "subject": "Invoice 4471",
        "threatTypes": ["PHISH"],
        "deliveryAction": "DELIVERED"
    });
    match location {
        "INBOX" => {}
        "JUNK" => r["deliveryAction"] = json!("DELIVERED_TO_JUNK"),
        "QUARANTINE" => r["deliveryAction"] = json!("BLOCKED"),
        other => {
            r["latestDeliveryLocation"] = json!(other);
            r["eventAt"] = json!(iso(received + Duration::minutes(1)));
        }
    }
    r
}

/// The same record reporting that its copy is now at `location` (a ZAP-like update; its time is the
/// server's now, later than anything before).
fn moved(r: &Value, location: &str) -> Value {
    let mut m = r.clone();
    m["latestDeliveryLocation"] = json!(location);
    if let Some(o) = m.as_object_mut() {
        o.remove("eventAt");
    }
    m
}

/// Pushes records; returns the copies' ids in order.
async fn push(app: &TestApp, gw: &str, records: &[Value]) -> Vec<String> {
    let r = app.ok(gw, PUSH, json!({ "e": records })).await["ingestEmails"].clone();
    assert_eq!(r["rejected"], 0, "{r:#}");
    r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["email"]["id"].as_str().expect("copy id").to_string())
        .collect()
}

/// Pushes one record per (nmid, recipient, location); returns ids and the records (to re-send).
async fn copies(app: &TestApp, gw: &str, specs: &[(&str, &str, &str)]) -> (Vec<String>, Vec<Value>) {
    let records: Vec<Value> = specs.iter().map(|(n, r, l)| rec(n, r, l)).collect();
    (push(app, gw, &records).await, records)
}

fn q_propose() -> String {
    format!("mutation($i: RemediateEmailsInput!) {{ remediateEmails(input: $i) {{ {ACTION} }} }}")
}

/// Proposes; the call must succeed.
async fn propose(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, &q_propose(), json!({ "i": input })).await["remediateEmails"].clone()
}

/// Proposes; returns the whole response.
async fn propose_resp(app: &TestApp, token: Option<&str>, input: Value) -> Value {
    app.gql(token, &q_propose(), json!({ "i": input })).await
}

fn ids_input(ids: &[String], action: &str) -> Value {
    json!({ "emailIds": ids, "action": action })
}

fn q_decide(verb: &str) -> String {
    format!("mutation($id: ID!, $c: String) {{ {verb}Action(id: $id, comment: $c) {{ {ACTION} }} }}")
}

/// `approve`, `reject` or `cancel`; returns the whole response.
async fn decide_resp(app: &TestApp, token: &str, verb: &str, id: &str, comment: Option<&str>) -> Value {
    app.gql(Some(token), &q_decide(verb), json!({ "id": id, "c": comment })).await
}

/// A decision that must succeed; returns the action.
async fn decide(app: &TestApp, token: &str, verb: &str, id: &str, comment: Option<&str>) -> Value {
    let r = decide_resp(app, token, verb, id, comment).await;
    assert!(r.get("errors").is_none(), "{verb} failed: {r:#}");
    r["data"][format!("{verb}Action")].clone()
}

/// A decision that must fail; returns its code.
async fn decide_code(app: &TestApp, token: &str, verb: &str, id: &str) -> String {
    let r = decide_resp(app, token, verb, id, None).await;
    assert!(r["data"].is_null() || r["data"][format!("{verb}Action")].is_null(), "{r:#}");
    r["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("a coded error: {r:#}"))
        .to_string()
}

fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error code>")
}

/// The action as the caller sees it (null when it cannot).
async fn action(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(token, &format!("query($id: ID!) {{ action(id: $id) {{ {ACTION} }} }}"), json!({ "id": id })).await
        ["action"]
        .clone()
}

/// Waits (at most 10 s) until the action is in `status`; returns it.
async fn wait_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = action(app, token, id).await;
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("action {id} did not reach {status} within 10 s: {last:#}");
}

async fn email(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(token, EMAIL, json!({ "id": id })).await["email"].clone()
}

async fn location(app: &TestApp, token: &str, id: &str) -> String {
    email(app, token, id).await["latestDeliveryLocation"].as_str().unwrap_or("<gone>").to_string()
}

/// Timeline events of a copy of this kind.
async fn events_of(app: &TestApp, token: &str, id: &str, kind: &str) -> Vec<Value> {
    let e = email(app, token, id).await;
    e["timeline"].as_array().into_iter().flatten().filter(|t| t["kind"] == kind).cloned().collect()
}

/// Ingests one alert whose e-mail evidence names each (nmid, recipient); returns (alert, incident).
async fn incident_naming(
    app: &TestApp,
    gw: &str,
    provider_id: &str,
    named: &[(&str, &str)],
) -> (String, String) {
    let evidence: Vec<Value> = named
        .iter()
        .map(|(n, r)| {
            json!({ "verdict": "MALICIOUS", "email": { "networkMessageId": n, "recipient": r,
                    "threatTypes": ["PHISH"] } })
        })
        .collect();
    let alert = alert_with(
        provider_id,
        "Email messages containing malicious URL removed after delivery",
        "HIGH",
        json!(evidence),
    );
    let r = app.ok(gw, INGEST, json!({ "alerts": [alert] })).await;
    let item = r["ingestAlerts"]["items"][0].clone();
    let alert_id = item["alert"]["id"].as_str().unwrap_or_else(|| panic!("alert id: {r:#}")).to_string();
    let incident_id = item["alert"]["incident"]["id"].as_str().expect("incident id").to_string();
    (alert_id, incident_id)
}

/// Recipient → remediation status of the alert's e-mail evidence.
async fn alert_evidence(app: &TestApp, token: &str, alert: &str) -> BTreeMap<String, String> {
    let q = "query($id: ID!) { alert(id: $id) { evidence { remediationStatus ... on EmailEvidence { recipient } } } }";
    let d = app.ok(token, q, json!({ "id": alert })).await;
    d["alert"]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|e| {
            Some((e["recipient"].as_str()?.to_string(), e["remediationStatus"].as_str()?.to_string()))
        })
        .collect()
}

/// Recipient → remediation status of the incident's (merged) e-mail evidence.
async fn incident_evidence(app: &TestApp, token: &str, incident: &str) -> BTreeMap<String, String> {
    let q = "query($id: ID!) { incident(id: $id) { evidence(kind: [EMAIL], first: 100) { nodes { remediationStatus \
             ... on EmailEvidence { recipient } } } } }";
    let d = app.ok(token, q, json!({ "id": incident })).await;
    d["incident"]["evidence"]["nodes"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|e| {
            Some((e["recipient"].as_str()?.to_string(), e["remediationStatus"].as_str()?.to_string()))
        })
        .collect()
}

fn all(m: &BTreeMap<String, String>, status: &str) -> bool {
    !m.is_empty() && m.values().all(|s| s == status)
}

async fn pending_count(app: &TestApp, token: &str, incident: &str) -> i64 {
    let q = "query($id: ID!) { incident(id: $id) { pendingActionCount } }";
    app.ok(token, q, json!({ "id": incident })).await["incident"]["pendingActionCount"]
        .as_i64()
        .expect("count")
}

/// The incident's activity-log entries of kind ACTION, newest first.
async fn action_activity(app: &TestApp, token: &str, incident: &str) -> Vec<Value> {
    let q = "query($id: ID!) { incident(id: $id) { activity(first: 100) { nodes { kind actor field before after message } } } }";
    let d = app.ok(token, q, json!({ "id": incident })).await;
    d["incident"]["activity"]["nodes"]
        .as_array()
        .expect("activity")
        .iter()
        .filter(|a| a["kind"] == "ACTION")
        .cloned()
        .collect()
}

async fn sql(app: &TestApp, q: &str) -> usize {
    use diesel_async::RunQueryDsl;
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::sql_query(q).execute(&mut conn).await.expect("sql")
}

async fn count_sql(app: &TestApp, q: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::sql_query(q).get_result::<N>(&mut conn).await.expect("count").n
}

/// Fails when an item arrives within 1.5 s.
async fn nothing(s: &mut (impl futures::Stream<Item = Value> + Unpin)) {
    if let Ok(Some(v)) = tokio::time::timeout(std::time::Duration::from_millis(1500), s.next()).await {
        panic!("unexpected event: {v:#}");
    }
}

fn statuses(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(|n| n["status"].as_str().unwrap_or_default().to_string()).collect()
}

fn node_ids(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(|n| n["id"].as_str().unwrap_or_default().to_string()).collect()
}

fn loc_counts(v: &Value) -> BTreeMap<String, i64> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|l| (l["location"].as_str().unwrap_or_default().to_string(), l["count"].as_i64().unwrap_or(-1)))
        .collect()
}

fn target_by_email<'a>(a: &'a Value, email_id: &str) -> &'a Value {
    a["targets"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|t| t["emailId"] == email_id))
        .unwrap_or_else(|| panic!("no target {email_id} in {a:#}"))
}

fn id_of(a: &Value) -> String {
    a["id"].as_str().unwrap_or_else(|| panic!("an action id: {a:#}")).to_string()
}

// ---------------------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_role_is_allowed_or_denied_each_operation() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("r-1", "bob@contoso.com", "INBOX"), ("r-2", "eve@contoso.com", "INBOX")])
            .await;
    let input = ids_input(&ids, "SOFT_DELETE");

    // Proposing: analysts and above; readers and ingestors are forbidden, nobody without a token.
    for tok in [&t.reader, &t.gw] {
        assert_eq!(code(&propose_resp(&app, Some(tok), input.clone()).await), "FORBIDDEN");
        let r = app
            .gql(
                Some(tok),
                &format!(
                    "query($i: RemediateEmailsInput!) {{ previewRemediation(input: $i) {{ {PREVIEW} }} }}"
                ),
                json!({ "i": input }),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r:#}");
    }
    assert_eq!(code(&propose_resp(&app, None, input.clone()).await), "UNAUTHENTICATED");
    let total = "{ actions { totalCount } }";
    assert_eq!(app.ok(&t.reader, total, json!({})).await["actions"]["totalCount"], 0, "nothing was proposed");

    let by_analyst = propose(&app, &t.analyst, input.clone()).await;
    assert_eq!(by_analyst["status"], "PENDING");
    assert_eq!(by_analyst["proposedBy"], "ann@contoso.com");
    assert_eq!(by_analyst["proposedByName"], "ann");
    let a = id_of(&by_analyst);

    // Readers read actions, ingestors don't.
    assert_eq!(action(&app, &t.reader, &a).await["id"], a.as_str());
    assert_eq!(app.ok(&t.reader, total, json!({})).await["actions"]["totalCount"], 1);
    let r = app.gql(Some(&t.gw), "query($id: ID!) { action(id: $id) { id } }", json!({ "id": a })).await;
    assert_eq!(code(&r), "FORBIDDEN");
    assert_eq!(app.err_code(Some(&t.gw), total, json!({})).await, "FORBIDDEN");
    assert_eq!(app.err_code(None, total, json!({})).await, "UNAUTHENTICATED");

    // Approve and reject: responders and above. Cancel: the proposer (analyst+) or an admin.
    for tok in [&t.reader, &t.gw, &t.analyst, &t.analyst2] {
        assert_eq!(decide_code(&app, tok, "approve", &a).await, "FORBIDDEN");
        assert_eq!(decide_code(&app, tok, "reject", &a).await, "FORBIDDEN");
    }
    for tok in [&t.reader, &t.gw, &t.analyst2, &t.responder, &t.responder2] {
        assert_eq!(decide_code(&app, tok, "cancel", &a).await, "FORBIDDEN");
    }
    let r = app.gql(None, &q_decide("approve"), json!({ "id": a })).await;
    assert_eq!(code(&r), "UNAUTHENTICATED");
    let still = action(&app, &t.reader, &a).await;
    assert_eq!(still["status"], "PENDING", "denied decisions change nothing");
    assert_eq!(still["decidedBy"], Value::Null);

    // A responder approves the analyst's action.
    let approved = decide(&app, &t.responder, "approve", &a, Some("go")).await;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["decidedBy"], "rob@contoso.com");
    assert_eq!(approved["decisionComment"], "go");
    assert!(approved["decidedAt"].is_string());

    // A responder rejects another; the proposer cancels a third; an admin cancels someone else's and
    // approves a fourth; a responder may propose too.
    let b = id_of(&propose(&app, &t.analyst, input.clone()).await);
    assert_eq!(decide(&app, &t.responder2, "reject", &b, None).await["status"], "REJECTED");
    let c = id_of(&propose(&app, &t.analyst, input.clone()).await);
    assert_eq!(decide(&app, &t.analyst, "cancel", &c, None).await["status"], "CANCELLED");
    let d = id_of(&propose(&app, &t.analyst2, input.clone()).await);
    let cancelled = decide(&app, &t.admin, "cancel", &d, Some("duplicate")).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["decidedBy"], "ada@contoso.com");
    let e = id_of(&propose(&app, &t.responder, input.clone()).await);
    assert_eq!(decide(&app, &t.admin, "approve", &e, None).await["status"], "APPROVED");
    let f = propose(&app, &t.admin, input.clone()).await;
    assert_eq!(f["status"], "PENDING", "an admin's proposal waits for someone else too");
    // The proposer (a responder) may cancel their own.
    let g = id_of(&propose(&app, &t.responder2, input).await);
    assert_eq!(decide(&app, &t.responder2, "cancel", &g, None).await["status"], "CANCELLED");
}

// ---------------------------------------------------------------------------------------------------
// Four-eyes
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn four_eyes_is_on_by_default_and_forbids_approving_ones_own_action() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let s = app.ok(&t.reader, "{ tenantSettings { fourEyes } }", json!({})).await;
    assert_eq!(s["tenantSettings"]["fourEyes"], true);
    let (ids, _) = copies(&app, &t.gw, &[("fe-1", "bob@contoso.com", "INBOX")]).await;

    let mine = propose(&app, &t.responder, ids_input(&ids, "MOVE_TO_JUNK")).await;
    assert_eq!(mine["status"], "PENDING", "a responder's own proposal waits under four-eyes");
    assert_eq!(mine["fourEyes"], true);
    assert_eq!(mine["decidedBy"], Value::Null);
    let id = id_of(&mine);
    assert_eq!(decide_code(&app, &t.responder, "approve", &id).await, "FORBIDDEN");
    // An admin proposer is held to it too.
    let admins = id_of(&propose(&app, &t.admin, ids_input(&ids, "MOVE_TO_JUNK")).await);
    assert_eq!(decide_code(&app, &t.admin, "approve", &admins).await, "FORBIDDEN");
    // Nothing ran.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(action(&app, &t.reader, &id).await["status"], "PENDING");
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "INBOX");
    // But a proposer may reject their own (the rule is about approving).
    assert_eq!(decide(&app, &t.admin, "reject", &admins, None).await["status"], "REJECTED");

    // Another responder approves, and it runs.
    let ok = decide(&app, &t.responder2, "approve", &id, None).await;
    assert_eq!(ok["decidedBy"], "ray@contoso.com");
    let done = wait_status(&app, &t.reader, &id, "COMPLETED").await;
    assert_eq!(done["successCount"], 1);
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "JUNK");
}

#[tokio::test]
async fn with_four_eyes_off_a_responders_own_proposal_runs_at_once() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) = copies(
        &app,
        &t.gw,
        &[
            ("off-1", "bob@contoso.com", "INBOX"),
            ("off-2", "eve@contoso.com", "INBOX"),
            ("off-3", "amy@contoso.com", "INBOX"),
        ],
    )
    .await;

    // Proposed while the rule is on: stays under it even after the rule is turned off.
    let before = id_of(&propose(&app, &t.responder, ids_input(&ids[2..3], "MOVE_TO_JUNK")).await);

    // Only admins change the setting.
    for tok in [&t.reader, &t.analyst, &t.responder] {
        assert_eq!(
            app.err_code(Some(tok), SETTINGS, json!({ "i": { "fourEyes": false } })).await,
            "FORBIDDEN"
        );
    }
    let s = app.ok(&t.admin, SETTINGS, json!({ "i": { "fourEyes": false } })).await;
    assert_eq!(s["updateTenantSettings"]["fourEyes"], false);

    let own = propose(&app, &t.responder, ids_input(&ids[0..1], "SOFT_DELETE")).await;
    assert_eq!(own["status"], "APPROVED", "{own:#}");
    assert_eq!(own["fourEyes"], false);
    assert_eq!(own["decidedBy"], "rob@contoso.com");
    assert!(own["decidedAt"].is_string());
    let own_id = id_of(&own);
    let done = wait_status(&app, &t.reader, &own_id, "COMPLETED").await;
    assert_eq!(done["successCount"], 1);
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "SOFT_DELETED");

    // The action proposed under the rule still needs a second person.
    assert_eq!(decide_code(&app, &t.responder, "approve", &before).await, "FORBIDDEN");

    // An analyst cannot approve, so their proposal waits; the same person holding the responder role
    // later may approve it (the rule is off now and was off then).
    let by_analyst = propose(&app, &t.analyst, ids_input(&ids[1..2], "SOFT_DELETE")).await;
    assert_eq!(by_analyst["status"], "PENDING");
    assert_eq!(by_analyst["fourEyes"], false);
    let analyst_id = id_of(&by_analyst);
    let promoted = app.token(TENANT, "ann@contoso.com", &[Role::Responder]);
    // ...but not once the rule is back on ("a decision needs a second person if it was on then or is now").
    app.ok(&t.admin, SETTINGS, json!({ "i": { "fourEyes": true } })).await;
    assert_eq!(decide_code(&app, &promoted, "approve", &analyst_id).await, "FORBIDDEN");
    app.ok(&t.admin, SETTINGS, json!({ "i": { "fourEyes": false } })).await;
    let approved = decide(&app, &promoted, "approve", &analyst_id, None).await;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["decidedBy"], "ann@contoso.com");
    wait_status(&app, &t.reader, &analyst_id, "COMPLETED").await;
    assert_eq!(location(&app, &t.reader, &ids[1]).await, "SOFT_DELETED");
}

// ---------------------------------------------------------------------------------------------------
// Decisions are exclusive
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_decision_on_a_decided_action_is_a_conflict() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(&app, &t.gw, &[("c-1", "bob@contoso.com", "INBOX")]).await;
    let a = id_of(&propose(&app, &t.analyst, ids_input(&ids, "SOFT_DELETE")).await);
    decide(&app, &t.responder, "approve", &a, None).await;
    // No runner: it stays APPROVED, and nothing else applies.
    assert_eq!(decide_code(&app, &t.responder2, "approve", &a).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.responder, "approve", &a).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.responder2, "reject", &a).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.analyst, "cancel", &a).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.admin, "cancel", &a).await, "CONFLICT");
    let now = action(&app, &t.reader, &a).await;
    assert_eq!(now["status"], "APPROVED");
    assert_eq!(now["decidedBy"], "rob@contoso.com", "the first decision stands");

    // A rejected one can be neither approved nor rejected again.
    let b = id_of(&propose(&app, &t.analyst, ids_input(&ids, "MOVE_TO_JUNK")).await);
    decide(&app, &t.responder, "reject", &b, None).await;
    assert_eq!(decide_code(&app, &t.responder2, "approve", &b).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.responder2, "reject", &b).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.analyst, "cancel", &b).await, "CONFLICT");

    // Nor a cancelled one.
    let c = id_of(&propose(&app, &t.analyst, ids_input(&ids, "MOVE_TO_JUNK")).await);
    decide(&app, &t.analyst, "cancel", &c, None).await;
    assert_eq!(decide_code(&app, &t.responder, "approve", &c).await, "CONFLICT");
    assert_eq!(action(&app, &t.reader, &c).await["status"], "CANCELLED");

    // After it ran, too.
    let _jobs = app.start_jobs();
    wait_status(&app, &t.reader, &a, "COMPLETED").await;
    assert_eq!(decide_code(&app, &t.responder2, "approve", &a).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.responder2, "reject", &a).await, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approvals_apply_once_and_move_each_copy_once() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let mut rounds = vec![];
    for round in 0..5 {
        let specs: Vec<(String, String)> =
            (0..3).map(|i| (format!("race-{round}-{i}"), format!("u{i}@contoso.com"))).collect();
        let specs: Vec<(&str, &str, &str)> =
            specs.iter().map(|(n, r)| (n.as_str(), r.as_str(), "INBOX")).collect();
        let (ids, _) = copies(&app, &t.gw, &specs).await;
        let a = id_of(&propose(&app, &t.analyst, ids_input(&ids, "SOFT_DELETE")).await);
        let q = q_decide("approve");
        let (x, y) = tokio::join!(
            app.gql(Some(&t.responder), &q, json!({ "id": a })),
            app.gql(Some(&t.responder2), &q, json!({ "id": a })),
        );
        let ok: Vec<&Value> = [&x, &y].into_iter().filter(|r| r.get("errors").is_none()).collect();
        let failed: Vec<&Value> = [&x, &y].into_iter().filter(|r| r.get("errors").is_some()).collect();
        assert_eq!(ok.len(), 1, "exactly one approval applies: {x:#} {y:#}");
        assert_eq!(failed.len(), 1);
        assert_eq!(code(failed[0]), "CONFLICT", "{:#}", failed[0]);
        let winner = ok[0]["data"]["approveAction"]["decidedBy"].as_str().expect("decidedBy").to_string();
        rounds.push((a, ids, winner));
    }
    // Approve, reject and cancel at once: exactly one applies, the others are CONFLICT, and the action
    // ends as the one that applied says.
    for round in 0..5 {
        let (ids, _) = copies(&app, &t.gw, &[(&format!("race3-{round}"), "bob@contoso.com", "INBOX")]).await;
        let a = id_of(&propose(&app, &t.analyst, ids_input(&ids, "MOVE_TO_JUNK")).await);
        let (qa, qr, qc) = (q_decide("approve"), q_decide("reject"), q_decide("cancel"));
        let (x, y, z) = tokio::join!(
            app.gql(Some(&t.responder), &qa, json!({ "id": a })),
            app.gql(Some(&t.responder2), &qr, json!({ "id": a })),
            app.gql(Some(&t.analyst), &qc, json!({ "id": a })),
        );
        let all3 = [("APPROVED", &x), ("REJECTED", &y), ("CANCELLED", &z)];
        let ok: Vec<&str> = all3.iter().filter(|(_, r)| r.get("errors").is_none()).map(|(s, _)| *s).collect();
        assert_eq!(ok.len(), 1, "exactly one decision applies: {x:#} {y:#} {z:#}");
        for (_, r) in all3.iter().filter(|(_, r)| r.get("errors").is_some()) {
            assert_eq!(code(r), "CONFLICT", "{r:#}");
        }
        let want = if ok[0] == "APPROVED" { "COMPLETED" } else { ok[0] };
        wait_status(&app, &t.reader, &a, want).await;
        let want_location = if ok[0] == "APPROVED" { "JUNK" } else { "INBOX" };
        assert_eq!(location(&app, &t.reader, &ids[0]).await, want_location);
    }
    for (a, ids, winner) in &rounds {
        let done = wait_status(&app, &t.reader, a, "COMPLETED").await;
        assert_eq!(done["decidedBy"], winner.as_str(), "the stored decision is the one that applied");
        assert_eq!(done["successCount"], 3, "{done:#}");
        assert_eq!(done["alreadyInDestinationCount"], 0, "no copy was handled twice: {done:#}");
        assert_eq!(done["failedCount"], 0);
        let jobs = count_sql(
            &app,
            &format!("SELECT count(*) AS n FROM jobs WHERE kind = 'ACTION' AND dedupe_key = '{a}'"),
        )
        .await;
        assert_eq!(jobs, 1, "one job for the action");
        for id in ids {
            let moves = events_of(&app, &t.reader, id, "MANUAL_REMEDIATION").await;
            assert_eq!(moves.len(), 1, "copy {id} moved once: {moves:#?}");
            assert_eq!(moves[0]["actionId"], a.as_str());
            assert_eq!(moves[0]["fromLocation"], "INBOX");
            assert_eq!(moves[0]["toLocation"], "SOFT_DELETED");
            assert_eq!(moves[0]["actor"], winner.as_str());
            assert_eq!(location(&app, &t.reader, id).await, "SOFT_DELETED");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Reject, cancel, expiry
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rejected_action_never_runs_and_its_evidence_is_declined() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) =
        copies(&app, &t.gw, &[("rej-1", "bob@contoso.com", "INBOX"), ("rej-2", "eve@contoso.com", "INBOX")])
            .await;
    let (alert, incident) = incident_naming(
        &app,
        &t.gw,
        "rej-alert",
        &[("rej-1", "bob@contoso.com"), ("REJ-2", "Eve@contoso.com")],
    )
    .await;
    assert!(all(&alert_evidence(&app, &t.reader, &alert).await, "NONE"));
    let a = propose(&app, &t.analyst, json!({ "emailIds": ids, "action": "HARD_DELETE", "incidentId": incident, "comment": "  phish campaign  " })).await;
    assert_eq!(a["comment"], "phish campaign", "comments are trimmed");
    let a = id_of(&a);
    assert!(all(&alert_evidence(&app, &t.reader, &alert).await, "PENDING_APPROVAL"));
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 1);

    let r = decide(&app, &t.responder, "reject", &a, Some("false positive")).await;
    assert_eq!(r["status"], "REJECTED");
    assert_eq!(r["decidedBy"], "rob@contoso.com");
    assert_eq!(r["decisionComment"], "false positive");
    assert!(r["completedAt"].is_string(), "a rejection ends it: {r:#}");
    assert_eq!(r["openTargetCount"], 0);
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 0);
    let ev = alert_evidence(&app, &t.reader, &alert).await;
    assert!(all(&ev, "DECLINED"), "{ev:?}");
    let ev = incident_evidence(&app, &t.reader, &incident).await;
    assert!(all(&ev, "DECLINED"), "{ev:?}");

    // The runner has nothing to do with it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = action(&app, &t.reader, &a).await;
    assert_eq!(r["status"], "REJECTED");
    assert_eq!(r["startedAt"], Value::Null);
    assert!(r["targets"]["nodes"].as_array().expect("targets").iter().all(|n| n["outcome"].is_null()));
    for id in &ids {
        assert_eq!(location(&app, &t.reader, id).await, "INBOX");
        assert!(events_of(&app, &t.reader, id, "MANUAL_REMEDIATION").await.is_empty());
    }
    let jobs = count_sql(&app, &format!("SELECT count(*) AS n FROM jobs WHERE dedupe_key = '{a}'")).await;
    assert_eq!(jobs, 0, "no job was queued");
}

#[tokio::test]
async fn only_the_proposer_or_an_admin_cancels() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) = copies(&app, &t.gw, &[("can-1", "bob@contoso.com", "INBOX")]).await;
    let (alert, incident) = incident_naming(&app, &t.gw, "can-alert", &[("can-1", "bob@contoso.com")]).await;
    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": incident }),
        )
        .await,
    );
    // Not another analyst, not a responder (who could reject it instead).
    assert_eq!(decide_code(&app, &t.analyst2, "cancel", &a).await, "FORBIDDEN");
    assert_eq!(decide_code(&app, &t.responder, "cancel", &a).await, "FORBIDDEN");
    assert_eq!(action(&app, &t.reader, &a).await["status"], "PENDING");
    let c = decide(&app, &t.analyst, "cancel", &a, Some("wrong copies")).await;
    assert_eq!(c["status"], "CANCELLED");
    assert_eq!(c["decidedBy"], "ann@contoso.com");
    assert_eq!(c["decisionComment"], "wrong copies");
    assert!(c["completedAt"].is_string());
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 0);
    let ev = alert_evidence(&app, &t.reader, &alert).await;
    assert!(
        !ev.values().any(|s| s == "PENDING_APPROVAL"),
        "a cancelled action no longer holds the evidence: {ev:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "INBOX");
    assert_eq!(decide_code(&app, &t.responder, "approve", &a).await, "CONFLICT");
}

#[tokio::test]
async fn expired_actions_end_and_cannot_be_approved() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("exp-1", "bob@contoso.com", "INBOX"), ("exp-2", "eve@contoso.com", "INBOX")])
            .await;
    let (alert, incident) = incident_naming(&app, &t.gw, "exp-alert", &[("exp-1", "bob@contoso.com")]).await;
    let due = propose(
        &app,
        &t.analyst,
        json!({ "emailIds": [ids[0]], "action": "SOFT_DELETE", "incidentId": incident }),
    )
    .await;
    let created = ts(&due["createdAt"]);
    let expires = ts(&due["expiresAt"]);
    assert_eq!(expires - created, Duration::days(7), "a pending action waits 7 days");
    let due = id_of(&due);
    let fresh = id_of(&propose(&app, &t.analyst, ids_input(&ids[1..2], "SOFT_DELETE")).await);
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 1);

    // Nothing is due yet.
    assert_eq!(parapet::actions::expiry::sweep(&app.state.pool, Utc::now()).await.expect("sweep"), 0);
    assert_eq!(
        sql(&app, &format!("UPDATE actions SET expires_at = now() - interval '1 minute' WHERE id = '{due}'"))
            .await,
        1
    );
    let n = parapet::actions::expiry::sweep(&app.state.pool, Utc::now()).await.expect("sweep");
    assert_eq!(n, 1);
    let e = action(&app, &t.reader, &due).await;
    assert_eq!(e["status"], "EXPIRED");
    assert!(e["completedAt"].is_string());
    assert_eq!(e["decidedBy"], Value::Null);
    assert_eq!(e["openTargetCount"], 0);
    assert_eq!(action(&app, &t.reader, &fresh).await["status"], "PENDING", "only due actions expire");
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 0);
    let ev = alert_evidence(&app, &t.reader, &alert).await;
    assert!(!ev.values().any(|s| s == "PENDING_APPROVAL"), "{ev:?}");
    let log = action_activity(&app, &t.reader, &incident).await;
    assert_eq!(log[0]["after"]["status"], "EXPIRED", "{log:#?}");
    assert_eq!(log[0]["before"]["status"], "PENDING");
    assert_eq!(log[0]["actor"], "system");
    // A second sweep finds nothing more.
    assert_eq!(parapet::actions::expiry::sweep(&app.state.pool, Utc::now()).await.expect("sweep"), 0);

    // An expired action cannot be decided any more, and never runs.
    assert_eq!(decide_code(&app, &t.responder, "approve", &due).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.responder, "reject", &due).await, "CONFLICT");
    assert_eq!(decide_code(&app, &t.analyst, "cancel", &due).await, "CONFLICT");
    let _jobs = app.start_jobs();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "INBOX");
    assert_eq!(action(&app, &t.reader, &due).await["status"], "EXPIRED");
}

/// The expiry module says "a decision arriving after the time ran out expires it on the spot": a
/// decision on a pending action past its deadline (the sweep has not come by) is a CONFLICT, and the
/// action is EXPIRED from then on.
#[tokio::test]
async fn a_decision_after_the_deadline_is_a_conflict_and_expires_the_action() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) = copies(&app, &t.gw, &[("late-1", "bob@contoso.com", "INBOX")]).await;
    let (_, incident) = incident_naming(&app, &t.gw, "late-alert", &[("late-1", "bob@contoso.com")]).await;
    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": incident }),
        )
        .await,
    );
    sql(&app, &format!("UPDATE actions SET expires_at = now() - interval '1 second' WHERE id = '{a}'")).await;

    let r = decide_resp(&app, &t.responder, "approve", &a, None).await;
    assert_eq!(code(&r), "CONFLICT", "{r:#}");
    let msg = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("expired"), "the error says why: {msg}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "INBOX", "nothing ran");
    let now = action(&app, &t.reader, &a).await;
    assert_eq!(now["status"], "EXPIRED", "the late decision expired the action on the spot: {now:#}");
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 0);
}

// ---------------------------------------------------------------------------------------------------
// Re-evaluation, release, outcomes
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_pending_action_whose_copies_all_moved_is_already_remediated() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, recs) =
        copies(&app, &t.gw, &[("ar-1", "bob@contoso.com", "INBOX"), ("ar-2", "eve@contoso.com", "INBOX")])
            .await;
    let (alert, incident) =
        incident_naming(&app, &t.gw, "ar-alert", &[("ar-1", "bob@contoso.com"), ("ar-2", "eve@contoso.com")])
            .await;
    let mut sub =
        app.subscribe(&t.reader, ACTION_SUB, json!({ "f": { "status": ["ALREADY_REMEDIATED"] } })).await;
    app.wait_subscribers(TENANT, 1).await;
    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": incident }),
        )
        .await,
    );

    // ZAP soft-deletes the first copy: one of two is there.
    push(&app, &t.gw, &[moved(&recs[0], "SOFT_DELETED")]).await;
    let p = action(&app, &t.reader, &a).await;
    assert_eq!(p["status"], "PENDING");
    assert_eq!(p["atDestinationCount"], 1, "{p:#}");
    assert_eq!(target_by_email(&p, &ids[0])["atDestination"], true);
    assert_eq!(target_by_email(&p, &ids[0])["currentLocation"], "SOFT_DELETED");
    assert_eq!(target_by_email(&p, &ids[1])["atDestination"], false);
    // It comes back (released): none is there.
    push(&app, &t.gw, &[moved(&recs[0], "INBOX")]).await;
    let p = action(&app, &t.reader, &a).await;
    assert_eq!((p["status"].clone(), p["atDestinationCount"].clone()), (json!("PENDING"), json!(0)), "{p:#}");

    // Both leave the inbox for good (hard-deleted satisfies a soft delete): nothing is left to approve.
    push(&app, &t.gw, &[moved(&recs[0], "SOFT_DELETED"), moved(&recs[1], "HARD_DELETED")]).await;
    let done = action(&app, &t.reader, &a).await;
    assert_eq!(done["status"], "ALREADY_REMEDIATED", "{done:#}");
    assert_eq!(done["alreadyInDestinationCount"], 2);
    assert_eq!(done["successCount"], 0);
    assert_eq!(done["openTargetCount"], 0);
    assert_eq!(done["decidedBy"], Value::Null);
    assert!(done["completedAt"].is_string());
    for n in done["targets"]["nodes"].as_array().expect("targets") {
        assert_eq!(n["outcome"], "ALREADY_IN_DESTINATION", "{n:#}");
        assert_eq!(n["atDestination"], true);
    }
    let ev = next_data(&mut sub).await["actionChanged"].clone();
    assert_eq!(ev["status"], "ALREADY_REMEDIATED");
    assert_eq!(ev["action"]["id"], a.as_str());
    assert_eq!(ev["actor"], "system");
    assert_eq!(pending_count(&app, &t.reader, &incident).await, 0);
    assert!(all(&alert_evidence(&app, &t.reader, &alert).await, "REMEDIATED"));
    let log = action_activity(&app, &t.reader, &incident).await;
    assert_eq!(log[0]["after"]["status"], "ALREADY_REMEDIATED", "{log:#?}");
    assert_eq!(log[0]["actor"], "system");
    assert_eq!(decide_code(&app, &t.responder, "approve", &a).await, "CONFLICT");
    // Parapet moved nothing itself.
    for id in &ids {
        assert!(events_of(&app, &t.reader, id, "MANUAL_REMEDIATION").await.is_empty());
    }
}

#[tokio::test]
async fn running_one_action_settles_a_pending_duplicate() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) =
        copies(&app, &t.gw, &[("dup-1", "bob@contoso.com", "INBOX"), ("dup-2", "eve@contoso.com", "INBOX")])
            .await;
    let first = id_of(&propose(&app, &t.analyst, ids_input(&ids, "SOFT_DELETE")).await);
    let second = id_of(&propose(&app, &t.analyst2, ids_input(&ids, "SOFT_DELETE")).await);
    // A third wants them junked: the delete does not satisfy it, so it stays pending.
    let other = id_of(&propose(&app, &t.analyst2, ids_input(&ids, "MOVE_TO_JUNK")).await);
    decide(&app, &t.responder, "approve", &first, None).await;
    wait_status(&app, &t.reader, &first, "COMPLETED").await;
    let dup = wait_status(&app, &t.reader, &second, "ALREADY_REMEDIATED").await;
    assert_eq!(dup["alreadyInDestinationCount"], 2);
    let o = action(&app, &t.reader, &other).await;
    assert_eq!(o["status"], "PENDING");
    assert_eq!(o["atDestinationCount"], 0);
    // Each copy moved once, by the first action.
    for id in &ids {
        let moves = events_of(&app, &t.reader, id, "MANUAL_REMEDIATION").await;
        assert_eq!(moves.len(), 1, "{moves:#?}");
        assert_eq!(moves[0]["actionId"], first.as_str());
    }
}

#[tokio::test]
async fn moving_a_quarantined_copy_to_the_inbox_releases_it() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) = copies(
        &app,
        &t.gw,
        &[
            ("rel-1", "bob@contoso.com", "QUARANTINE"),
            ("rel-2", "eve@contoso.com", "JUNK"),
            ("rel-3", "amy@contoso.com", "INBOX"),
        ],
    )
    .await;
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "QUARANTINE");

    // A delete cannot reach a quarantined copy: nothing to act on.
    let r = propose_resp(&app, Some(&t.analyst), ids_input(&ids[0..1], "SOFT_DELETE")).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");

    let (_, incident) = incident_naming(&app, &t.gw, "rel-alert", &[("rel-1", "bob@contoso.com")]).await;
    let a = propose(&app, &t.analyst, json!({ "emailIds": ids, "action": "MOVE_TO_INBOX", "incidentId": incident, "comment": "false positive" })).await;
    assert_eq!(a["source"], "MANUAL");
    assert_eq!(a["targetCount"], 2, "the inbox copy is already there: {a:#}");
    assert_eq!(a["preview"]["alreadyInDestination"], 1);
    assert_eq!(
        loc_counts(&a["preview"]["byLocation"]),
        BTreeMap::from([("JUNK".into(), 1), ("QUARANTINE".into(), 1)])
    );
    let a = id_of(&a);
    decide(&app, &t.responder, "approve", &a, None).await;
    let done = wait_status(&app, &t.reader, &a, "COMPLETED").await;
    assert_eq!(done["successCount"], 2);
    let q = target_by_email(&done, &ids[0]);
    assert_eq!((q["fromLocation"].clone(), q["toLocation"].clone()), (json!("QUARANTINE"), json!("INBOX")));
    assert_eq!(q["outcome"], "SUCCESS");
    assert!(q["executedAt"].is_string());

    let released = events_of(&app, &t.reader, &ids[0], "QUARANTINE_RELEASE").await;
    assert_eq!(released.len(), 1, "{released:#?}");
    assert_eq!(released[0]["fromLocation"], "QUARANTINE");
    assert_eq!(released[0]["toLocation"], "INBOX");
    assert_eq!(released[0]["actor"], "rob@contoso.com");
    assert_eq!(released[0]["actionId"], a.as_str());
    assert!(released[0]["reason"].as_str().unwrap_or_default().contains("false positive"));
    assert!(events_of(&app, &t.reader, &ids[0], "MANUAL_REMEDIATION").await.is_empty());
    let e = email(&app, &t.reader, &ids[0]).await;
    assert_eq!(e["latestDeliveryLocation"], "INBOX");
    assert!(e["movedAt"].is_string());
    // A copy out of junk is a manual remediation, not a release.
    let j = events_of(&app, &t.reader, &ids[1], "MANUAL_REMEDIATION").await;
    assert_eq!(j.len(), 1);
    assert_eq!((j[0]["fromLocation"].clone(), j[0]["toLocation"].clone()), (json!("JUNK"), json!("INBOX")));
    assert!(events_of(&app, &t.reader, &ids[1], "QUARANTINE_RELEASE").await.is_empty());
    assert_eq!(location(&app, &t.reader, &ids[1]).await, "INBOX");
    assert_eq!(
        email(&app, &t.reader, &ids[2]).await["timeline"].as_array().map(Vec::len),
        Some(1),
        "left alone"
    );
}

#[tokio::test]
async fn outcomes_follow_where_each_copy_is_when_the_action_runs() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, recs) = copies(
        &app,
        &t.gw,
        &[
            ("out-1", "bob@contoso.com", "INBOX"),
            ("out-2", "eve@contoso.com", "INBOX"),
            ("out-3", "amy@contoso.com", "INBOX"),
            ("out-4", "dan@contoso.com", "INBOX"),
            ("out-5", "fay@contoso.com", "INBOX"),
        ],
    )
    .await;
    let a = id_of(&propose(&app, &t.analyst, ids_input(&ids[0..4], "SOFT_DELETE")).await);
    let solo = id_of(&propose(&app, &t.analyst, ids_input(&ids[4..5], "SOFT_DELETE")).await);
    decide(&app, &t.responder, "approve", &a, None).await;
    decide(&app, &t.responder, "approve", &solo, None).await;
    let waiting = action(&app, &t.reader, &a).await;
    assert_eq!(waiting["status"], "APPROVED");
    assert_eq!(waiting["openTargetCount"], 4);

    // Before the runner gets to it: one copy is deleted by ZAP, one leaves for on-premises, one is gone
    // from the store altogether.
    push(
        &app,
        &t.gw,
        &[
            moved(&recs[1], "SOFT_DELETED"),
            moved(&recs[2], "ON_PREM_EXTERNAL"),
            moved(&recs[4], "ON_PREM_EXTERNAL"),
        ],
    )
    .await;
    assert_eq!(
        sql(&app, &format!("DELETE FROM emails WHERE tenant_id = '{TENANT}' AND id = '{}'", ids[3])).await,
        1
    );
    assert_eq!(
        action(&app, &t.reader, &a).await["status"],
        "APPROVED",
        "approved actions are not re-evaluated"
    );

    let _jobs = app.start_jobs();
    let done = wait_status(&app, &t.reader, &a, "COMPLETED").await;
    assert!(done["startedAt"].is_string() && done["completedAt"].is_string());
    assert_eq!(done["successCount"], 1, "{done:#}");
    assert_eq!(done["alreadyInDestinationCount"], 1);
    assert_eq!(done["failedCount"], 1);
    assert_eq!(done["notFoundCount"], 1);
    assert_eq!(done["openTargetCount"], 0);
    let outcome = |i: usize| target_by_email(&done, &ids[i])["outcome"].clone();
    assert_eq!(
        [outcome(0), outcome(1), outcome(2), outcome(3)],
        [json!("SUCCESS"), json!("ALREADY_IN_DESTINATION"), json!("FAILED"), json!("NOT_FOUND")]
    );
    let t0 = target_by_email(&done, &ids[0]);
    assert_eq!(
        (t0["fromLocation"].clone(), t0["toLocation"].clone()),
        (json!("INBOX"), json!("SOFT_DELETED"))
    );
    assert_eq!(t0["currentLocation"], "SOFT_DELETED");
    assert_eq!(t0["atDestination"], true);
    let t2 = target_by_email(&done, &ids[2]);
    assert_eq!(t2["fromLocation"], "ON_PREM_EXTERNAL");
    assert_eq!(t2["toLocation"], Value::Null);
    let t3 = target_by_email(&done, &ids[3]);
    assert_eq!(t3["currentLocation"], Value::Null, "no longer in the store");
    assert_eq!(t3["email"], Value::Null);
    assert_eq!(t3["locationAtProposal"], "INBOX");

    // Targets by outcome.
    let q = "query($id: ID!, $o: [ActionOutcome!]) { action(id: $id) { targets(outcome: $o) { totalCount nodes { emailId outcome } } } }";
    let failed = app.ok(&t.reader, q, json!({ "id": a, "o": ["FAILED"] })).await["action"]["targets"].clone();
    assert_eq!(failed["totalCount"], 1);
    assert_eq!(failed["nodes"][0]["emailId"], ids[2].as_str());
    let two = app.ok(&t.reader, q, json!({ "id": a, "o": ["SUCCESS", "NOT_FOUND"] })).await["action"]
        ["targets"]
        .clone();
    assert_eq!(two["totalCount"], 2);
    // Paging targets.
    let q = "query($id: ID!, $after: String) { action(id: $id) { targets(first: 3, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { emailId } } } }";
    let p1 = app.ok(&t.reader, q, json!({ "id": a })).await["action"]["targets"].clone();
    assert_eq!(p1["totalCount"], 4);
    assert_eq!(p1["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(p1["pageInfo"]["hasNextPage"], true);
    let p2 = app.ok(&t.reader, q, json!({ "id": a, "after": p1["pageInfo"]["endCursor"] })).await["action"]
        ["targets"]
        .clone();
    assert_eq!(p2["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(p2["pageInfo"]["hasNextPage"], false);
    let mut seen: Vec<String> = [&p1, &p2]
        .iter()
        .flat_map(|p| p["nodes"].as_array().cloned().unwrap_or_default())
        .map(|n| n["emailId"].as_str().unwrap_or_default().to_string())
        .collect();
    seen.sort();
    let mut want = ids[0..4].to_vec();
    want.sort();
    assert_eq!(seen, want);

    // Only the copy that moved has a remediation event.
    assert_eq!(events_of(&app, &t.reader, &ids[0], "MANUAL_REMEDIATION").await.len(), 1);
    assert!(events_of(&app, &t.reader, &ids[1], "MANUAL_REMEDIATION").await.is_empty());
    assert!(events_of(&app, &t.reader, &ids[2], "MANUAL_REMEDIATION").await.is_empty());
    assert_eq!(location(&app, &t.reader, &ids[2]).await, "ON_PREM_EXTERNAL");

    // An action whose every target failed ends FAILED.
    let f = wait_status(&app, &t.reader, &solo, "FAILED").await;
    assert_eq!((f["failedCount"].clone(), f["successCount"].clone()), (json!(1), json!(0)));
    assert!(f["completedAt"].is_string());
}

/// A copy first learned from an alert's evidence, then adopted by the gateway's record under its real
/// receive time, is the same copy (same id): an action proposed on it before the adoption still finds
/// it, follows its moves while pending, and moves it when run.
#[tokio::test]
async fn an_action_on_a_learned_copy_still_finds_it_after_the_mail_flow_adopts_it() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let named = |n: &str, r: &str| {
        json!({ "verdict": "MALICIOUS", "email": { "networkMessageId": n, "recipient": r, "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX", "threatTypes": ["PHISH"] } })
    };
    let alert = alert_with(
        "lrn-alert",
        "Email messages containing malicious URL removed after delivery",
        "HIGH",
        json!([named("lrn-1", "bob@contoso.com"), named("lrn-2", "eve@contoso.com")]),
    );
    let r = app.ok(&t.gw, INGEST, json!({ "alerts": [alert] })).await;
    let alert_id = r["ingestAlerts"]["items"][0]["alert"]["id"].as_str().expect("alert").to_string();
    let q = "query($id: ID!) { alert(id: $id) { evidence { ... on EmailEvidence { recipient email { id source latestDeliveryLocation } } } } }";
    let ev = app.ok(&t.reader, q, json!({ "id": alert_id })).await["alert"]["evidence"].clone();
    let learned = |r: &str| {
        ev.as_array()
            .and_then(|a| a.iter().find(|e| e["recipient"] == r))
            .map(|e| e["email"].clone())
            .unwrap_or_else(|| panic!("evidence of {r}: {ev:#}"))
    };
    let (l1, l2) = (learned("bob@contoso.com"), learned("eve@contoso.com"));
    assert_eq!(l1["source"], "ALERT", "{l1:#}");
    assert_eq!(l1["latestDeliveryLocation"], "INBOX");
    let (c1, c2) = (l1["id"].as_str().expect("id").to_string(), l2["id"].as_str().expect("id").to_string());
    let x = id_of(&propose(&app, &t.analyst, ids_input(std::slice::from_ref(&c1), "SOFT_DELETE")).await);
    let y = id_of(&propose(&app, &t.analyst, ids_input(std::slice::from_ref(&c2), "SOFT_DELETE")).await);

    // The gateway's records arrive with the real receive time: the same copies, adopted.
    let recs = [rec("lrn-1", "bob@contoso.com", "INBOX"), rec("lrn-2", "eve@contoso.com", "INBOX")];
    assert_eq!(push(&app, &t.gw, &recs).await, vec![c1.clone(), c2.clone()], "adopted, same ids");
    let xa = action(&app, &t.reader, &x).await;
    let target = target_by_email(&xa, &c1);
    assert_eq!(target["currentLocation"], "INBOX", "the target still finds its copy: {target:#}");
    assert_eq!(target["email"]["id"], c1.as_str());

    // A pending action follows the adopted copy's moves.
    push(&app, &t.gw, &[moved(&recs[0], "SOFT_DELETED")]).await;
    let xa = action(&app, &t.reader, &x).await;
    assert_eq!(xa["status"], "ALREADY_REMEDIATED", "{xa:#}");

    // And running one moves it.
    decide(&app, &t.responder, "approve", &y, None).await;
    let _jobs = app.start_jobs();
    let done = wait_status(&app, &t.reader, &y, "COMPLETED").await;
    assert_eq!(
        (done["successCount"].clone(), done["notFoundCount"].clone()),
        (json!(1), json!(0)),
        "{done:#}"
    );
    assert_eq!(location(&app, &t.reader, &c2).await, "SOFT_DELETED");
}

/// While any action on a copy still waits for approval, the evidence naming the copy says so: ending
/// one of two pending actions (rejected, cancelled) does not mark the evidence as if none were pending.
#[tokio::test]
async fn evidence_stays_pending_approval_while_another_action_on_the_copy_waits() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(&app, &t.gw, &[("two-1", "bob@contoso.com", "INBOX")]).await;
    let (alert, inc) = incident_naming(&app, &t.gw, "two-alert", &[("two-1", "bob@contoso.com")]).await;
    let on = |act: &str| json!({ "emailIds": ids, "action": act, "incidentId": inc });
    let first = id_of(&propose(&app, &t.analyst, on("SOFT_DELETE")).await);
    let second = id_of(&propose(&app, &t.analyst2, on("HARD_DELETE")).await);
    assert!(all(&alert_evidence(&app, &t.reader, &alert).await, "PENDING_APPROVAL"));
    decide(&app, &t.responder, "reject", &second, None).await;
    assert_eq!(action(&app, &t.reader, &first).await["status"], "PENDING");
    assert_eq!(pending_count(&app, &t.reader, &inc).await, 1);
    let ev = alert_evidence(&app, &t.reader, &alert).await;
    assert!(all(&ev, "PENDING_APPROVAL"), "another action on the copy still waits: {ev:?}");
}

// ---------------------------------------------------------------------------------------------------
// Preview and selection
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_preview_leaves_out_what_the_action_need_not_or_cannot_move() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(
        &app,
        &t.gw,
        &[
            ("pv-1", "a@contoso.com", "INBOX"),
            ("pv-2", "b@contoso.com", "INBOX"),
            ("pv-3", "a@contoso.com", "INBOX"),
            ("pv-4", "c@contoso.com", "JUNK"),
            ("pv-5", "d@contoso.com", "SOFT_DELETED"),
            ("pv-6", "e@contoso.com", "HARD_DELETED"),
            ("pv-7", "f@contoso.com", "ON_PREM_EXTERNAL"),
            ("pv-8", "g@contoso.com", "QUARANTINE"),
        ],
    )
    .await;
    let other_gw = app.token("fabrikam", "gw@fabrikam.com", &[Role::Ingestor]);
    let foreign = push(&app, &other_gw, &[rec("pv-x", "a@fabrikam.com", "INBOX")]).await;
    let mut named = ids.clone();
    named.push(ids[0].clone()); // a duplicate counts once
    named.push(uuid::Uuid::new_v4().to_string()); // no such copy
    named.push(foreign[0].clone()); // another tenant's copy

    let preview = |action: &str| {
        let named = named.clone();
        let app = &app;
        let analyst = t.analyst.clone();
        let action = action.to_string();
        async move {
            let q = format!(
                "query($i: RemediateEmailsInput!) {{ previewRemediation(input: $i) {{ {PREVIEW} }} }}"
            );
            app.ok(&analyst, &q, json!({ "i": ids_input(&named, &action) })).await["previewRemediation"]
                .clone()
        }
    };
    let m =
        |pairs: &[(&str, i64)]| pairs.iter().map(|(l, n)| (l.to_string(), *n)).collect::<BTreeMap<_, _>>();

    let soft = preview("SOFT_DELETE").await;
    assert_eq!(soft["selected"], 10, "8 copies found and 2 ids not found: {soft:#}");
    assert_eq!(soft["targetCount"], 4);
    assert_eq!(soft["mailboxCount"], 3);
    assert_eq!(loc_counts(&soft["byLocation"]), m(&[("INBOX", 3), ("JUNK", 1)]));
    assert_eq!(soft["alreadyInDestination"], 2, "soft- and hard-deleted copies need no soft delete");
    assert_eq!(loc_counts(&soft["notRemediable"]), m(&[("ON_PREM_EXTERNAL", 1), ("QUARANTINE", 1)]));
    assert_eq!(soft["notFound"], 2);
    assert_eq!(soft["excludedCount"], 6);

    let junk = preview("MOVE_TO_JUNK").await;
    assert_eq!(junk["targetCount"], 4);
    assert_eq!(loc_counts(&junk["byLocation"]), m(&[("INBOX", 3), ("SOFT_DELETED", 1)]));
    assert_eq!(junk["alreadyInDestination"], 1);
    assert_eq!(
        loc_counts(&junk["notRemediable"]),
        m(&[("HARD_DELETED", 1), ("ON_PREM_EXTERNAL", 1), ("QUARANTINE", 1)])
    );

    let hard = preview("HARD_DELETE").await;
    assert_eq!(hard["targetCount"], 5);
    assert_eq!(hard["alreadyInDestination"], 1);
    assert_eq!(loc_counts(&hard["notRemediable"]), m(&[("ON_PREM_EXTERNAL", 1), ("QUARANTINE", 1)]));

    let inbox = preview("MOVE_TO_INBOX").await;
    assert_eq!(inbox["targetCount"], 3);
    assert_eq!(loc_counts(&inbox["byLocation"]), m(&[("JUNK", 1), ("QUARANTINE", 1), ("SOFT_DELETED", 1)]));
    assert_eq!(inbox["alreadyInDestination"], 3);
    assert_eq!(loc_counts(&inbox["notRemediable"]), m(&[("HARD_DELETED", 1), ("ON_PREM_EXTERNAL", 1)]));

    // A preview proposes nothing.
    assert_eq!(app.ok(&t.reader, "{ actions { totalCount } }", json!({})).await["actions"]["totalCount"], 0);

    // The proposal keeps the same preview, and exactly the previewed targets.
    let a = propose(&app, &t.analyst, ids_input(&named, "SOFT_DELETE")).await;
    assert_eq!(a["source"], "EXPLORER");
    assert_eq!(a["incidentId"], Value::Null);
    assert_eq!(a["incident"], Value::Null);
    assert_eq!(a["preview"], soft);
    assert_eq!(a["targetCount"], 4);
    assert_eq!(a["openTargetCount"], 4);
    assert_eq!(a["targets"]["totalCount"], 4);
    let mut got: Vec<(String, String)> = a["targets"]["nodes"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|n| {
            assert_eq!(n["outcome"], Value::Null);
            assert_eq!(n["atDestination"], false);
            assert_eq!(n["currentLocation"], n["locationAtProposal"]);
            (
                n["emailId"].as_str().unwrap_or_default().to_string(),
                n["locationAtProposal"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (ids[0].clone(), "INBOX".to_string()),
        (ids[1].clone(), "INBOX".to_string()),
        (ids[2].clone(), "INBOX".to_string()),
        (ids[3].clone(), "JUNK".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);

    // Nothing to act on at all is refused, and stores nothing.
    for (sel, act) in
        [(&ids[4..8], "SOFT_DELETE"), (&ids[0..3], "MOVE_TO_INBOX"), (&ids[5..7], "MOVE_TO_JUNK")]
    {
        let r = propose_resp(&app, Some(&t.analyst), ids_input(sel, act)).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{act}: {r:#}");
    }
    let r =
        propose_resp(&app, Some(&t.analyst), ids_input(&[uuid::Uuid::new_v4().to_string()], "SOFT_DELETE"))
            .await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert_eq!(app.ok(&t.reader, "{ actions { totalCount } }", json!({})).await["actions"]["totalCount"], 1);
}

#[tokio::test]
async fn a_filter_selects_the_copies_it_matches_when_proposed() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(
        &app,
        &t.gw,
        &[
            ("f-1", "bob@contoso.com", "INBOX"),
            ("f-2", "eve@contoso.com", "INBOX"),
            ("f-3", "amy@contoso.com", "SOFT_DELETED"),
        ],
    )
    .await;
    let mut clean = rec("f-4", "bob@contoso.com", "INBOX");
    clean["headerFrom"] = json!("friend@good.example");
    clean["envelopeSender"] = json!("friend@good.example");
    let clean_id = push(&app, &t.gw, &[clean]).await.remove(0);

    let filter = json!({ "sender": "evil.example" });
    let a = propose(&app, &t.analyst, json!({ "filter": filter, "action": "SOFT_DELETE" })).await;
    assert_eq!(a["source"], "EXPLORER");
    assert_eq!(a["preview"]["selected"], 3);
    assert_eq!(a["preview"]["alreadyInDestination"], 1);
    assert_eq!(a["targetCount"], 2);
    let mut targets: Vec<String> = a["targets"]["nodes"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|n| n["emailId"].as_str().unwrap_or_default().to_string())
        .collect();
    targets.sort();
    let mut want = ids[0..2].to_vec();
    want.sort();
    assert_eq!(targets, want);
    let narrowed = json!({ "sender": "evil.example", "recipient": "eve@contoso.com" });
    let b = propose(&app, &t.analyst, json!({ "filter": narrowed, "action": "MOVE_TO_JUNK" })).await;
    assert_eq!(b["targetCount"], 1);
    assert_eq!(b["targets"]["nodes"][0]["emailId"], ids[1].as_str());

    // From an incident: MANUAL.
    let (_, incident) = incident_naming(&app, &t.gw, "f-alert", &[("f-1", "bob@contoso.com")]).await;
    let m = propose(
        &app,
        &t.analyst,
        json!({ "filter": { "networkMessageId": "f-1" }, "action": "HARD_DELETE", "incidentId": incident }),
    )
    .await;
    assert_eq!(m["source"], "MANUAL");
    assert_eq!(m["incidentId"], incident.as_str());
    assert_eq!(m["incident"]["id"], incident.as_str());

    // The copies are fixed when proposed: one arriving later is not acted on.
    let late = push(&app, &t.gw, &[rec("f-5", "zed@contoso.com", "INBOX")]).await.remove(0);
    let a = id_of(&a);
    decide(&app, &t.responder, "approve", &a, None).await;
    let _jobs = app.start_jobs();
    let done = wait_status(&app, &t.reader, &a, "COMPLETED").await;
    assert_eq!(done["successCount"], 2);
    assert_eq!(location(&app, &t.reader, &late).await, "INBOX");
    assert_eq!(location(&app, &t.reader, &clean_id).await, "INBOX");
    assert_eq!(location(&app, &t.reader, &ids[0]).await, "SOFT_DELETED");
}

// ---------------------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_see_and_touch_nothing_of_each_others_actions() {
    let app = TestApp::new().await;
    let a = team(&app, TENANT);
    let b = team(&app, "fabrikam");
    let _jobs = app.start_jobs();
    let mut sub_b = app.subscribe(&b.reader, ACTION_SUB, json!({})).await;
    let mut inc_b = app.subscribe(&b.reader, INCIDENT_SUB, json!({})).await;
    app.wait_subscribers("fabrikam", 2).await;

    let (ids_a, _) =
        copies(&app, &a.gw, &[("iso-1", "bob@contoso.com", "INBOX"), ("iso-2", "eve@contoso.com", "INBOX")])
            .await;
    let (_, incident_a) = incident_naming(&app, &a.gw, "iso-alert", &[("iso-1", "bob@contoso.com")]).await;
    let pending_a = id_of(
        &propose(
            &app,
            &a.analyst,
            json!({ "emailIds": [ids_a[0]], "action": "SOFT_DELETE", "incidentId": incident_a }),
        )
        .await,
    );
    let run_a = id_of(&propose(&app, &a.analyst, ids_input(&ids_a[1..2], "MOVE_TO_JUNK")).await);
    decide(&app, &a.responder, "approve", &run_a, None).await;
    wait_status(&app, &a.reader, &run_a, "COMPLETED").await;

    // B reads nothing of A's.
    assert_eq!(action(&app, &b.reader, &pending_a).await, Value::Null);
    assert_eq!(action(&app, &b.reader, &run_a).await, Value::Null);
    let list = app.ok(&b.reader, "{ actions { totalCount nodes { id } } }", json!({})).await;
    assert_eq!(list["actions"]["totalCount"], 0);
    let by_incident = app
        .ok(
            &b.reader,
            "query($i: ID!) { actions(filter: { incidentId: $i }) { totalCount } }",
            json!({ "i": incident_a }),
        )
        .await;
    assert_eq!(by_incident["actions"]["totalCount"], 0);
    // Nor decides on them.
    for (tok, verb) in
        [(&b.responder, "approve"), (&b.responder, "reject"), (&b.admin, "cancel"), (&b.admin, "approve")]
    {
        assert_eq!(decide_code(&app, tok, verb, &pending_a).await, "NOT_FOUND", "{verb}");
    }
    assert_eq!(action(&app, &a.reader, &pending_a).await["status"], "PENDING");
    // A's copies are not found for B, A's incident neither.
    let q = format!("query($i: RemediateEmailsInput!) {{ previewRemediation(input: $i) {{ {PREVIEW} }} }}");
    let p = app.ok(&b.analyst, &q, json!({ "i": ids_input(&ids_a, "SOFT_DELETE") })).await
        ["previewRemediation"]
        .clone();
    assert_eq!(
        (p["selected"].clone(), p["notFound"].clone(), p["targetCount"].clone()),
        (json!(2), json!(2), json!(0))
    );
    assert_eq!(
        code(&propose_resp(&app, Some(&b.analyst), ids_input(&ids_a, "SOFT_DELETE")).await),
        "BAD_USER_INPUT"
    );
    let r = propose_resp(
        &app,
        Some(&b.analyst),
        json!({ "filter": { "sender": "evil.example" }, "action": "SOFT_DELETE" }),
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "B's filter matches none of A's copies: {r:#}");
    let (ids_b, _) = copies(&app, &b.gw, &[("iso-b", "bob@fabrikam.com", "INBOX")]).await;
    let r = propose_resp(
        &app,
        Some(&b.analyst),
        json!({ "emailIds": ids_b, "action": "SOFT_DELETE", "incidentId": incident_a }),
    )
    .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");
    let mixed: Vec<String> = vec![ids_a[0].clone(), ids_b[0].clone()];
    let own = propose(&app, &b.analyst, ids_input(&mixed, "SOFT_DELETE")).await;
    assert_eq!(own["targetCount"], 1);
    assert_eq!(own["preview"]["notFound"], 1);
    assert_eq!(own["targets"]["nodes"][0]["emailId"], ids_b[0].as_str());
    // A copy of B lists only B's actions.
    let e = email(&app, &b.reader, &ids_b[0]).await;
    assert_eq!(node_ids(&e["actions"]), vec![id_of(&own)]);
    // A's list does not show B's.
    let list = app.ok(&a.reader, "{ actions { totalCount } }", json!({})).await;
    assert_eq!(list["actions"]["totalCount"], 2);

    // B's subscriptions saw nothing of A's actions: the first event is B's own proposal.
    let ev = next_data(&mut sub_b).await["actionChanged"].clone();
    assert_eq!(ev["action"]["id"], own["id"], "{ev:#}");
    assert_eq!(ev["status"], "PENDING");
    nothing(&mut sub_b).await;
    nothing(&mut inc_b).await;
    // Replaying B's whole history shows only B's too.
    let start = parapet::events::cursor::encode(0);
    let mut replay = app.subscribe(&b.reader, ACTION_SUB, json!({ "after": start })).await;
    let v = next_data(&mut replay).await["actionChanged"].clone();
    assert_eq!(v["action"]["id"], own["id"], "{v:#}");
    nothing(&mut replay).await;
}

// ---------------------------------------------------------------------------------------------------
// Subscriptions, incident view
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn action_changed_streams_an_actions_life_and_replays_after_a_cursor() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("sub-1", "bob@contoso.com", "INBOX"), ("sub-2", "eve@contoso.com", "INBOX")])
            .await;
    let (_, incident) = incident_naming(&app, &t.gw, "sub-alert", &[("sub-1", "bob@contoso.com")]).await;
    let mut live = app.subscribe(&t.reader, ACTION_SUB, json!({})).await;
    app.wait_subscribers(TENANT, 1).await;

    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": incident }),
        )
        .await,
    );
    let e1 = next_data(&mut live).await["actionChanged"].clone();
    assert_eq!(e1["status"], "PENDING");
    assert_eq!(e1["action"]["id"], a.as_str());
    assert_eq!(e1["action"]["incidentId"], incident.as_str());
    assert_eq!(e1["actor"], "ann@contoso.com");
    assert!(e1["changedFields"].as_array().expect("fields").contains(&json!("status")));
    decide(&app, &t.responder, "approve", &a, None).await;
    let e2 = next_data(&mut live).await["actionChanged"].clone();
    assert_eq!(e2["status"], "APPROVED");
    assert_eq!(e2["actor"], "rob@contoso.com");

    let jobs = app.start_jobs();
    let mut rest = vec![];
    for _ in 0..3 {
        rest.push(next_data(&mut live).await["actionChanged"].clone());
    }
    assert_eq!(
        rest.iter().map(|e| e["status"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["RUNNING", "RUNNING", "COMPLETED"],
        "{rest:#?}"
    );
    assert_eq!(rest[1]["changedFields"], json!(["targets"]), "progress names the targets");
    assert!(rest.iter().all(|e| e["actor"] == "system"));
    assert_eq!(rest[2]["action"]["status"], "COMPLETED");
    nothing(&mut live).await;
    jobs.abort();
    drop(live);

    // Resume after the approval: the run's three events again, same cursors, then live ones.
    let mut again = app.subscribe(&t.reader, ACTION_SUB, json!({ "after": e2["cursor"] })).await;
    for want in &rest {
        let got = next_data(&mut again).await["actionChanged"].clone();
        assert_eq!(got["cursor"], want["cursor"]);
        assert_eq!(got["status"], want["status"]);
    }
    let b = id_of(&propose(&app, &t.analyst2, ids_input(&ids[1..2], "MOVE_TO_JUNK")).await);
    let got = next_data(&mut again).await["actionChanged"].clone();
    assert_eq!(got["action"]["id"], b.as_str());
    assert_eq!(got["status"], "PENDING");
    nothing(&mut again).await;

    // Filters: by status, by action, by incident (replayed from the start).
    let first_cursor = e1["cursor"].clone();
    let mut completed = app
        .subscribe(&t.reader, ACTION_SUB, json!({ "f": { "status": ["COMPLETED"] }, "after": first_cursor }))
        .await;
    let c = next_data(&mut completed).await["actionChanged"].clone();
    assert_eq!((c["status"].clone(), c["action"]["id"].clone()), (json!("COMPLETED"), json!(a)));
    nothing(&mut completed).await;
    let mut only_b =
        app.subscribe(&t.reader, ACTION_SUB, json!({ "f": { "actionId": b }, "after": first_cursor })).await;
    assert_eq!(next_data(&mut only_b).await["actionChanged"]["action"]["id"], b.as_str());
    nothing(&mut only_b).await;
    let mut by_incident = app
        .subscribe(&t.reader, ACTION_SUB, json!({ "f": { "incidentId": incident }, "after": first_cursor }))
        .await;
    let mut n = 0;
    while let Ok(Some(v)) =
        tokio::time::timeout(std::time::Duration::from_millis(1500), by_incident.next()).await
    {
        assert_eq!(v["data"]["actionChanged"]["action"]["id"], a.as_str(), "{v:#}");
        n += 1;
    }
    assert_eq!(n, 4, "the incident's action after its first event: approved, running, progress, completed");

    // Readers may subscribe; ingestors may not.
    let mut denied = app.subscribe(&t.gw, ACTION_SUB, json!({})).await;
    let v = tokio::time::timeout(std::time::Duration::from_secs(5), denied.next())
        .await
        .expect("answer")
        .expect("item");
    assert_eq!(v["errors"][0]["extensions"]["code"], "FORBIDDEN", "{v:#}");
}

#[tokio::test]
async fn the_incident_counts_its_pending_actions_and_says_when_the_count_moves() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let _jobs = app.start_jobs();
    let (ids, _) =
        copies(&app, &t.gw, &[("pc-1", "bob@contoso.com", "INBOX"), ("pc-2", "eve@contoso.com", "INBOX")])
            .await;
    let (_, inc) = incident_naming(&app, &t.gw, "pc-alert", &[("pc-1", "bob@contoso.com")]).await;
    let (_, other) = incident_naming(&app, &t.gw, "pc-other", &[("pc-2", "eve@contoso.com")]).await;
    assert_ne!(inc, other);
    assert_eq!(pending_count(&app, &t.reader, &inc).await, 0);
    let mut sub = app.subscribe(&t.reader, INCIDENT_SUB, json!({ "f": { "incidentId": inc } })).await;
    app.wait_subscribers(TENANT, 1).await;
    let on = |act: &str| json!({ "emailIds": [ids[0]], "action": act, "incidentId": inc });

    let a1 = id_of(&propose(&app, &t.analyst, on("SOFT_DELETE")).await);
    let ev = next_data(&mut sub).await["incidentChanged"].clone();
    assert_eq!(ev["changedFields"], json!(["pendingActionCount"]), "{ev:#}");
    assert_eq!(ev["incident"]["id"], inc.as_str());
    assert_eq!(ev["incident"]["pendingActionCount"], 1);
    assert_eq!(ev["actor"], "ann@contoso.com");
    let a2 = id_of(&propose(&app, &t.analyst, on("MOVE_TO_JUNK")).await);
    assert_eq!(next_data(&mut sub).await["incidentChanged"]["incident"]["pendingActionCount"], 2);
    // An action on the other incident counts there only.
    let o = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": [ids[1]], "action": "SOFT_DELETE", "incidentId": other }),
        )
        .await,
    );
    // In the queue, each incident has its own count (loaded for the page at once).
    let q = "{ incidents(first: 10) { nodes { id pendingActionCount actions(status: [PENDING]) { totalCount nodes { id } } } } }";
    let page = app.ok(&t.reader, q, json!({})).await;
    let nodes = page["incidents"]["nodes"].as_array().expect("incidents").clone();
    let find =
        |id: &str| nodes.iter().find(|n| n["id"] == id).cloned().unwrap_or_else(|| panic!("incident {id}"));
    assert_eq!(find(&inc)["pendingActionCount"], 2);
    assert_eq!(find(&other)["pendingActionCount"], 1);
    let mut pend = node_ids(&find(&inc)["actions"]["nodes"]);
    pend.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(pend, want);
    assert_eq!(find(&other)["actions"]["totalCount"], 1);
    assert_eq!(node_ids(&find(&other)["actions"]["nodes"]), vec![o]);

    decide(&app, &t.responder, "reject", &a2, None).await;
    let ev = next_data(&mut sub).await["incidentChanged"].clone();
    assert_eq!(ev["incident"]["pendingActionCount"], 1);
    assert_eq!(ev["actor"], "rob@contoso.com");
    decide(&app, &t.responder, "approve", &a1, None).await;
    let ev = next_data(&mut sub).await["incidentChanged"].clone();
    assert_eq!(ev["changedFields"], json!(["pendingActionCount"]));
    assert_eq!(ev["incident"]["pendingActionCount"], 0);
    wait_status(&app, &t.reader, &a1, "COMPLETED").await;
    // Running and completing do not move the count: no further event.
    nothing(&mut sub).await;
    assert_eq!(pending_count(&app, &t.reader, &inc).await, 0);
    assert_eq!(pending_count(&app, &t.reader, &other).await, 1);
}

#[tokio::test]
async fn the_incident_activity_log_records_proposal_decision_start_and_end() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(&app, &t.gw, &[("log-1", "bob@contoso.com", "INBOX")]).await;
    let (_, inc) = incident_naming(&app, &t.gw, "log-alert", &[("log-1", "bob@contoso.com")]).await;
    let before = app
        .ok(&t.reader, "query($id: ID!) { incident(id: $id) { lastUpdateAt } }", json!({ "id": inc }))
        .await;
    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": inc, "comment": "campaign 7" }),
        )
        .await,
    );
    let after = app
        .ok(&t.reader, "query($id: ID!) { incident(id: $id) { lastUpdateAt } }", json!({ "id": inc }))
        .await;
    assert!(
        ts(&after["incident"]["lastUpdateAt"]) > ts(&before["incident"]["lastUpdateAt"]),
        "a proposal updates the incident"
    );
    decide(&app, &t.responder, "approve", &a, Some("confirmed")).await;
    let _jobs = app.start_jobs();
    wait_status(&app, &t.reader, &a, "COMPLETED").await;

    let log = action_activity(&app, &t.reader, &inc).await;
    assert_eq!(log.len(), 4, "proposal, decision, start, completion: {log:#?}");
    let step = |i: usize| {
        (
            log[i]["before"]["status"].as_str().map(str::to_string),
            log[i]["after"]["status"].as_str().unwrap_or_default().to_string(),
            log[i]["actor"].as_str().unwrap_or_default().to_string(),
        )
    };
    // Newest first.
    assert_eq!(step(3), (None, "PENDING".into(), "ann@contoso.com".into()));
    assert_eq!(step(2), (Some("PENDING".into()), "APPROVED".into(), "rob@contoso.com".into()));
    assert_eq!(step(1), (Some("APPROVED".into()), "RUNNING".into(), "system".into()));
    assert_eq!(step(0), (Some("RUNNING".into()), "COMPLETED".into(), "system".into()));
    for entry in &log {
        assert_eq!(entry["after"]["actionId"], a.as_str());
        assert_eq!(entry["field"], "status");
        assert!(!entry["message"].as_str().unwrap_or_default().is_empty());
    }
    assert!(log[2]["message"].as_str().unwrap_or_default().contains("confirmed"), "{:#}", log[2]);
    assert_eq!(log[3]["before"], Value::Null);
    // An Explorer action (no incident) writes no incident's log.
    let b = id_of(&propose(&app, &t.analyst, ids_input(&ids, "MOVE_TO_INBOX")).await);
    decide(&app, &t.responder, "reject", &b, None).await;
    assert_eq!(action_activity(&app, &t.reader, &inc).await.len(), 4);
}

#[tokio::test]
async fn evidence_shows_pending_approval_then_remediated() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(
        &app,
        &t.gw,
        &[
            ("ev-1", "bob@contoso.com", "INBOX"),
            ("ev-2", "eve@contoso.com", "INBOX"),
            ("ev-3", "amy@contoso.com", "INBOX"),
        ],
    )
    .await;
    // The evidence names copies with a different case than the mail flow.
    let (alert, inc) =
        incident_naming(&app, &t.gw, "ev-alert", &[("EV-1", "Bob@contoso.com"), ("ev-2", "eve@CONTOSO.com")])
            .await;
    let (other_alert, _) = incident_naming(&app, &t.gw, "ev-other", &[("ev-3", "amy@contoso.com")]).await;
    let before = alert_evidence(&app, &t.reader, &alert).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(all(&before, "NONE"), "{before:?}");

    let a = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": ids[0..2], "action": "SOFT_DELETE", "incidentId": inc }),
        )
        .await,
    );
    assert!(all(&alert_evidence(&app, &t.reader, &alert).await, "PENDING_APPROVAL"));
    assert!(all(&incident_evidence(&app, &t.reader, &inc).await, "PENDING_APPROVAL"));
    assert!(
        all(&alert_evidence(&app, &t.reader, &other_alert).await, "NONE"),
        "evidence of other copies is untouched"
    );
    decide(&app, &t.responder, "approve", &a, None).await;
    let _jobs = app.start_jobs();
    wait_status(&app, &t.reader, &a, "COMPLETED").await;
    let ev = alert_evidence(&app, &t.reader, &alert).await;
    assert!(all(&ev, "REMEDIATED"), "{ev:?}");
    let ev = incident_evidence(&app, &t.reader, &inc).await;
    assert!(all(&ev, "REMEDIATED"), "{ev:?}");
    assert!(all(&alert_evidence(&app, &t.reader, &other_alert).await, "NONE"));

    // An Explorer action (no incident) still marks the evidence naming its copies, and a rejection
    // declines it.
    let b = id_of(&propose(&app, &t.analyst, ids_input(&ids[2..3], "HARD_DELETE")).await);
    assert!(all(&alert_evidence(&app, &t.reader, &other_alert).await, "PENDING_APPROVAL"));
    decide(&app, &t.responder, "reject", &b, None).await;
    assert!(all(&alert_evidence(&app, &t.reader, &other_alert).await, "DECLINED"));
}

// ---------------------------------------------------------------------------------------------------
// The action center
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_action_center_filters_orders_and_pages() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("ac-1", "bob@contoso.com", "INBOX"), ("ac-2", "eve@contoso.com", "INBOX")])
            .await;
    let (_, inc) = incident_naming(&app, &t.gw, "ac-alert", &[("ac-2", "eve@contoso.com")]).await;
    let a1 = propose(&app, &t.analyst, ids_input(&ids[0..1], "SOFT_DELETE")).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let a2 = propose(
        &app,
        &t.analyst,
        json!({ "emailIds": [ids[1]], "action": "MOVE_TO_JUNK", "incidentId": inc }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let a3 = propose(&app, &t.analyst, ids_input(&ids, "HARD_DELETE")).await;
    let (i1, i2, i3) = (id_of(&a1), id_of(&a2), id_of(&a3));
    decide(&app, &t.responder, "reject", &i3, None).await;

    let q = "query($f: ActionFilter, $o: ActionOrder, $first: Int, $after: String) { \
             actions(filter: $f, orderBy: $o, first: $first, after: $after) { totalCount \
             pageInfo { hasNextPage endCursor } nodes { id status } } }";
    let list = |vars: Value| {
        let app = &app;
        let reader = t.reader.clone();
        async move { app.ok(&reader, q, vars).await["actions"].clone() }
    };
    let all_ = list(json!({})).await;
    assert_eq!(all_["totalCount"], 3);
    assert_eq!(node_ids(&all_["nodes"]), vec![i3.clone(), i2.clone(), i1.clone()], "newest first");
    let asc = list(json!({ "o": { "field": "CREATED_AT", "direction": "ASC" } })).await;
    assert_eq!(node_ids(&asc["nodes"]), vec![i1.clone(), i2.clone(), i3.clone()]);

    let p1 = list(json!({ "first": 2 })).await;
    assert_eq!(node_ids(&p1["nodes"]), vec![i3.clone(), i2.clone()]);
    assert_eq!(p1["pageInfo"]["hasNextPage"], true);
    assert_eq!(p1["totalCount"], 3);
    let p2 = list(json!({ "first": 2, "after": p1["pageInfo"]["endCursor"] })).await;
    assert_eq!(node_ids(&p2["nodes"]), vec![i1.clone()]);
    assert_eq!(p2["pageInfo"]["hasNextPage"], false);
    let pa = list(json!({ "first": 1, "o": { "direction": "ASC" } })).await;
    let pb =
        list(json!({ "first": 5, "o": { "direction": "ASC" }, "after": pa["pageInfo"]["endCursor"] })).await;
    assert_eq!(node_ids(&pb["nodes"]), vec![i2.clone(), i3.clone()]);
    // A cursor of one order is no cursor of the other.
    let r = app.gql(Some(&t.reader), q, json!({ "after": pa["pageInfo"]["endCursor"] })).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");

    let pending = list(json!({ "f": { "status": ["PENDING"] } })).await;
    assert_eq!(node_ids(&pending["nodes"]), vec![i2.clone(), i1.clone()]);
    assert_eq!(statuses(&pending["nodes"]), vec!["PENDING", "PENDING"]);
    assert_eq!(
        node_ids(&list(json!({ "f": { "status": ["REJECTED", "COMPLETED"] } })).await["nodes"]),
        vec![i3.clone()]
    );
    assert_eq!(node_ids(&list(json!({ "f": { "source": ["MANUAL"] } })).await["nodes"]), vec![i2.clone()]);
    assert_eq!(list(json!({ "f": { "source": ["EXPLORER"] } })).await["totalCount"], 2);
    assert_eq!(node_ids(&list(json!({ "f": { "type": ["HARD_DELETE"] } })).await["nodes"]), vec![i3.clone()]);
    assert_eq!(node_ids(&list(json!({ "f": { "incidentId": inc } })).await["nodes"]), vec![i2.clone()]);
    let since = list(json!({ "f": { "createdAfter": a2["createdAt"] } })).await;
    assert_eq!(node_ids(&since["nodes"]), vec![i3.clone(), i2.clone()]);
    let until = list(json!({ "f": { "createdBefore": a2["createdAt"] } })).await;
    assert_eq!(node_ids(&until["nodes"]), vec![i1.clone()]);
    let none = list(json!({ "f": { "status": ["PENDING"], "type": ["HARD_DELETE"] } })).await;
    assert_eq!(none["totalCount"], 0);

    // Incident.actions, and a copy's actions (newest first).
    let q =
        "query($id: ID!) { incident(id: $id) { actions { totalCount nodes { id } } pendingActionCount } }";
    let i = app.ok(&t.reader, q, json!({ "id": inc })).await["incident"].clone();
    assert_eq!(node_ids(&i["actions"]["nodes"]), vec![i2.clone()]);
    assert_eq!(i["pendingActionCount"], 1);
    let q = "query($id: ID!, $n: Int) { email(id: $id) { actions(first: $n) { id status } } }";
    let e = app.ok(&t.reader, q, json!({ "id": ids[0] })).await["email"].clone();
    assert_eq!(node_ids(&e["actions"]), vec![i3.clone(), i1.clone()]);
    assert_eq!(statuses(&e["actions"]), vec!["REJECTED", "PENDING"]);
    let e = app.ok(&t.reader, q, json!({ "id": ids[0], "n": 1 })).await["email"].clone();
    assert_eq!(node_ids(&e["actions"]), vec![i3.clone()]);

    // Incident.actions pages too (newest first).
    let more = id_of(
        &propose(
            &app,
            &t.analyst,
            json!({ "emailIds": [ids[1]], "action": "SOFT_DELETE", "incidentId": inc }),
        )
        .await,
    );
    let q = "query($id: ID!, $after: String) { incident(id: $id) { actions(first: 1, after: $after) { totalCount \
             pageInfo { hasNextPage endCursor } nodes { id } } } }";
    let p1 = app.ok(&t.reader, q, json!({ "id": inc })).await["incident"]["actions"].clone();
    assert_eq!(node_ids(&p1["nodes"]), vec![more.clone()]);
    assert_eq!(p1["totalCount"], 2);
    assert_eq!(p1["pageInfo"]["hasNextPage"], true);
    let p2 = app.ok(&t.reader, q, json!({ "id": inc, "after": p1["pageInfo"]["endCursor"] })).await
        ["incident"]["actions"]
        .clone();
    assert_eq!(node_ids(&p2["nodes"]), vec![i2.clone()]);
    assert_eq!(p2["pageInfo"]["hasNextPage"], false);

    // Fields of a pending action.
    let full = action(&app, &t.reader, &i2).await;
    assert_eq!(full["type"], "MOVE_TO_JUNK");
    assert_eq!(full["source"], "MANUAL");
    assert_eq!(full["incident"]["id"], inc.as_str());
    assert_eq!(full["fourEyes"], true);
    assert_eq!(full["openTargetCount"], 1);
    assert_eq!(full["startedAt"], Value::Null);
    assert_eq!(full["completedAt"], Value::Null);
    assert!(ts(&full["updatedAt"]) >= ts(&full["createdAt"]));
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_refused_with_bad_user_input() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) = copies(&app, &t.gw, &[("v-1", "bob@contoso.com", "INBOX")]).await;
    let bad = |input: Value| {
        let app = &app;
        let analyst = t.analyst.clone();
        async move {
            let r = propose_resp(app, Some(&analyst), input.clone()).await;
            assert_eq!(code(&r), "BAD_USER_INPUT", "{input}: {r:#}");
            r["errors"][0]["message"].as_str().unwrap_or_default().to_string()
        }
    };
    bad(json!({ "emailIds": ["not-a-uuid"], "action": "SOFT_DELETE" })).await;
    bad(json!({ "emailIds": [], "action": "SOFT_DELETE" })).await;
    bad(json!({ "action": "SOFT_DELETE" })).await;
    bad(json!({ "emailIds": ids, "filter": { "sender": "evil.example" }, "action": "SOFT_DELETE" })).await;
    let many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let m = bad(json!({ "emailIds": many, "action": "SOFT_DELETE" })).await;
    assert!(m.contains("1000"), "{m}");
    bad(json!({ "emailIds": ids, "action": "REMOVE_INBOX_RULE" })).await;
    bad(json!({ "filter": { "sender": "evil.example" }, "action": "REMOVE_INBOX_RULE" })).await;
    bad(json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": "nope" })).await;
    let long = "x".repeat(10_001);
    let m = bad(json!({ "emailIds": ids, "action": "SOFT_DELETE", "comment": long })).await;
    assert!(m.contains("10000"), "{m}");
    let m = bad(json!({ "emailIds": ids, "action": "SOFT_DELETE", "comment": "evil\u{0}comment" })).await;
    assert!(m.contains("NUL"), "{m}");
    let r = propose_resp(
        &app,
        Some(&t.analyst),
        json!({ "emailIds": ids, "action": "SOFT_DELETE", "incidentId": uuid::Uuid::new_v4() }),
    )
    .await;
    assert_eq!(code(&r), "NOT_FOUND");
    let r = app
        .gql(
            Some(&t.analyst),
            &format!("query($i: RemediateEmailsInput!) {{ previewRemediation(input: $i) {{ {PREVIEW} }} }}"),
            json!({ "i": { "emailIds": ["bad"], "action": "SOFT_DELETE" } }),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert_eq!(
        app.ok(&t.reader, "{ actions { totalCount } }", json!({})).await["actions"]["totalCount"],
        0,
        "nothing was stored"
    );

    // Exactly 10,000 characters (not bytes) is fine; blank is no comment.
    let a = propose(
        &app,
        &t.analyst,
        json!({ "emailIds": ids, "action": "SOFT_DELETE", "comment": "é".repeat(10_000) }),
    )
    .await;
    assert_eq!(a["comment"].as_str().map(|c| c.chars().count()), Some(10_000));
    let blank =
        propose(&app, &t.analyst, json!({ "emailIds": ids, "action": "MOVE_TO_JUNK", "comment": "   " }))
            .await;
    assert_eq!(blank["comment"], Value::Null);
    let a = id_of(&a);

    // Decisions: ids and comments.
    for verb in ["approve", "reject", "cancel"] {
        let r = app.gql(Some(&t.admin), &q_decide(verb), json!({ "id": "nope" })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{verb}: {r:#}");
        let r = app.gql(Some(&t.admin), &q_decide(verb), json!({ "id": uuid::Uuid::new_v4() })).await;
        assert_eq!(code(&r), "NOT_FOUND", "{verb}: {r:#}");
        let tok = if verb == "cancel" { &t.analyst } else { &t.responder };
        let r = decide_resp(&app, tok, verb, &a, Some("bad\u{0}")).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{verb}: {r:#}");
        let r = decide_resp(&app, tok, verb, &a, Some(&"y".repeat(10_001))).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{verb}: {r:#}");
    }
    assert_eq!(action(&app, &t.reader, &a).await["status"], "PENDING", "refused decisions change nothing");

    // Reads.
    let r = app.gql(Some(&t.reader), "query { action(id: \"nope\") { id } }", json!({})).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert_eq!(action(&app, &t.reader, &uuid::Uuid::new_v4().to_string()).await, Value::Null);
    for q in [
        "{ actions(first: 101) { totalCount } }",
        "{ actions(after: \"garbage\") { totalCount } }",
        "{ actions(filter: { incidentId: \"nope\" }) { totalCount } }",
        "{ actions(filter: { createdAfter: \"1000-01-01T00:00:00Z\" }) { totalCount } }",
    ] {
        assert_eq!(app.err_code(Some(&t.reader), q, json!({})).await, "BAD_USER_INPUT", "{q}");
    }
    let r = app
        .gql(
            Some(&t.reader),
            "query($id: ID!) { action(id: $id) { targets(first: 101) { totalCount } } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    let mut s = app.subscribe(&t.reader, ACTION_SUB, json!({ "f": { "actionId": "nope" } })).await;
    let v = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
        .await
        .expect("answer")
        .expect("item");
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v:#}");
}

#[tokio::test]
async fn an_action_whose_job_failed_for_good_ends_with_its_open_targets_failed() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("s-1", "a@contoso.com", "INBOX"), ("s-2", "b@contoso.com", "INBOX")]).await;
    let a = propose(&app, &t.analyst, ids_input(&ids, "SOFT_DELETE")).await;
    let id = id_of(&a);
    decide(&app, &t.responder, "approve", &id, None).await;
    // No runner here: the job waits. Its attempts spent (a database down for days), it fails for good.
    let failed = sql(
        &app,
        &format!("UPDATE jobs SET status = 'FAILED', last_error = 'test' WHERE kind = 'ACTION' AND dedupe_key = '{id}'"),
    )
    .await;
    assert_eq!(failed, 1);
    let ended = parapet::actions::stranded::sweep(&app.state.pool, Utc::now()).await.expect("sweep");
    assert_eq!(ended, 1);
    let a = action(&app, &t.reader, &id).await;
    assert_eq!(a["status"], "FAILED", "{a:#}");
    assert_eq!(a["failedCount"], 2);
    assert_eq!(a["openTargetCount"], 0);
    assert!(a["completedAt"].is_string());
    for e in &ids {
        assert_eq!(location(&app, &t.reader, e).await, "INBOX", "nothing moved");
    }
    // Once ended, a sweep finds nothing more.
    let again = parapet::actions::stranded::sweep(&app.state.pool, Utc::now()).await.expect("sweep");
    assert_eq!(again, 0);
}

#[tokio::test]
async fn merging_incidents_brings_their_actions_along() {
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let (ids, _) =
        copies(&app, &t.gw, &[("mg-1", "a@contoso.com", "INBOX"), ("mg-2", "b@contoso.com", "INBOX")]).await;
    let (_, first) = incident_naming(&app, &t.gw, "merge-a", &[("mg-1", "a@contoso.com")]).await;
    let (_, second) = incident_naming(&app, &t.gw, "merge-b", &[("mg-2", "b@contoso.com")]).await;
    assert_ne!(first, second, "two incidents");
    for (id, incident) in [(&ids[0], &first), (&ids[1], &second)] {
        let mut input = ids_input(std::slice::from_ref(id), "SOFT_DELETE");
        input["incidentId"] = json!(incident);
        propose(&app, &t.analyst, input).await;
    }
    let merged = app
        .ok(
            &t.analyst,
            "mutation($i: [ID!]!) { mergeIncidents(incidentIds: $i, comment: \"same campaign\") { id } }",
            json!({ "i": [first, second] }),
        )
        .await["mergeIncidents"]["id"]
        .as_str()
        .expect("survivor")
        .to_string();
    let gone = if merged == first { &second } else { &first };
    assert_eq!(pending_count(&app, &t.reader, &merged).await, 2, "the survivor holds both pending actions");
    assert_eq!(pending_count(&app, &t.reader, gone).await, 0);
    let d = app
        .ok(
            &t.reader,
            "query($id: ID!) { incident(id: $id) { actions { totalCount nodes { incidentId } } } }",
            json!({ "id": merged }),
        )
        .await;
    assert_eq!(d["incident"]["actions"]["totalCount"], 2, "{d:#}");
    for a in d["incident"]["actions"]["nodes"].as_array().expect("nodes") {
        assert_eq!(a["incidentId"], json!(merged));
    }
}
