mod common;
use common::TestApp;
use parapet::auth::Role;
use serde_json::json;

#[tokio::test]
async fn smoke() {
    let app = TestApp::new().await;
    let _jobs = app.start_jobs();
    let gw = app.token("t1", "gw", &[Role::Ingestor]);
    let analyst = app.token("t1", "ann@contoso.com", &[Role::Analyst]);
    let resp = app.token("t1", "rob@contoso.com", &[Role::Responder]);
    let now = chrono::Utc::now();
    let recs: Vec<_> = (0..5).map(|n| json!({"networkMessageId": format!("m{n}"), "recipient": format!("u{n}@contoso.com"),
        "receivedAt": (now - chrono::Duration::minutes(n)).to_rfc3339(), "headerFrom": "bad@evil.example",
        "latestDeliveryLocation": if n == 4 { "SOFT_DELETED" } else { "INBOX" }})).collect();
    app.ok(&gw, "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted } }", json!({"e": recs})).await;
    let a = app.ok(&analyst, "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id status source targetCount preview { selected targetCount alreadyInDestination mailboxCount byLocation { location count } } } }",
        json!({"i": {"filter": {"sender": "bad@evil.example"}, "action": "SOFT_DELETE"}})).await;
    eprintln!("{a:#}");
    let id = a["remediateEmails"]["id"].as_str().unwrap().to_string();
    let r = app.ok(&resp, "mutation($id: ID!) { approveAction(id: $id) { status decidedBy } }", json!({"id": id})).await;
    eprintln!("{r:#}");
    for _ in 0..100 {
        let s = app.ok(&resp, "query($id: ID!) { action(id: $id) { status successCount targets { nodes { recipient outcome currentLocation atDestination } } } }", json!({"id": id})).await;
        if s["action"]["status"] == "COMPLETED" { eprintln!("{s:#}"); break; }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = app.ok(&resp, "{ emails(filter: {sender: \"bad@evil.example\"}) { nodes { recipient latestDeliveryLocation actions { status } timeline { kind actor } } } }", json!({})).await;
    eprintln!("{e:#}");
}
