//! The tenant allow/block list and the tenant audit log, through the GraphQL API with real tokens: who
//! may read and write, tenant isolation, validation with clear messages, default expiries, expired
//! entries, updates, deletes, paging, the audit trail of every list and settings write; and the matcher
//! against a real database (one statement per batch, expiry, blocks winning, `touch`).

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use parapet::allowblock::{self, verdict_for, CopyFacts, Decision, Probe};
use parapet::auth::Role;
use parapet::domain::enums::{PhishConfidence, ThreatType};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use uuid::Uuid;

macro_rules! fields {
    () => {
        "id kind value action notes expiresAt neverExpire removeAfterDays expired lastUsedAt createdBy \
         createdAt updatedAt updatedBy"
    };
}

const CREATE: &str = concat!(
    "mutation($i: CreateAllowBlockEntryInput!) { createAllowBlockEntry(input: $i) { ",
    fields!(),
    " } }"
);
const UPDATE: &str = concat!(
    "mutation($id: ID!, $i: UpdateAllowBlockEntryInput!) { updateAllowBlockEntry(id: $id, input: $i) { ",
    fields!(),
    " } }"
);
const DELETE: &str = "mutation($id: ID!) { deleteAllowBlockEntry(id: $id) }";
const GET: &str = concat!("query($id: ID!) { allowBlockEntry(id: $id) { ", fields!(), " } }");
const LIST: &str = concat!(
    "query($f: AllowBlockEntryFilterInput, $n: Int, $after: String) { allowBlockEntries(filter: $f, \
     first: $n, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } nodes { ",
    fields!(),
    " } } }"
);
const AUDIT: &str = "query($n: Int, $after: String) { auditLog(first: $n, after: $after) { totalCount \
                     pageInfo { hasNextPage endCursor } nodes { id actor actorName targetKind targetId \
                     action before after at } } }";
const SETTINGS: &str = "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { \
                        maxKeyPrevalence } }";

const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn admin(app: &TestApp, tenant: &str) -> String {
    app.token(tenant, &format!("admin@{tenant}.com"), &[Role::Admin])
}

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, CREATE, json!({ "i": input })).await["createAllowBlockEntry"].clone()
}

async fn list(app: &TestApp, token: &str, filter: Value) -> Value {
    app.ok(token, LIST, json!({ "f": filter, "n": 100 })).await["allowBlockEntries"].clone()
}

/// The error of a request that must fail: its code and message.
async fn refused(app: &TestApp, token: &str, query: &str, vars: Value) -> (String, String) {
    let resp = app.gql(Some(token), query, vars).await;
    let e = &resp["errors"][0];
    assert!(e.is_object(), "expected an error, got {resp:#}");
    (
        e["extensions"]["code"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn id_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().unwrap_or_default()).expect("a UUID id")
}

fn utc(v: &Value) -> DateTime<Utc> {
    ts(v).with_timezone(&Utc)
}

async fn db(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.db_url).await.expect("connect to the test database")
}

