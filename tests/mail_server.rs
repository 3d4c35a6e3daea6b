//! A tenant's own mail server (issue 12, configuration): admins configure, read back and remove it; the
//! master password is sealed at rest, never answered, kept when a reconfiguration leaves it out; every
//! change is in the audit log; other roles and tenants see nothing.

mod common;

use common::*;
use parapet::auth::Role;
use serde_json::{json, Value};

const PASSWORD: &str = "s3cret-Master-pw";
const CONFIGURE: &str =
    "mutation($i: ConfigureMailServerInput!) { configureMailServer(input: $i) { host port tls \
    masterUser passwordSet sieveHost sievePort folders { junk deletedItems recoverableItems } updatedBy } }";
const READ: &str = "{ mailServer { host port tls masterUser passwordSet sieveHost sievePort \
    folders { junk deletedItems recoverableItems } updatedBy updatedAt } }";

fn input() -> Value {
    json!({ "host": "imap.contoso.com", "tls": "STARTTLS", "masterUser": "parapet*master", "masterPassword": PASSWORD,
            "folders": { "junk": "Spam" } })
}

async fn sealed(app: &TestApp, tenant: &str) -> Vec<u8> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use parapet::db::schema::mail_servers::dsl::*;
    let mut conn = app.state.pool.get().await.expect("conn");
    mail_servers.filter(tenant_id.eq(tenant)).select(password_sealed).first(&mut conn).await.expect("row")
}

#[tokio::test]
async fn admins_configure_read_back_and_remove_without_the_password_ever_answered() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "ada@contoso.com", &[Role::Admin]);
    let resp = app.gql(Some(&admin), CONFIGURE, json!({ "i": input() })).await;
    assert!(resp.get("errors").is_none(), "{resp:#}");
    assert!(!resp.to_string().contains(PASSWORD), "the answer holds the password: {resp}");
    let m = &resp["data"]["configureMailServer"];
    assert_eq!(m["port"], 143, "STARTTLS defaults to 143");
    assert_eq!(m["sieveHost"], "imap.contoso.com");
    assert_eq!(m["sievePort"], 4190);
    assert_eq!(m["passwordSet"], true);
    assert_eq!(
        m["folders"],
        json!({ "junk": "Spam", "deletedItems": "Trash", "recoverableItems": "Recoverable Items" })
    );
    assert_eq!(m["updatedBy"], "ada@contoso.com");
    let read = app.ok(&admin, READ, json!({})).await;
    assert_eq!(read["mailServer"]["host"], "imap.contoso.com");
    assert!(!read.to_string().contains(PASSWORD));

    // Sealed at rest: the stored bytes do not hold the password.
    let first = sealed(&app, "contoso").await;
    assert!(!first.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()));
    // Reconfigured without a password, the stored one stays; with one, it changes.
    let mut again = input();
    again["masterPassword"] = Value::Null;
    again["port"] = json!(1143);
    let d = app.ok(&admin, CONFIGURE, json!({ "i": again })).await;
    assert_eq!(d["configureMailServer"]["port"], 1143);
    assert_eq!(sealed(&app, "contoso").await, first, "the password was kept");
    let mut changed = input();
    changed["masterPassword"] = json!("another-one");
    app.ok(&admin, CONFIGURE, json!({ "i": changed })).await;
    assert_ne!(sealed(&app, "contoso").await, first);

    // Every change in the audit log, none with the password.
    let log = app
        .ok(&admin, "{ auditLog(first: 10) { nodes { targetKind action before after actor } } }", json!({}))
        .await;
    let entries: Vec<&Value> = log["auditLog"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|e| e["targetKind"] == "MAIL_SERVER")
        .collect();
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["UPDATE", "UPDATE", "CREATE"], "{log:#}");
    assert_eq!(entries[1]["after"]["passwordChanged"], false);
    assert_eq!(entries[0]["after"]["passwordChanged"], true);
    assert!(!log.to_string().contains(PASSWORD) && !log.to_string().contains("another-one"));

    let removed = app.ok(&admin, "mutation { removeMailServer }", json!({})).await;
    assert_eq!(removed["removeMailServer"], true);
    assert_eq!(app.ok(&admin, READ, json!({})).await["mailServer"], Value::Null);
    assert_eq!(app.ok(&admin, "mutation { removeMailServer }", json!({})).await["removeMailServer"], false);
    let log = app.ok(&admin, "{ auditLog(first: 1) { nodes { targetKind action after } } }", json!({})).await;
    assert_eq!(log["auditLog"]["nodes"][0]["action"], "DELETE");
}

