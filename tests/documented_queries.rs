//! Every operation the README and the playground show runs at the default limits: a change to the
//! schema or to the complexity rule that breaks one of them fails here, not in a newcomer's hands.

mod common;

use common::*;
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Duration;

fn read(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The playground's example operations: `const NAME = \`...\`;` template literals holding one.
fn playground_operations() -> Vec<(String, String)> {
    let js = read("playground/playground.js");
    let mut out = vec![];
    let mut rest = js.as_str();
    while let Some(start) = rest.find("= `") {
        let name = rest[..start].rsplit("const ").next().unwrap_or_default().trim().to_string();
        let body = &rest[start + 3..];
        let Some(end) = body.find('`') else { break };
        let text = &body[..end];
        if ["query", "mutation", "subscription"].iter().any(|k| text.contains(&format!("\n{k} "))) {
            out.push((name, text.to_string()));
        }
        rest = &body[end + 1..];
    }
    out
}

/// The README's operations: the ingest request body, the `"query":"..."` strings, the GET query and the
/// `graphql` fences.
fn readme_operations() -> (Vec<Value>, Vec<String>, Vec<String>) {
    let md = read("README.md");
    let mut bodies = vec![];
    // Quoted heredocs are sent as written; unquoted ones as the shell expands them (`\$` and the
    // `$(date -u …)` the mail-flow example uses for a fresh receive time).
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for marker in ["<<'JSON'\n", "<<JSON\n"] {
        let mut rest = md.as_str();
        while let Some(start) = rest.find(marker) {
            let body = &rest[start + marker.len()..];
            let Some(end) = body.find("\nJSON\n") else { break };
            let text = if marker.contains('\'') {
                body[..end].to_string()
            } else {
                body[..end].replace("$(date -u +%Y-%m-%dT%H:%M:%SZ)", &now).replace("\\$", "$")
            };
            bodies.push(serde_json::from_str(&text).expect("the README's request body is JSON"));
            rest = &body[end..];
        }
    }
    let mut queries = vec![];
    for line in md.lines() {
        if let Some(i) = line.find("-d '{\"query\":") {
            let json_text = line[i + 4..].trim_end().trim_end_matches('\'');
            let v: Value = serde_json::from_str(json_text).expect("the README's -d body is JSON");
            queries.push(v["query"].as_str().unwrap_or_default().to_string());
        }
        if let Some(i) = line.find("'query=") {
            let q = &line[i + 7..];
            queries.push(q[..q.find('\'').unwrap_or(q.len())].to_string());
        }
    }
    let mut subscriptions = vec![];
    let mut fence = false;
    for line in md.lines() {
        match (fence, line.trim()) {
            (false, "```graphql") => fence = true,
            (true, "```") => fence = false,
            (true, l) if l.starts_with("subscription") => subscriptions.push(l.to_string()),
            (true, l) if !l.is_empty() => queries.push(l.to_string()),
            _ => {}
        }
    }
    (bodies, queries, subscriptions)
}

fn no_errors(what: &str, resp: &Value) {
    let errors = resp.get("errors").cloned().unwrap_or(Value::Null);
    assert!(errors.is_null() || errors == json!([]), "{what} failed at the default limits: {resp:#}");
}

#[tokio::test]
async fn the_readme_and_playground_operations_run_at_the_default_limits() {
    let app = TestApp::new().await;
    let admin = app.token("contoso", "alice@contoso.com", &[Role::Admin]);

    let (bodies, queries, subscriptions) = readme_operations();
    assert!(!bodies.is_empty() && queries.len() >= 2 && !subscriptions.is_empty(), "README examples found");
    let mut incident_id = Value::Null;
    for body in &bodies {
        let (status, resp) = app.post_json("/graphql", Some(&admin), body.clone()).await;
        assert!(status.is_success(), "HTTP {status}: {resp:#}");
        no_errors("the README's ingest example", &resp);
        if let Some(items) = resp["data"]["ingestEmails"]["items"].as_array() {
            // UPDATED while the alert example's copy (received 2026-11-26) is inside the 30 days: the record
            // adopts the copy that alert's evidence taught Parapet; CREATED after.
            assert!(
                items.iter().all(|i| i["status"] == "UPDATED" || i["status"] == "CREATED"),
                "the README's mail-flow example: {resp:#}"
            );
        }
        let id = &resp["data"]["ingestAlerts"]["items"][0]["alert"]["incident"]["id"];
        if id.is_string() {
            incident_id = id.clone();
        }
    }
    assert!(incident_id.is_string(), "the README's ingest example made an incident");
    for q in &queries {
        no_errors(q, &app.gql(Some(&admin), q, json!({})).await);
    }
    for s in &subscriptions {
        let mut stream = app.subscribe(&admin, s, json!({})).await;
        // A refused subscription answers at once with its errors; an accepted one waits for events.
        if let Ok(Some(first)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
            no_errors(s, &first);
        }
    }

    let ops = playground_operations();
    let names: Vec<&str> = ops.iter().map(|(n, _)| n.as_str()).collect();
    assert!(ops.len() >= 4, "the playground's examples were found: {names:?}");
    let ingest_vars = json!({ "alerts": [common::alerts::url_alert(
        "playground-1", "dana@contoso.com", "https://evil.example/pay", "billing@evil.example")] });
    for (name, text) in &ops {
        let vars = match name.as_str() {
            "INGEST" => ingest_vars.clone(),
            "TRIAGE" => json!({ "id": incident_id, "version": null }),
            _ => json!({ "id": incident_id }),
        };
        no_errors(&format!("the playground's {name}"), &app.gql(Some(&admin), text, vars).await);
    }
}