/// Makes an entry expired a minute ago, as time would.
async fn expire(app: &TestApp, id: Uuid) {
    use diesel_async::RunQueryDsl;
    let mut c = db(app).await;
    diesel::sql_query(
        "UPDATE allow_block_entries SET expires_at = now() - interval '1 minute', never_expire = false \
         WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut c)
    .await
    .expect("expire the entry");
}

#[tokio::test]
async fn roles_read_and_write_as_the_model_says() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let entry =
        create(&app, &admin, json!({ "kind": "SENDER", "value": "evil.example", "action": "BLOCK" })).await;
    let id = entry["id"].clone();

    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    assert_eq!(list(&app, &reader, json!(null)).await["totalCount"], 1);
    assert_eq!(app.ok(&reader, GET, json!({ "id": id })).await["allowBlockEntry"]["value"], "evil.example");

    let input = json!({ "i": { "kind": "SENDER", "value": "other.example", "action": "BLOCK" } });
    for role in [Role::Reader, Role::Analyst, Role::Responder, Role::Ingestor] {
        let t = app.token("contoso", "x@contoso.com", &[role]);
        assert_eq!(app.err_code(Some(&t), CREATE, input.clone()).await, "FORBIDDEN", "create as {role:?}");
        let upd = json!({ "id": id, "i": { "notes": "x" } });
        assert_eq!(app.err_code(Some(&t), UPDATE, upd).await, "FORBIDDEN", "update as {role:?}");
        assert_eq!(
            app.err_code(Some(&t), DELETE, json!({ "id": id })).await,
            "FORBIDDEN",
            "delete as {role:?}"
        );
        assert_eq!(app.err_code(Some(&t), AUDIT, json!({})).await, "FORBIDDEN", "audit as {role:?}");
    }
    let ingestor = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    assert_eq!(app.err_code(Some(&ingestor), LIST, json!({})).await, "FORBIDDEN");
    assert_eq!(app.err_code(Some(&ingestor), GET, json!({ "id": id })).await, "FORBIDDEN");
    for q in [LIST, AUDIT] {
        assert_eq!(app.err_code(None, q, json!({})).await, "UNAUTHENTICATED");
    }
    assert_eq!(app.err_code(None, CREATE, input).await, "UNAUTHENTICATED");
    assert_eq!(app.err_code(None, DELETE, json!({ "id": id })).await, "UNAUTHENTICATED");

    // Nothing the refused callers sent was stored.
    assert_eq!(list(&app, &admin, json!(null)).await["totalCount"], 1);
    assert_eq!(app.ok(&admin, AUDIT, json!({})).await["auditLog"]["totalCount"], 1);
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::new().await;
    let contoso = admin(&app, "contoso");
    let fabrikam = admin(&app, "fabrikam");
    let mine =
        create(&app, &contoso, json!({ "kind": "URL", "value": "evil.example", "action": "BLOCK" })).await;
    create(&app, &contoso, json!({ "kind": "IP", "value": "203.0.113.7", "action": "BLOCK" })).await;
    // The same value in another tenant is no duplicate.
    create(&app, &fabrikam, json!({ "kind": "URL", "value": "evil.example", "action": "ALLOW" })).await;

    let theirs = list(&app, &fabrikam, json!(null)).await;
    assert_eq!(theirs["totalCount"], 1);
    assert_eq!(theirs["nodes"][0]["action"], "ALLOW");
    let filtered = list(&app, &fabrikam, json!({ "kind": "IP" })).await;
    assert_eq!((filtered["totalCount"].clone(), filtered["nodes"].clone()), (json!(0), json!([])));
    assert_eq!(list(&app, &contoso, json!(null)).await["totalCount"], 2);

    let id = mine["id"].clone();
    assert_eq!(app.ok(&fabrikam, GET, json!({ "id": id })).await["allowBlockEntry"], Value::Null);
    let (code, msg) =
        refused(&app, &fabrikam, UPDATE, json!({ "id": id, "i": { "notes": "mine now" } })).await;
    assert_eq!(code, "NOT_FOUND");
    assert!(!msg.contains("contoso") && !msg.contains("evil"), "{msg}");
    let (code, _) = refused(&app, &fabrikam, DELETE, json!({ "id": id })).await;
    assert_eq!(code, "NOT_FOUND");
    // A made-up id answers the same way.
    let (code, _) = refused(&app, &fabrikam, DELETE, json!({ "id": Uuid::now_v7() })).await;
    assert_eq!(code, "NOT_FOUND");

    let entry = app.ok(&contoso, GET, json!({ "id": id })).await["allowBlockEntry"].clone();
    assert_eq!((entry["notes"].clone(), entry["value"].clone()), (Value::Null, json!("evil.example")));
    let audit = app.ok(&fabrikam, AUDIT, json!({})).await["auditLog"].clone();
    assert_eq!(audit["totalCount"], 1, "only fabrikam's own write: {audit:#}");
    assert_eq!(app.ok(&contoso, AUDIT, json!({})).await["auditLog"]["totalCount"], 2);
}

