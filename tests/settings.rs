//! Tenant settings: defaults, who may read and change them, validation with clear messages,
//! normalisation of the ignore list, and that one tenant's change leaves another's alone.

mod common;

use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const READ: &str = "{ tenantSettings { tenantId strongKeyWindowHours weakKeyWindowHours maxKeyPrevalence \
                    correlationIgnore autoApprove fourEyes updatedAt } }";
const UPDATE: &str = "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { \
                      tenantId strongKeyWindowHours weakKeyWindowHours maxKeyPrevalence correlationIgnore \
                      autoApprove fourEyes } }";

#[tokio::test]
async fn readers_see_the_defaults() {
    let app = TestApp::new().await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let s = app.ok(&reader, READ, json!({})).await["tenantSettings"].clone();
    assert_eq!(s["tenantId"], "contoso");
    assert_eq!(s["strongKeyWindowHours"], 72);
    assert_eq!(s["weakKeyWindowHours"], 24);
    assert_eq!(s["maxKeyPrevalence"], 1000);
    assert_eq!(s["correlationIgnore"], json!([]));
    assert_eq!(s["autoApprove"], false);
    assert_eq!(s["fourEyes"], true);
    let ingestor = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    assert_eq!(app.err_code(Some(&ingestor), READ, json!({})).await, "FORBIDDEN");
    assert_eq!(app.err_code(None, READ, json!({})).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn admins_update_settings_and_the_change_sticks() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let input = json!({ "i": {
        "strongKeyWindowHours": 96,
        "weakKeyWindowHours": 12,
        "maxKeyPrevalence": 50,
        "correlationIgnore": ["  Contoso.COM ", "contoso.com", "noreply@Microsoft.com"],
        "autoApprove": true,
        "fourEyes": false
    }});
    let s = app.ok(&admin, UPDATE, input).await["updateTenantSettings"].clone();
    assert_eq!(s["strongKeyWindowHours"], 96);
    assert_eq!(s["weakKeyWindowHours"], 12);
    assert_eq!(s["maxKeyPrevalence"], 50);
    assert_eq!(
        s["correlationIgnore"],
        json!(["contoso.com", "noreply@microsoft.com"]),
        "trimmed, lowered, deduped"
    );
    assert_eq!((s["autoApprove"].clone(), s["fourEyes"].clone()), (json!(true), json!(false)));

    // Omitted fields stay; a reader sees the stored values.
    let s = app.ok(&admin, UPDATE, json!({ "i": { "weakKeyWindowHours": 48 } })).await
        ["updateTenantSettings"]
        .clone();
    assert_eq!((s["strongKeyWindowHours"].clone(), s["weakKeyWindowHours"].clone()), (json!(96), json!(48)));
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let read = app.ok(&reader, READ, json!({})).await["tenantSettings"].clone();
    assert_eq!(read["weakKeyWindowHours"], 48);
    assert_eq!(read["correlationIgnore"], json!(["contoso.com", "noreply@microsoft.com"]));
    let s = app.ok(&admin, UPDATE, json!({ "i": {} })).await["updateTenantSettings"].clone();
    assert_eq!(s["maxKeyPrevalence"], 50, "an empty input changes nothing");
    let s = app.ok(&admin, UPDATE, json!({ "i": { "correlationIgnore": [] } })).await["updateTenantSettings"]
        .clone();
    assert_eq!(s["correlationIgnore"], json!([]), "the list can be emptied");

    // Another tenant is untouched.
    let other = app.token("fabrikam", "r@fabrikam.com", &[Role::Reader]);
    let s = app.ok(&other, READ, json!({})).await["tenantSettings"].clone();
    assert_eq!((s["tenantId"].clone(), s["strongKeyWindowHours"].clone()), (json!("fabrikam"), json!(72)));
}

#[tokio::test]
async fn only_admins_may_change_settings() {
    let app = TestApp::new().await;
    let input = json!({ "i": { "strongKeyWindowHours": 10 } });
    for role in [Role::Reader, Role::Analyst, Role::Responder, Role::Ingestor] {
        let t = app.token("contoso", "x@contoso.com", &[role]);
        assert_eq!(app.err_code(Some(&t), UPDATE, input.clone()).await, "FORBIDDEN", "{role:?}");
    }
    assert_eq!(app.err_code(None, UPDATE, input).await, "UNAUTHENTICATED");
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    assert_eq!(app.ok(&reader, READ, json!({})).await["tenantSettings"]["strongKeyWindowHours"], 72);
}

#[tokio::test]
async fn bad_values_are_refused_with_a_clear_message_and_change_nothing() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "admin@contoso.com", &[Role::Admin]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "strongKeyWindowHours": 0 }), "strongKeyWindowHours"),
        (json!({ "strongKeyWindowHours": 8761 }), "strongKeyWindowHours"),
        (json!({ "weakKeyWindowHours": -5 }), "weakKeyWindowHours"),
        (json!({ "maxKeyPrevalence": 0 }), "maxKeyPrevalence"),
        (json!({ "correlationIgnore": vec!["a.example"; 1001] }), "at most 1000"),
        (json!({ "correlationIgnore": ["x".repeat(256)] }), "255"),
        (json!({ "correlationIgnore": ["ok.example", "   "] }), "empty"),
        // One bad field refuses the whole change.
        (json!({ "maxKeyPrevalence": 5, "weakKeyWindowHours": 9000 }), "weakKeyWindowHours"),
    ];
    for (input, says) in cases {
        let resp = app.gql(Some(&admin), UPDATE, json!({ "i": input })).await;
        assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{input}: {resp}");
        let msg = resp["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{input}: message {msg:?} should mention {says:?}");
    }
    let s = app.ok(&admin, READ, json!({})).await["tenantSettings"].clone();
    assert_eq!((s["maxKeyPrevalence"].clone(), s["weakKeyWindowHours"].clone()), (json!(1000), json!(24)));
    let ok = json!({ "i": { "strongKeyWindowHours": 8760, "weakKeyWindowHours": 1, "maxKeyPrevalence": 1,
                            "correlationIgnore": ["y".repeat(255)] } });
    app.ok(&admin, UPDATE, ok).await;
}
