//! Submissions through the API: results computed from the tenant's own data (verdicts, delivery, the
//! allow/block list), the optional entry (admins only, stored with the submission or not at all), the
//! list with its filter and count, roles, tenants, and bad input.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const PUSH: &str =
    "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { items { status error email { id } } } }";
const SUBMIT: &str =
    "mutation($i: SubmitInput!) { submit(input: $i) { id contentType category submittedBy status \
    result resultCategory resultDetail emailId email { id } sender subject url fileSha256 \
    allowBlockEntry { id kind value action } allowBlockEntryId createdAt completedAt } }";
const LIST: &str = "query($f: SubmissionFilterInput, $n: Int, $after: String) { submissions(filter: $f, first: $n, \
    after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id contentType category result } } }";
const CREATE_ENTRY: &str =
    "mutation($i: CreateAllowBlockEntryInput!) { createAllowBlockEntry(input: $i) { id } }";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn copy(app: &TestApp, tenant: &str, nmid: &str, sender: &str, extra: Value) -> String {
    let gw = app.token(tenant, "gw@x.example", &[Role::Ingestor]);
    let mut r = json!({ "networkMessageId": nmid, "recipient": format!("bob@{tenant}.com"),
                        "receivedAt": iso(Utc::now() - Duration::hours(1)), "headerFrom": sender,
                        "envelopeSender": sender, "subject": "Quarterly invoice",
                        "urls": ["https://evil.example/pay"],
                        "attachments": [{ "name": "a.pdf", "sha256": "f".repeat(64) }] });
    if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let d = app.ok(&gw, PUSH, json!({ "e": [r] })).await;
    d["ingestEmails"]["items"][0]["email"]["id"].as_str().expect("a stored copy").to_string()
}

async fn submit(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, SUBMIT, json!({ "i": input })).await["submit"].clone()
}

#[tokio::test]
async fn results_come_from_the_tenants_own_data() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "rita@contoso.com", &[Role::Reader]);
    let phish =
        copy(&app, "contoso", "s-1", "billing@evil.example", json!({ "threatTypes": ["PHISH"] })).await;
    let s =
        submit(&app, &reader, json!({ "contentType": "EMAIL", "emailId": phish, "category": "PHISHING" }))
            .await;
    assert_eq!(s["result"], "Should have been blocked", "{s:#}");
    assert_eq!(s["resultCategory"], "THREATS_FOUND");
    assert_eq!(
        (s["status"].clone(), s["submittedBy"].clone()),
        (json!("COMPLETED"), json!("rita@contoso.com"))
    );
    assert_eq!(s["email"]["id"], phish.as_str());
    assert_eq!(
        (s["sender"].clone(), s["subject"].clone()),
        (json!("billing@evil.example"), json!("Quarterly invoice"))
    );
    assert!(s["completedAt"].is_string() && s["allowBlockEntry"].is_null());

    // Quarantined for spam only, reported as clean: should not have been blocked.
    let spam = copy(&app, "contoso", "s-2", "news@shop.example",
        json!({ "threatTypes": ["SPAM"], "deliveryAction": "DELIVERED_TO_JUNK", "urls": [], "attachments": [] })).await;
    let s = submit(&app, &reader, json!({ "contentType": "EMAIL", "emailId": spam, "category": "NOT_JUNK" }))
        .await;
    assert_eq!(s["result"], "Should not have been blocked", "{s:#}");
    // A clean delivered copy reported as phish: nothing in Parapet marks it.
    let clean =
        copy(&app, "contoso", "s-3", "friend@good.example", json!({ "urls": [], "attachments": [] })).await;
    let s =
        submit(&app, &reader, json!({ "contentType": "EMAIL", "emailId": clean, "category": "PHISHING" }))
            .await;
    assert_eq!(
        (s["result"].clone(), s["resultCategory"].clone()),
        (json!("No threats found"), json!("NO_THREATS_FOUND"))
    );

    // A URL some copies carried as phish; a file nobody has seen.
    let s = submit(
        &app,
        &reader,
        json!({ "contentType": "URL", "url": "HTTPS://Evil.example/pay", "category": "PHISHING" }),
    )
    .await;
    assert_eq!(s["url"], "https://evil.example/pay");
    assert_eq!(s["result"], "Should have been blocked", "{s:#}");
    let s = submit(
        &app,
        &reader,
        json!({ "contentType": "FILE", "fileSha256": "0".repeat(64), "category": "MALWARE" }),
    )
    .await;
    assert_eq!(s["resultCategory"], "NO_THREATS_FOUND", "{s:#}");

    // The list shows them, newest first, filtered and counted; another tenant sees none.
    let d = app.ok(&reader, LIST, json!({ "n": 2 })).await["submissions"].clone();
    assert_eq!(d["totalCount"], 5);
    assert_eq!(d["nodes"][0]["contentType"], "FILE");
    let next = app.ok(&reader, LIST, json!({ "n": 10, "after": d["pageInfo"]["endCursor"] })).await;
    assert_eq!(next["submissions"]["nodes"].as_array().map(Vec::len), Some(3));
    let d =
        app.ok(&reader, LIST, json!({ "f": { "contentType": ["EMAIL"], "category": ["PHISHING"] } })).await;
    assert_eq!(d["submissions"]["totalCount"], 2);
    let other = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    assert_eq!(app.ok(&other, LIST, json!({})).await["submissions"]["totalCount"], 0);
}

