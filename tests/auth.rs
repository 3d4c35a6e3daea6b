//! Authentication and roles through the API: `me`, missing and bad tokens.

mod common;

use common::*;
use parapet::auth::Role;
use serde_json::json;

#[tokio::test]
async fn me_reflects_the_token() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "alice@contoso.com", &[Role::Analyst, Role::Reader]);
    let data = app.ok(&t, "{ me { sub name tenantId roles } }", json!({})).await;
    assert_eq!(data["me"]["sub"], "alice@contoso.com");
    assert_eq!(data["me"]["tenantId"], "contoso");
    assert_eq!(data["me"]["roles"], json!(["ANALYST", "READER"]));
}

#[tokio::test]
async fn missing_or_bad_tokens_are_unauthenticated() {
    let app = TestApp::new().await;
    assert_eq!(app.err_code(None, "{ me { sub } }", json!({})).await, "UNAUTHENTICATED");
    assert_eq!(app.err_code(Some("not-a-jwt"), "{ me { sub } }", json!({})).await, "UNAUTHENTICATED");
    let expired = token_with("contoso", "a@contoso.com", &[Role::Reader], None, -3600);
    assert_eq!(app.err_code(Some(&expired), "{ me { sub } }", json!({})).await, "UNAUTHENTICATED");
}