#[tokio::test]
async fn only_admins_of_the_tenant_see_or_change_it() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "ada@contoso.com", &[Role::Admin]);
    app.ok(&admin, CONFIGURE, json!({ "i": input() })).await;
    for role in [Role::Reader, Role::Analyst, Role::Responder, Role::Ingestor] {
        let t = app.token("contoso", "someone@contoso.com", &[role]);
        assert_eq!(app.err_code(Some(&t), READ, json!({})).await, "FORBIDDEN", "{role:?} reads");
        assert_eq!(
            app.err_code(Some(&t), CONFIGURE, json!({ "i": input() })).await,
            "FORBIDDEN",
            "{role:?} writes"
        );
        assert_eq!(app.err_code(Some(&t), "mutation { removeMailServer }", json!({})).await, "FORBIDDEN");
    }
    // Another tenant's admin sees none and removes none.
    let other = app.token("fabrikam", "ada@fabrikam.com", &[Role::Admin]);
    assert_eq!(app.ok(&other, READ, json!({})).await["mailServer"], Value::Null);
    assert_eq!(app.ok(&other, "mutation { removeMailServer }", json!({})).await["removeMailServer"], false);
    assert_eq!(app.ok(&admin, READ, json!({})).await["mailServer"]["host"], "imap.contoso.com");
}

#[tokio::test]
async fn bad_configurations_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "ada@contoso.com", &[Role::Admin]);
    let mut first = input();
    first["masterPassword"] = Value::Null;
    assert_eq!(
        app.err_code(Some(&admin), CONFIGURE, json!({ "i": first })).await,
        "BAD_USER_INPUT",
        "no password at first"
    );
    for (field, value) in [
        ("host", json!("imap contoso.com")),
        ("host", json!("")),
        ("port", json!(0)),
        ("sievePort", json!(70000)),
        ("masterUser", json!("a\r\nb")),
        ("masterPassword", json!("x\u{0}y")),
        ("sieveHost", json!("not a host")),
    ] {
        let mut i = input();
        i[field] = value;
        assert_eq!(
            app.err_code(Some(&admin), CONFIGURE, json!({ "i": i })).await,
            "BAD_USER_INPUT",
            "{field}"
        );
    }
    let mut i = input();
    i["folders"] = json!({ "deletedItems": "" });
    assert_eq!(app.err_code(Some(&admin), CONFIGURE, json!({ "i": i })).await, "BAD_USER_INPUT");
    assert_eq!(app.ok(&admin, READ, json!({})).await["mailServer"], Value::Null, "nothing stored");
}

#[tokio::test]
async fn a_server_without_a_secret_key_cannot_store_a_password() {
    let mut app = TestApp::new().await;
    app.state.secret_key = None;
    let schema = parapet::graphql::build_schema(app.state.clone(), &parapet::config::Limits::default());
    app.router = parapet::http::router(app.state.clone(), schema);
    let admin = app.token("contoso", "ada@contoso.com", &[Role::Admin]);
    let resp = app.gql(Some(&admin), CONFIGURE, json!({ "i": input() })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{resp:#}");
    assert!(resp["errors"][0]["message"].as_str().unwrap_or_default().contains("PARAPET_SECRET_KEY"));
    assert!(!resp.to_string().contains(PASSWORD));
}