#[tokio::test]
async fn the_list_decides_before_the_verdicts() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    app.ok(
        &admin,
        CREATE_ENTRY,
        json!({ "i": { "kind": "SENDER", "value": "promo@deals.example", "action": "ALLOW" } }),
    )
    .await;
    let allowed = copy(
        &app,
        "contoso",
        "l-1",
        "promo@deals.example",
        json!({ "threatTypes": ["SPAM"], "urls": [], "attachments": [] }),
    )
    .await;
    let s = submit(&app, &reader, json!({ "contentType": "EMAIL", "emailId": allowed, "category": "SPAM" }))
        .await;
    assert_eq!(s["result"], "Allowed by tenant allow list", "{s:#}");
    assert!(s["resultDetail"].as_str().is_some_and(|d| d.contains("promo@deals.example")), "{s:#}");

    app.ok(
        &admin,
        CREATE_ENTRY,
        json!({ "i": { "kind": "URL", "value": "https://blocked.example/", "action": "BLOCK" } }),
    )
    .await;
    let s = submit(
        &app,
        &reader,
        json!({ "contentType": "URL", "url": "https://blocked.example/x", "category": "NOT_JUNK" }),
    )
    .await;
    assert_eq!(s["result"], "Blocked by tenant block list", "{s:#}");
}

#[tokio::test]
async fn an_admin_may_create_the_entry_with_the_submission() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let id = copy(&app, "contoso", "e-1", "ceo@lookalike.example", json!({ "threatTypes": ["PHISH"] })).await;
    let block = json!({ "action": "BLOCK", "expiresAt": iso(Utc::now() + Duration::days(20)) });

    // A reader may submit but not create entries: refused whole, nothing stored.
    let input =
        json!({ "contentType": "EMAIL", "emailId": id, "category": "PHISHING", "createEntry": block });
    assert_eq!(app.err_code(Some(&reader), SUBMIT, json!({ "i": input })).await, "FORBIDDEN");
    assert_eq!(app.ok(&reader, LIST, json!({})).await["submissions"]["totalCount"], 0);

    let s = submit(&app, &admin, input.clone()).await;
    assert_eq!(s["allowBlockEntry"]["kind"], "SENDER", "{s:#}");
    assert_eq!(s["allowBlockEntry"]["value"], "ceo@lookalike.example");
    assert_eq!(s["allowBlockEntry"]["action"], "BLOCK");
    assert_eq!(s["allowBlockEntryId"], s["allowBlockEntry"]["id"]);
    let audit = app.ok(&admin, "{ auditLog(first: 5) { nodes { targetKind action } } }", json!({})).await;
    assert_eq!(audit["auditLog"]["nodes"][0]["targetKind"], "ALLOW_BLOCK_ENTRY", "{audit:#}");

    // Now the list blocks that sender: a clean report says so. A second entry for it is a conflict, and
    // then the submission is not stored either.
    let s =
        submit(&app, &reader, json!({ "contentType": "EMAIL", "emailId": id, "category": "NOT_JUNK" })).await;
    assert_eq!(s["result"], "Blocked by tenant block list");
    assert_eq!(app.err_code(Some(&admin), SUBMIT, json!({ "i": input })).await, "CONFLICT");
    assert_eq!(app.ok(&reader, LIST, json!({})).await["submissions"]["totalCount"], 2);

    // A file submission creates a file-hash entry.
    let s = submit(
        &app,
        &admin,
        json!({ "contentType": "FILE", "fileSha256": "E".repeat(64), "category": "MALWARE",
                                          "createEntry": { "action": "BLOCK", "neverExpire": true } }),
    )
    .await;
    assert_eq!(
        (s["allowBlockEntry"]["kind"].clone(), s["allowBlockEntry"]["value"].clone()),
        (json!("FILE_HASH"), json!("e".repeat(64)))
    );
}

#[tokio::test]
async fn bad_submissions_are_refused_with_clear_errors() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let id = copy(&app, "contoso", "b-1", "x@evil.example", json!({})).await;
    let theirs = copy(&app, "fabrikam", "b-2", "x@evil.example", json!({})).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "contentType": "EMAIL", "emailId": uuid::Uuid::new_v4().to_string(), "category": "SPAM" }),
            "NOT_FOUND",
        ),
        (json!({ "contentType": "EMAIL", "emailId": theirs, "category": "SPAM" }), "NOT_FOUND"),
        (json!({ "contentType": "EMAIL", "emailId": "nope", "category": "SPAM" }), "BAD_USER_INPUT"),
        (json!({ "contentType": "EMAIL", "category": "SPAM" }), "BAD_USER_INPUT"),
        (
            json!({ "contentType": "EMAIL", "emailId": id, "url": "https://x.example/", "category": "SPAM" }),
            "BAD_USER_INPUT",
        ),
        (json!({ "contentType": "URL", "url": "not a url", "category": "PHISHING" }), "BAD_USER_INPUT"),
        (
            json!({ "contentType": "URL", "url": "https://x.example/\u{0}", "category": "PHISHING" }),
            "BAD_USER_INPUT",
        ),
        (json!({ "contentType": "FILE", "fileSha256": "123", "category": "MALWARE" }), "BAD_USER_INPUT"),
    ];
    for (input, code) in cases {
        assert_eq!(app.err_code(Some(&reader), SUBMIT, json!({ "i": input.clone() })).await, code, "{input}");
    }
    assert_eq!(app.ok(&reader, LIST, json!({})).await["submissions"]["totalCount"], 0, "nothing stored");
    let gw = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let ok_input = json!({ "i": { "contentType": "EMAIL", "emailId": id, "category": "SPAM" } });
    assert_eq!(app.err_code(Some(&gw), SUBMIT, ok_input.clone()).await, "FORBIDDEN");
    assert_eq!(app.err_code(None, SUBMIT, ok_input).await, "UNAUTHENTICATED");
    assert_eq!(app.err_code(Some(&gw), LIST, json!({})).await, "FORBIDDEN");
}