#[tokio::test]
async fn bad_input_is_refused_with_clear_messages_and_stores_nothing() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let in_days = |d: i64| (Utc::now() + Duration::days(d)).to_rfc3339();
    let long_url = format!("https://evil.example/{}", "a".repeat(240));
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "kind": "FILE_HASH", "value": "abc123", "action": "BLOCK" }), "SHA-256"),
        (json!({ "kind": "FILE_HASH", "value": "z".repeat(64), "action": "BLOCK" }), "SHA-256"),
        (json!({ "kind": "URL", "value": "not a url", "action": "BLOCK" }), "is not a URL"),
        (json!({ "kind": "URL", "value": "javascript:alert(1)", "action": "BLOCK" }), "is not a URL"),
        (json!({ "kind": "URL", "value": long_url, "action": "BLOCK" }), "at most 250 characters"),
        (json!({ "kind": "IP", "value": "10.0.0.0/33", "action": "BLOCK" }), "/1 to /32"),
        (json!({ "kind": "IP", "value": "10.0.0.300", "action": "BLOCK" }), "not an IPv4 or IPv6"),
        (json!({ "kind": "SENDER", "value": "bob@", "action": "BLOCK" }), "is not a sender"),
        (json!({ "kind": "SENDER", "value": "not an address", "action": "BLOCK" }), "is not a sender"),
        (json!({ "kind": "SENDER", "value": "  ", "action": "BLOCK" }), "value must not be empty"),
        (json!({ "kind": "SENDER", "value": "evil\u{0}.example", "action": "BLOCK" }), "NUL"),
        (
            json!({ "kind": "SENDER", "value": "evil.example", "action": "BLOCK", "expiresAt": in_days(91) }),
            "at most 90 days",
        ),
        (
            json!({ "kind": "SENDER", "value": "evil.example", "action": "BLOCK", "expiresAt": in_days(-1) }),
            "expiresAt must lie in the future",
        ),
        (
            json!({ "kind": "SENDER", "value": "good.example", "action": "ALLOW", "expiresAt": in_days(31) }),
            "at most 30 days",
        ),
        (
            json!({ "kind": "SENDER", "value": "good.example", "action": "ALLOW", "neverExpire": true }),
            "neverExpire",
        ),
        (
            json!({ "kind": "SENDER", "value": "evil.example", "action": "BLOCK", "neverExpire": true,
                    "expiresAt": in_days(5) }),
            "not both",
        ),
        (
            json!({ "kind": "SENDER", "value": "evil.example", "action": "BLOCK",
                    "notes": "n".repeat(1001) }),
            "notes is longer than 1000",
        ),
    ];
    for (input, says) in cases {
        let (code, msg) = refused(&app, &admin, CREATE, json!({ "i": input })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{input}: {msg}");
        assert!(msg.contains(says), "{input}: message {msg:?} should say {says:?}");
        assert!(msg.len() < 400, "messages quote only an excerpt: {msg}");
    }
    // An unknown kind is not valid GraphQL at all.
    let (code, _) = refused(
        &app,
        &admin,
        CREATE,
        json!({ "i": { "kind": "DOMAIN", "value": "x.example", "action": "BLOCK" } }),
    )
    .await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(list(&app, &admin, json!(null)).await["totalCount"], 0, "nothing was stored");
    assert_eq!(app.ok(&admin, AUDIT, json!({})).await["auditLog"]["totalCount"], 0);

    // Duplicates: same kind and normalised value, whatever the action.
    let first =
        create(&app, &admin, json!({ "kind": "SENDER", "value": "Evil.Example", "action": "BLOCK" })).await;
    for (value, action) in [(" evil.example ", "BLOCK"), ("EVIL.EXAMPLE", "ALLOW")] {
        let (code, msg) = refused(
            &app,
            &admin,
            CREATE,
            json!({ "i": { "kind": "SENDER", "value": value, "action": action } }),
        )
        .await;
        assert_eq!(code, "CONFLICT", "{value} {action}");
        assert!(msg.contains(first["id"].as_str().unwrap_or("?")) && msg.contains("BLOCK"), "{msg}");
    }
    // The same text in another list is another entry.
    create(&app, &admin, json!({ "kind": "URL", "value": "evil.example", "action": "BLOCK" })).await;

    // Updates are checked alike, and a value cannot be changed at all.
    let id = first["id"].clone();
    let (code, msg) =
        refused(&app, &admin, UPDATE, json!({ "id": id, "i": { "expiresAt": in_days(120) } })).await;
    assert_eq!((code.as_str(), msg.contains("at most 90 days")), ("BAD_USER_INPUT", true), "{msg}");
    let (code, _) = refused(&app, &admin, UPDATE, json!({ "id": id, "i": { "value": "x.example" } })).await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    let (code, _) = refused(&app, &admin, UPDATE, json!({ "id": "not-a-uuid", "i": {} })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn values_are_normalised_and_expiries_default() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let upper = HASH.to_uppercase();
    let cases = [
        ("SENDER", " Bob@Evil.Example ", "bob@evil.example"),
        ("SENDER", "*.Evil.Example", "*.evil.example"),
        ("URL", "HTTPS://Evil.Example/Pay#top", "https://evil.example/Pay"),
        ("URL", "Evil.Example/login", "evil.example/login"),
        ("FILE_HASH", upper.as_str(), HASH),
        ("IP", "10.1.2.3/8", "10.0.0.0/8"),
        ("IP", "2001:DB8::1", "2001:db8::1"),
    ];
    for (kind, value, stored) in cases {
        let e = create(&app, &admin, json!({ "kind": kind, "value": value, "action": "BLOCK" })).await;
        assert_eq!(e["value"], stored, "{kind} {value}");
        // A block lasts 30 days by default.
        assert_eq!(utc(&e["expiresAt"]) - utc(&e["createdAt"]), Duration::days(30), "{kind} {value}");
        assert_eq!((e["neverExpire"].clone(), e["expired"].clone()), (json!(false), json!(false)));
        assert_eq!(e["removeAfterDays"], Value::Null);
        assert_eq!(
            (e["createdBy"].clone(), e["updatedBy"].clone()),
            (json!("admin@contoso.com"), json!("admin@contoso.com"))
        );
        assert_eq!(e["lastUsedAt"], Value::Null);
    }
    // An allow expires 45 days after its last use (its creation until then).
    let allow = create(
        &app,
        &admin,
        json!({ "kind": "SENDER", "value": "good.example", "action": "ALLOW",
                                             "notes": "  partner  " }),
    )
    .await;
    assert_eq!(utc(&allow["expiresAt"]) - utc(&allow["createdAt"]), Duration::days(45));
    assert_eq!((allow["removeAfterDays"].clone(), allow["notes"].clone()), (json!(45), json!("partner")));
    // Never, or a chosen date.
    let never = create(
        &app,
        &admin,
        json!({ "kind": "SENDER", "value": "never.example", "action": "BLOCK",
                                             "neverExpire": true }),
    )
    .await;
    assert_eq!((never["expiresAt"].clone(), never["neverExpire"].clone()), (Value::Null, json!(true)));
    let at = (Utc::now() + Duration::days(90) - Duration::minutes(1)).to_rfc3339();
    let dated = create(
        &app,
        &admin,
        json!({ "kind": "SENDER", "value": "dated.example", "action": "BLOCK",
                                             "expiresAt": at }),
    )
    .await;
    assert_eq!(utc(&dated["expiresAt"]).timestamp_micros(), utc(&json!(at)).timestamp_micros());
    let at = (Utc::now() + Duration::days(30) - Duration::minutes(1)).to_rfc3339();
    let dated_allow = create(
        &app,
        &admin,
        json!({ "kind": "URL", "value": "partner.example", "action": "ALLOW",
                                                   "expiresAt": at }),
    )
    .await;
    assert_eq!(dated_allow["removeAfterDays"], Value::Null, "a chosen date is not moved by use");
}

#[tokio::test]
async fn expired_entries_are_flagged_and_filtered() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let old =
        create(&app, &admin, json!({ "kind": "SENDER", "value": "old.example", "action": "BLOCK" })).await;
    let never = create(
        &app,
        &admin,
        json!({ "kind": "SENDER", "value": "never.example", "action": "BLOCK",
                                             "neverExpire": true }),
    )
    .await;
    create(&app, &admin, json!({ "kind": "SENDER", "value": "new.example", "action": "ALLOW" })).await;
    expire(&app, id_of(&old)).await;

    let got = app.ok(&admin, GET, json!({ "id": old["id"] })).await["allowBlockEntry"].clone();
    assert_eq!(got["expired"], true);
    let expired = list(&app, &admin, json!({ "expired": true })).await;
    assert_eq!(expired["totalCount"], 1);
    assert_eq!(expired["nodes"][0]["value"], "old.example");
    let active = list(&app, &admin, json!({ "expired": false })).await;
    assert_eq!(active["totalCount"], 2);
    let values: BTreeSet<String> = active["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["value"].as_str().map(String::from))
        .collect();
    assert_eq!(values, BTreeSet::from(["never.example".to_string(), "new.example".to_string()]));
    assert!(active["nodes"].as_array().into_iter().flatten().all(|n| n["expired"] == false));
    assert_eq!(list(&app, &admin, json!(null)).await["totalCount"], 3, "expired entries stay listed");

    // A duplicate of an expired entry names it; giving it a new expiry brings it back.
    let (code, msg) = refused(
        &app,
        &admin,
        CREATE,
        json!({ "i": { "kind": "SENDER", "value": "old.example", "action": "BLOCK" } }),
    )
    .await;
    assert_eq!(code, "CONFLICT");
    assert!(msg.contains("expired") && msg.contains(old["id"].as_str().unwrap_or("?")), "{msg}");
    let revived = app.ok(&admin, UPDATE, json!({ "id": old["id"], "i": { "neverExpire": false } })).await
        ["updateAllowBlockEntry"]
        .clone();
    assert_eq!(revived["expired"], false);
    assert_eq!(list(&app, &admin, json!({ "expired": true })).await["totalCount"], 0);
    assert_eq!(never["expired"], false);
}

#[tokio::test]
async fn updates_change_notes_and_expiry_but_never_the_value() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let e = create(
        &app,
        &admin,
        json!({ "kind": "URL", "value": "https://evil.example/pay", "action": "BLOCK",
                                         "notes": "campaign 7" }),
    )
    .await;
    let id = e["id"].clone();
    let other = app.token("contoso", "second@contoso.com", &[Role::Admin]);

    let at = (Utc::now() + Duration::days(60)).to_rfc3339();
    let u = app
        .ok(&other, UPDATE, json!({ "id": id, "i": { "notes": "campaign 7 and 8", "expiresAt": at } }))
        .await["updateAllowBlockEntry"]
        .clone();
    assert_eq!(u["notes"], "campaign 7 and 8");
    assert_eq!(utc(&u["expiresAt"]).timestamp_micros(), utc(&json!(at)).timestamp_micros());
    assert_eq!(
        (u["value"].clone(), u["kind"].clone(), u["action"].clone()),
        (e["value"].clone(), json!("URL"), json!("BLOCK"))
    );
    assert_eq!(
        (u["createdBy"].clone(), u["updatedBy"].clone()),
        (json!("admin@contoso.com"), json!("second@contoso.com"))
    );
    assert!(utc(&u["updatedAt"]) > utc(&e["updatedAt"]));
    assert_eq!(u["createdAt"], e["createdAt"]);

    // Omitted fields stay; never; back to the default; clearing the notes.
    let u = app.ok(&admin, UPDATE, json!({ "id": id, "i": { "neverExpire": true } })).await
        ["updateAllowBlockEntry"]
        .clone();
    assert_eq!(
        (u["neverExpire"].clone(), u["expiresAt"].clone(), u["notes"].clone()),
        (json!(true), Value::Null, json!("campaign 7 and 8"))
    );
    let u = app.ok(&admin, UPDATE, json!({ "id": id, "i": { "neverExpire": false, "notes": null } })).await
        ["updateAllowBlockEntry"]
        .clone();
    assert_eq!((u["neverExpire"].clone(), u["notes"].clone()), (json!(false), Value::Null));
    assert_eq!(
        utc(&u["expiresAt"]) - utc(&u["updatedAt"]),
        Duration::days(30),
        "the default counts from the reset"
    );
    let u = app.ok(&admin, UPDATE, json!({ "id": id, "i": {} })).await["updateAllowBlockEntry"].clone();
    assert_eq!(u["value"], "https://evil.example/pay");

    // An allow reset to its default follows the last-use rule again.
    let a = create(
        &app,
        &admin,
        json!({ "kind": "SENDER", "value": "good.example", "action": "ALLOW",
                                         "expiresAt": (Utc::now() + Duration::days(3)).to_rfc3339() }),
    )
    .await;
    assert_eq!(a["removeAfterDays"], Value::Null);
    let a = app.ok(&admin, UPDATE, json!({ "id": a["id"], "i": { "neverExpire": false } })).await
        ["updateAllowBlockEntry"]
        .clone();
    assert_eq!(a["removeAfterDays"], 45);
    let (code, _) =
        refused(&app, &admin, UPDATE, json!({ "id": a["id"], "i": { "neverExpire": true } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn delete_removes_the_entry() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let e = create(&app, &admin, json!({ "kind": "FILE_HASH", "value": HASH, "action": "BLOCK" })).await;
    let id = e["id"].clone();
    assert_eq!(app.ok(&admin, DELETE, json!({ "id": id })).await["deleteAllowBlockEntry"], id);
    assert_eq!(app.ok(&admin, GET, json!({ "id": id })).await["allowBlockEntry"], Value::Null);
    assert_eq!(list(&app, &admin, json!(null)).await["totalCount"], 0);
    assert_eq!(app.err_code(Some(&admin), DELETE, json!({ "id": id })).await, "NOT_FOUND");
    // The value may be listed again.
    create(&app, &admin, json!({ "kind": "FILE_HASH", "value": HASH, "action": "ALLOW" })).await;
}

#[tokio::test]
async fn the_list_pages_with_first_and_after() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let mut made = vec![];
    for i in 0..7 {
        let action = if i % 2 == 0 { "BLOCK" } else { "ALLOW" };
        let e = create(
            &app,
            &admin,
            json!({ "kind": "SENDER", "value": format!("s{i}.example"), "action": action }),
        )
        .await;
        made.push(e["id"].as_str().unwrap_or_default().to_string());
    }
    create(&app, &admin, json!({ "kind": "URL", "value": "s1.example", "action": "BLOCK" })).await;

    let filter = json!({ "kind": "SENDER" });
    let mut seen = vec![];
    let mut after = Value::Null;
    loop {
        let page = app.ok(&admin, LIST, json!({ "f": filter, "n": 3, "after": after })).await
            ["allowBlockEntries"]
            .clone();
        assert_eq!(page["totalCount"], 7);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !after.is_null());
        seen.extend(
            page["nodes"].as_array().into_iter().flatten().filter_map(|n| n["id"].as_str().map(String::from)),
        );
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    made.reverse();
    assert_eq!(seen, made, "newest first, each once");

    let blocks = list(&app, &admin, json!({ "action": "BLOCK" })).await;
    assert_eq!(blocks["totalCount"], 5);
    let some = list(&app, &admin, json!({ "valueContains": "S1.", "kind": "SENDER" })).await;
    assert_eq!(
        (some["totalCount"].clone(), some["nodes"][0]["value"].clone()),
        (json!(1), json!("s1.example"))
    );
    let literal = list(&app, &admin, json!({ "valueContains": "%" })).await;
    assert_eq!(literal["totalCount"], 0, "LIKE characters match literally");

    let (code, _) = refused(&app, &admin, LIST, json!({ "n": 101 })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = refused(&app, &admin, LIST, json!({ "after": "bogus" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    // A cursor of another list does not fit.
    let audit_cursor =
        app.ok(&admin, AUDIT, json!({ "n": 1 })).await["auditLog"]["pageInfo"]["endCursor"].clone();
    let (code, _) = refused(&app, &admin, LIST, json!({ "after": audit_cursor })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn the_audit_log_records_every_list_and_settings_write() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let e = create(
        &app,
        &admin,
        json!({ "kind": "IP", "value": "198.51.100.0/24", "action": "BLOCK",
                                         "notes": "botnet" }),
    )
    .await;
    let id = e["id"].clone();
    app.ok(&admin, UPDATE, json!({ "id": id, "i": { "notes": "botnet C2" } })).await;
    app.ok(&admin, DELETE, json!({ "id": id })).await;
    app.ok(&admin, SETTINGS, json!({ "i": { "maxKeyPrevalence": 50 } })).await;
    // A refused write leaves no trace.
    let (code, _) = refused(&app, &admin, SETTINGS, json!({ "i": { "maxKeyPrevalence": 0 } })).await;
    assert_eq!(code, "BAD_USER_INPUT");

    let log = app.ok(&admin, AUDIT, json!({ "n": 10 })).await["auditLog"].clone();
    assert_eq!(log["totalCount"], 4, "{log:#}");
    let n = |i: usize| log["nodes"][i].clone();
    // Newest first.
    let settings = n(0);
    assert_eq!(
        (settings["targetKind"].clone(), settings["action"].clone()),
        (json!("TENANT_SETTINGS"), json!("UPDATE"))
    );
    assert_eq!(settings["targetId"], Value::Null);
    assert_eq!(
        (settings["before"]["maxKeyPrevalence"].clone(), settings["after"]["maxKeyPrevalence"].clone()),
        (json!(1000), json!(50))
    );
    assert_eq!(settings["after"]["strongKeyWindowHours"], 72);
    assert_eq!(
        (settings["actor"].clone(), settings["actorName"].clone()),
        (json!("admin@contoso.com"), json!("admin"))
    );

    let deleted = n(1);
    assert_eq!((deleted["action"].clone(), deleted["targetId"].clone()), (json!("DELETE"), id.clone()));
    assert_eq!(
        (deleted["before"]["notes"].clone(), deleted["after"].clone()),
        (json!("botnet C2"), Value::Null)
    );
    let updated = n(2);
    assert_eq!(updated["action"], "UPDATE");
    assert_eq!(
        (updated["before"]["notes"].clone(), updated["after"]["notes"].clone()),
        (json!("botnet"), json!("botnet C2"))
    );
    assert_eq!(updated["after"]["value"], "198.51.100.0/24");
    let created = n(3);
    assert_eq!(
        (created["action"].clone(), created["targetKind"].clone()),
        (json!("CREATE"), json!("ALLOW_BLOCK_ENTRY"))
    );
    assert_eq!(created["before"], Value::Null);
    assert_eq!(
        (
            created["after"]["kind"].clone(),
            created["after"]["action"].clone(),
            created["after"]["neverExpire"].clone()
        ),
        (json!("IP"), json!("BLOCK"), json!(false))
    );
    assert!(utc(&created["at"]) <= utc(&updated["at"]) && utc(&updated["at"]) <= utc(&deleted["at"]));

    // Paging.
    let page = app.ok(&admin, AUDIT, json!({ "n": 3 })).await["auditLog"].clone();
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = app.ok(&admin, AUDIT, json!({ "n": 3, "after": page["pageInfo"]["endCursor"] })).await
        ["auditLog"]
        .clone();
    assert_eq!(
        (rest["nodes"][0]["id"].clone(), rest["pageInfo"]["hasNextPage"].clone()),
        (created["id"].clone(), json!(false))
    );
}

#[tokio::test]
async fn each_list_holds_at_most_its_limit() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    create(&app, &admin, json!({ "kind": "FILE_HASH", "value": HASH, "action": "ALLOW" })).await;
    // Fill the tenant's file allows to 5,000 (the API would take a while).
    use diesel_async::RunQueryDsl;
    let mut c = db(&app).await;
    diesel::sql_query(
        "INSERT INTO allow_block_entries (tenant_id, id, kind, value, action, expires_at, remove_after_days, \
         created_by) SELECT 'contoso', gen_random_uuid(), 'FILE_HASH', lpad(to_hex(g), 64, '0'), 'ALLOW', \
         now() + interval '45 days', 45, 'seed@contoso.com' FROM generate_series(1, 4999) g",
    )
    .execute(&mut c)
    .await
    .expect("seed allows");
    let (code, msg) = refused(
        &app,
        &admin,
        CREATE,
        json!({ "i": { "kind": "FILE_HASH", "value": "f".repeat(64), "action": "ALLOW" } }),
    )
    .await;
    assert_eq!(code, "CONFLICT");
    assert!(msg.contains("5000") && msg.contains("ALLOW") && msg.contains("FILE_HASH"), "{msg}");
    // Blocks, and other kinds, have lists of their own.
    create(&app, &admin, json!({ "kind": "FILE_HASH", "value": "f".repeat(64), "action": "BLOCK" })).await;
    create(&app, &admin, json!({ "kind": "SENDER", "value": "partner.example", "action": "ALLOW" })).await;
}

/// Counts the statements a connection sends.
struct Counter(Arc<AtomicUsize>);

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn the_matcher_finds_active_entries_and_blocks_win() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let mut ids = std::collections::BTreeMap::new();
    for (name, kind, value, action) in [
        ("wild", "SENDER", "*.evil.example", "BLOCK"),
        ("addr", "SENDER", "bob@phish.example", "BLOCK"),
        ("prefix", "URL", "HTTPS://Bad.Example/pay#x", "BLOCK"),
        ("host", "URL", "host.example", "BLOCK"),
        ("hash", "FILE_HASH", HASH, "BLOCK"),
        ("v4", "IP", "10.0.0.0/8", "BLOCK"),
        ("v6", "IP", "2001:db8::/32", "BLOCK"),
        ("v6addr", "IP", "2001:DB9::7", "BLOCK"),
        ("allow", "SENDER", "good.example", "ALLOW"),
        ("expired", "URL", "expired.example", "BLOCK"),
        ("unused", "SENDER", "quiet.example", "BLOCK"),
    ] {
        let e = create(&app, &admin, json!({ "kind": kind, "value": value, "action": action })).await;
        ids.insert(name, id_of(&e));
    }
    expire(&app, ids["expired"]).await;
    // Another tenant's entries never match.
    create(
        &app,
        &admin_other(&app),
        json!({ "kind": "SENDER", "value": "mallory@partner.example", "action": "BLOCK" }),
    )
    .await;
    // The URL entry is stored as ingestion stores URLs.
    let stored =
        app.ok(&admin, GET, json!({ "id": ids["prefix"] })).await["allowBlockEntry"]["value"].clone();
    let ingest =
        parapet::ingest::validate::normalise_url("url", Some("HTTPS://Bad.Example/pay#x")).expect("a URL");
    assert_eq!(stored, json!(ingest));

    let copies = vec![
        // 0: a subdomain of *.evil.example, a URL under the blocked prefix, an IPv4 in the range.
        CopyFacts {
            envelope_sender: Some("x@mail.evil.example".into()),
            urls: vec!["https://bad.example/pay/now?id=1".into()],
            sender_ip: Some("10.20.30.40".into()),
            ..Default::default()
        },
        // 1: the blocked address, the blocked file.
        CopyFacts {
            header_from: Some("bob@phish.example".into()),
            attachment_sha256s: vec![HASH.into()],
            ..Default::default()
        },
        // 2: an IPv6 in the range, a URL on the blocked host.
        CopyFacts {
            sender_ip: Some("2001:db8:1::5".into()),
            urls: vec!["http://host.example/anything".into()],
            ..Default::default()
        },
        // 3: an allowed sender with spam, and a URL of an expired block.
        CopyFacts {
            envelope_sender: Some("ceo@good.example".into()),
            urls: vec!["https://expired.example/".into()],
            threat_types: vec![ThreatType::Spam],
            ..Default::default()
        },
        // 4: an allowed sender, but also a file block: blocks win.
        CopyFacts {
            envelope_sender: Some("ceo@good.example".into()),
            attachment_sha256s: vec![HASH.into()],
            ..Default::default()
        },
        // 5: near misses: the domain itself of *.evil.example's sibling, a longer path, another host.
        CopyFacts {
            envelope_sender: Some("a@notevil.example".into()),
            header_from: Some("mallory@partner.example".into()),
            urls: vec!["https://bad.example/payment".into(), "https://www.host.example/".into()],
            sender_ip: Some("11.0.0.1".into()),
            ..Default::default()
        },
        // 6: an allowed sender on high-confidence phish: the allow is overruled.
        CopyFacts {
            envelope_sender: Some("ceo@good.example".into()),
            threat_types: vec![ThreatType::Phish],
            phish_confidence: Some(PhishConfidence::High),
            ..Default::default()
        },
        // 7: an IPv6 address blocked on its own.
        CopyFacts { sender_ip: Some("2001:db9:0::7".into()), ..Default::default() },
        // 8: an IPv4-mapped IPv6 address inside an IPv4 range.
        CopyFacts { sender_ip: Some("::ffff:10.1.1.1".into()), ..Default::default() },
    ];
    // A batch of many copies is still one statement.
    let mut batch = copies.clone();
    for i in 0..300 {
        batch.push(CopyFacts {
            envelope_sender: Some(format!("user{i}@sender{i}.example")),
            urls: vec![format!("https://site{i}.example/a/b?c={i}")],
            attachment_sha256s: vec![format!("{i:064x}")],
            sender_ip: Some(format!("192.0.2.{}", i % 250)),
            ..Default::default()
        });
    }
    let probe = Probe::from_copies(&batch);
    let mut conn = db(&app).await;
    let statements = Arc::new(AtomicUsize::new(0));
    conn.set_instrumentation(Counter(statements.clone()));
    let now = Utc::now();
    let active = allowblock::active_matches(&mut conn, "contoso", &probe, now).await.expect("matches");
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement for the whole batch");
    let found: BTreeSet<Uuid> = active.iter().map(|e| e.id).collect();
    let want: BTreeSet<Uuid> = ["wild", "addr", "prefix", "host", "hash", "v4", "v6", "v6addr", "allow"]
        .iter()
        .map(|n| ids[n])
        .collect();
    assert_eq!(found, want, "every active match, and no expired, unused or foreign entry");

    let v: Vec<_> = copies.iter().map(|c| verdict_for(&active, c)).collect();
    assert_eq!(v[0].decision, Decision::Blocked);
    assert_eq!(
        (v[0].threat_types.clone(), v[0].phish_confidence),
        (vec![ThreatType::Phish], Some(PhishConfidence::High))
    );
    assert_eq!(v[0].entry_ids, sorted(&[ids["wild"], ids["prefix"], ids["v4"]]));
    assert_eq!(
        v[0].detection_technologies,
        vec![
            "Tenant Allow/Block List URL block",
            "Tenant Allow/Block List sender block",
            "Tenant Allow/Block List IP block"
        ]
    );
    assert_eq!(v[1].threat_types, vec![ThreatType::Malware, ThreatType::Phish]);
    assert_eq!(v[1].entry_ids, sorted(&[ids["addr"], ids["hash"]]));
    assert_eq!(v[2].entry_ids, sorted(&[ids["host"], ids["v6"]]));
    assert_eq!((v[3].decision, v[3].threat_types.clone()), (Decision::Allowed, vec![]));
    assert_eq!(v[3].entry_ids, vec![ids["allow"]]);
    assert_eq!((v[4].decision, v[4].entry_ids.clone()), (Decision::Blocked, vec![ids["hash"]]));
    assert_eq!((v[5].decision, v[5].entry_ids.clone()), (Decision::None, vec![]));
    assert_eq!(
        (v[6].decision, v[6].phish_confidence),
        (Decision::AllowOverruled, Some(PhishConfidence::High))
    );
    assert_eq!(v[7].entry_ids, vec![ids["v6addr"]]);
    assert_eq!(v[8].entry_ids, vec![ids["v4"]]);

    // touch: one statement; lastUsedAt moves forward only; an allow's expiry follows its last use.
    let used: Vec<Uuid> = v.iter().flat_map(|o| o.entry_ids.clone()).collect();
    statements.store(0, Ordering::SeqCst);
    let moved = allowblock::touch(&mut conn, "contoso", &used, now).await.expect("touch");
    assert_eq!(statements.load(Ordering::SeqCst), 1);
    assert_eq!(moved, 9, "each used entry once");
    let allow = app.ok(&admin, GET, json!({ "id": ids["allow"] })).await["allowBlockEntry"].clone();
    assert_eq!(utc(&allow["lastUsedAt"]).timestamp_micros(), now.timestamp_micros());
    assert_eq!(utc(&allow["expiresAt"]) - utc(&allow["lastUsedAt"]), Duration::days(45));
    let earlier = now - Duration::hours(1);
    assert_eq!(allowblock::touch(&mut conn, "contoso", &used, earlier).await.expect("touch"), 0);
    let wild = app.ok(&admin, GET, json!({ "id": ids["wild"] })).await["allowBlockEntry"].clone();
    assert_eq!(utc(&wild["lastUsedAt"]).timestamp_micros(), now.timestamp_micros());
    assert_eq!(utc(&wild["expiresAt"]) - utc(&wild["createdAt"]), Duration::days(30), "a block's date stays");
    // Expired entries and other tenants' ids are left alone.
    let untouched = allowblock::touch(&mut conn, "contoso", &[ids["expired"]], now).await.expect("touch");
    let foreign = allowblock::touch(&mut conn, "fabrikam", &[ids["wild"]], now + Duration::hours(1)).await;
    assert_eq!((untouched, foreign.expect("touch")), (0, 0));
    let none =
        allowblock::active_matches(&mut conn, "contoso", &Probe::default(), now).await.expect("matches");
    assert!(none.is_empty());

    // Once an entry expires, it stops applying at once.
    expire(&app, ids["wild"]).await;
    let active =
        allowblock::active_matches(&mut conn, "contoso", &Probe::from_copies(&copies[..1]), Utc::now())
            .await
            .expect("matches");
    assert!(!active.iter().any(|e| e.id == ids["wild"]));
    assert_eq!(verdict_for(&active, &copies[0]).entry_ids, sorted(&[ids["prefix"], ids["v4"]]));
}

fn admin_other(app: &TestApp) -> String {
    admin(app, "fabrikam")
}

fn sorted(ids: &[Uuid]) -> Vec<Uuid> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}

/// A small seeded generator (xorshift), so a failing round can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.next() % items.len() as u64).unwrap_or(0);
        &items[i]
    }
}

#[tokio::test]
async fn hostile_values_are_refused_never_internal() {
    let app = TestApp::new().await;
    let admin = admin(&app, "contoso");
    let real =
        create(&app, &admin, json!({ "kind": "IP", "value": "192.0.2.0/24", "action": "BLOCK" })).await;
    let real_id = real["id"].as_str().unwrap_or_default().to_string();
    let real_cursor = list(&app, &admin, json!(null)).await["pageInfo"]["endCursor"].clone();
    let forged =
        parapet::graphql::types::connection::encode_cursor("allowBlockEntries", i64::MAX, Uuid::nil());
    let huge = "x".repeat(100_000);
    let slashes = format!("https://evil.example/{}", "/".repeat(5000));
    let values: Vec<Value> = vec![
        json!(""),
        json!("\u{0}"),
        json!("a\u{0}b.example"),
        json!(huge),
        json!(slashes),
        json!("*."),
        json!("*.*"),
        json!("[::1]"),
        json!("http://[::1]:99999/"),
        json!("https://user:pw@evil.example/"),
        json!("%00"),
        json!("::ffff:999.1.1.1"),
        json!("1.2.3.4/-1"),
        json!("1.2.3.4/"),
        json!("/8"),
        json!("::/128"),
        json!("::ffff:10.0.0.0/104"),
        json!("fe80::1%eth0"),
        json!("😀@😀.example"),
        json!("\u{202e}evil.example"),
        json!("ＥＶＩＬ.example"),
        json!("xn--.example"),
        json!("a@b@c.example"),
        json!(HASH),
        json!("evil.example"),
        json!("http://evil.example/\\u0000"),
        json!("ftp://203.0.113.1"),
        json!("2001:db8::/0"),
        json!(12),
    ];
    let dates = [
        json!(null),
        json!("9999-12-31T23:59:59Z"),
        json!("0001-01-01T00:00:00Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("not a date"),
        json!((Utc::now() + Duration::days(10)).to_rfc3339()),
        json!("+262143-01-01T00:00:00Z"),
    ];
    let ids = [json!(real_id), json!(Uuid::nil()), json!("12"), json!("\u{0}"), json!(huge)];
    let firsts = [json!(null), json!(-1), json!(0), json!(101), json!(i32::MAX), json!("x")];
    let afters = [json!(null), real_cursor, json!(forged), json!("garbage"), json!(huge)];
    let kinds = [json!("SENDER"), json!("URL"), json!("FILE_HASH"), json!("IP"), json!("NOPE")];
    let actions = [json!("ALLOW"), json!("BLOCK")];
    let bools = [json!(null), json!(true), json!(false)];

    let mut r = Rng(0x5EED_AB1E_0000_0001);
    for n in 0..300 {
        let (query, vars) = match n % 6 {
            0 | 1 => (
                CREATE,
                json!({ "i": { "kind": r.pick(&kinds), "value": r.pick(&values), "action": r.pick(&actions),
                               "notes": r.pick(&values), "expiresAt": r.pick(&dates),
                               "neverExpire": r.pick(&bools) } }),
            ),
            2 => (
                UPDATE,
                json!({ "id": r.pick(&ids), "i": { "notes": r.pick(&values), "expiresAt": r.pick(&dates),
                                                   "neverExpire": r.pick(&bools) } }),
            ),
            3 => (DELETE, json!({ "id": r.pick(&ids) })),
            4 => (
                LIST,
                json!({ "f": { "kind": r.pick(&kinds), "valueContains": r.pick(&values),
                               "expired": r.pick(&bools) },
                        "n": r.pick(&firsts), "after": r.pick(&afters) }),
            ),
            _ => (AUDIT, json!({ "n": r.pick(&firsts), "after": r.pick(&afters) })),
        };
        let (status, resp) =
            app.post_json("/graphql", Some(&admin), json!({ "query": query, "variables": vars })).await;
        let shown: String = vars.to_string().chars().take(300).collect();
        assert!(!status.is_server_error(), "round {n}: HTTP {status} for {shown}");
        let codes: Vec<&str> = resp["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["extensions"]["code"].as_str().unwrap_or("-"))
            .collect();
        assert!(!codes.contains(&"INTERNAL"), "round {n}: {shown}\n{resp:#}");
    }
    // Still answering, and whatever passed is well-formed.
    for e in list(&app, &admin, json!(null)).await["nodes"].as_array().into_iter().flatten() {
        assert!(e["value"].as_str().is_some_and(|v| !v.is_empty() && !v.contains('\u{0}')), "{e}");
    }
}
