//! The HTTP surface: probes, metrics, GET rules, body and batch limits, CORS, the playground, masking of
//! internal errors, and the WebSocket endpoint's authentication.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use parapet::auth::{JwtVerifier, Role};
use parapet::db::{self, PoolSettings};
use parapet::graphql::{build_schema, Limits};
use parapet::http::{router_with, HttpOptions};
use parapet::state::AppState;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Sends `req` through `router`; returns status, headers and body text.
async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = router.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body");
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn post(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(body.into()).expect("request")
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn router_with_options(app: &TestApp, options: HttpOptions) -> axum::Router {
    router_with(app.state.clone(), build_schema(app.state.clone(), &Limits::default()), &options)
}

fn query_string(query: &str, operation: Option<&str>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.append_pair("query", query);
    if let Some(op) = operation {
        s.append_pair("operationName", op);
    }
    s.finish()
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let app = TestApp::new().await;
    let (status, _, body) = send(&app.router, get("/healthz", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["status"], "ok");

    let (status, _, body) = send(&app.router, get("/readyz", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["status"], "ready");

    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    app.ok(&t, "query HttpMetricsProbe { me { sub } }", json!({})).await;
    app.gql(None, "query HttpMetricsProbe { me { sub } }", json!({})).await;
    // Two alerts accepted, one rejected: the counter counts the accepted ones, of this app only.
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let good = |id: &str| common::alerts::alert_with(id, "p", "LOW", json!([]));
    let bad = common::alerts::alert_with("m3", "p", "LOW", json!([{ "url": { "url": "not a url" } }]));
    let d = app.ok(&ing, common::alerts::INGEST, json!({ "alerts": [good("m1"), good("m2"), bad] })).await;
    assert_eq!(
        (d["ingestAlerts"]["accepted"].clone(), d["ingestAlerts"]["rejected"].clone()),
        (json!(2), json!(1))
    );

    // One live subscription in each of two tenants: the gauge counts the process's total.
    let mut live = vec![];
    for tenant in ["contoso", "fabrikam"] {
        let reader = app.token(tenant, "wall@example.com", &[Role::Reader]);
        live.push(app.subscribe(&reader, "subscription { alertCorrelated { cursor } }", json!({})).await);
        app.wait_subscribers(tenant, 1).await;
    }

    let (status, headers, text) = send(&app.router, get("/metrics", None)).await;
    drop(live);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    for needle in [
        "# TYPE parapet_graphql_requests_total counter",
        "parapet_graphql_requests_total{operation=\"HttpMetricsProbe\",outcome=\"ok\"} 1",
        "parapet_graphql_requests_total{operation=\"HttpMetricsProbe\",outcome=\"error\"} 1",
        "parapet_graphql_request_duration_seconds_count{operation=\"HttpMetricsProbe\"} 2",
        "parapet_graphql_request_duration_seconds_bucket{operation=\"HttpMetricsProbe\",le=\"+Inf\"} 2",
        "parapet_db_pool_max_connections 10",
        "parapet_db_pool_connections ",
        "parapet_db_pool_in_use_connections ",
        "parapet_live_subscribers 2",
        "parapet_alerts_ingested_total 2\n",
        "parapet_build_info{version=\"",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    // Label values are ours, never the caller's: no tenant appears.
    assert!(!text.contains("contoso") && !text.contains("fabrikam"), "{text}");

    // A scraper that asks for OpenMetrics gets it, with its own content type.
    let mut req = get("/metrics", None);
    req.headers_mut().insert(
        "accept",
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
            .parse()
            .expect("header"),
    );
    let (status, headers, text) = send(&app.router, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(
        text.contains("# TYPE parapet_alerts_ingested counter\nparapet_alerts_ingested_total 2\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);

    let path = format!("/graphql?{}", query_string("{ me { sub tenantId } }", None));
    let (status, _, body) = send(&app.router, get(&path, Some(&t))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["data"]["me"]["sub"], "alice@contoso.com");

    // Variables come JSON-encoded; operationName picks the operation.
    let mut qs = url::form_urlencoded::Serializer::new(String::new());
    qs.append_pair("query", "query Q($x: Boolean!) { me { sub @include(if: $x) tenantId } }");
    qs.append_pair("operationName", "Q");
    qs.append_pair("variables", r#"{"x": false}"#);
    let (status, _, body) = send(&app.router, get(&format!("/graphql?{}", qs.finish()), Some(&t))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["data"]["me"], json!({ "tenantId": "contoso" }), "{body}");

    // Refused before validation, so it holds whatever mutations the schema has.
    let path = format!("/graphql?{}", query_string("mutation { anything }", None));
    let (status, headers, body) = send(&app.router, get(&path, Some(&t))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(headers["allow"], "POST");
    let v = json_of(&body);
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert!(v["errors"][0]["message"].as_str().expect("message").contains("POST"));

    // A document with both: the chosen operation decides.
    let doc = "query Who { me { sub } } mutation Change { __typename }";
    let path = format!("/graphql?{}", query_string(doc, Some("Who")));
    let (status, _, body) = send(&app.router, get(&path, Some(&t))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["data"]["me"]["sub"], "alice@contoso.com", "{body}");
    let path = format!("/graphql?{}", query_string(doc, Some("Change")));
    let (status, _, _) = send(&app.router, get(&path, Some(&t))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    let small = router_with_options(&app, HttpOptions { max_body_bytes: 1024, ..HttpOptions::default() });

    let padding = "x".repeat(2048);
    let big = json!({ "query": format!("{{ me {{ sub }} }} # {padding}") }).to_string();
    let (status, _, body) = send(&small, post("/graphql", Some(&t), big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let v = json_of(&body);
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert!(v["errors"][0]["message"].as_str().expect("message").contains("1024"));

    // Without a Content-Length (streamed), the limit holds too.
    let chunks: Vec<Result<String, std::io::Error>> =
        big.as_bytes().chunks(100).map(|c| Ok(String::from_utf8_lossy(c).into_owned())).collect();
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    let (status, _, _) = send(&small, post("/graphql", Some(&t), streamed)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Under the limit it runs.
    let ok = json!({ "query": "{ me { sub } }" }).to_string();
    let (status, _, body) = send(&small, post("/graphql", Some(&t), ok)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The default limit is 4 MiB.
    let huge =
        json!({ "query": format!("{{ me {{ sub }} }} # {}", "x".repeat(4 * 1024 * 1024)) }).to_string();
    let (status, _, _) = send(&app.router, post("/graphql", Some(&t), huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn batches_run_up_to_the_cap() {
    let app = TestApp::new().await;
    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    let op = json!({ "query": "{ me { sub } }" });

    let two = Value::Array(vec![op.clone(), op.clone()]).to_string();
    let (status, _, body) = send(&app.router, post("/graphql", Some(&t), two)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v[1]["data"]["me"]["sub"], "alice@contoso.com");

    let eleven = Value::Array(vec![op.clone(); 11]).to_string();
    let (status, _, body) = send(&app.router, post("/graphql", Some(&t), eleven)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v = json_of(&body);
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert!(v["errors"][0]["message"].as_str().expect("message").contains("at most 10"), "{v}");

    let capped = router_with_options(&app, HttpOptions { max_batch: 1, ..HttpOptions::default() });
    let (status, _, _) =
        send(&capped, post("/graphql", Some(&t), Value::Array(vec![op.clone(), op]).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, body) = send(&app.router, post("/graphql", Some(&t), "[]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = send(&app.router, post("/graphql", Some(&t), "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_masked_and_readyz_fails() {
    // A pool whose database does not exist: no connection can be had. The client is told to retry
    // (`UNAVAILABLE`), never `INTERNAL`, and learns nothing of the cause.
    let url = with_db(&server_url(), "parapet_no_such_database");
    let pool =
        db::build_pool(&url, &PoolSettings { max_size: 2, statement_timeout_ms: 1000, ..Default::default() })
            .expect("pool");
    let state = AppState::new(pool, JwtVerifier::hs256(SECRET, "parapet", "parapet"));
    let router = parapet::http::router(state.clone(), build_schema(state, &Limits::default()));
    let t = token_with("contoso", "alice@contoso.com", &[Role::Reader], None, 600);

    // The caller's tenant is looked up before anything executes: refused whole, HTTP 503, retry later.
    let body = json!({ "query": "{ me { sub } }" }).to_string();
    let (status, headers, text) = send(&router, post("/graphql", Some(&t), body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_some(), "{headers:?}");
    let v = json_of(&text);
    assert_eq!(v["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{v}");
    assert!(v["errors"][0]["message"].as_str().is_some_and(|m| m.contains("retry")), "{v}");
    assert!(!text.contains("parapet_no_such_database") && !text.contains("does not exist"), "{text}");

    let (status, _, text) = send(&router, get("/readyz", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let (status, _, _) = send(&router, get("/healthz", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let app = TestApp::new().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/graphql")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(Body::empty())
            .expect("request")
    };
    let (_, headers, _) = send(&app.router, preflight("https://soc.example.com")).await;
    assert!(headers.get("access-control-allow-origin").is_none(), "no CORS by default");

    let cors = router_with_options(
        &app,
        HttpOptions { cors_origins: vec!["https://soc.example.com".into()], ..HttpOptions::default() },
    );
    let (status, headers, _) = send(&cors, preflight("https://soc.example.com")).await;
    assert!(status.is_success());
    assert_eq!(headers["access-control-allow-origin"], "https://soc.example.com");
    let allowed = headers["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let (_, headers, _) = send(&cors, preflight("https://evil.example")).await;
    assert!(headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn playground_is_served_and_introspection_follows_the_limits() {
    let app = TestApp::new().await;
    let (status, headers, body) = send(&app.router, get("/playground", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert!(body.contains("graphiql") && body.contains("/graphql/ws") && body.contains("parapet token"));

    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    let introspect = "{ __schema { queryType { name } } }";
    let data = app.ok(&t, introspect, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");

    // Production turns introspection off.
    let mut config = parapet::config::Config::from_env().expect("config");
    config.environment = parapet::config::Environment::Production;
    let schema = build_schema(app.state.clone(), &config.limits());
    let router = parapet::http::router(app.state.clone(), schema);
    let (_, _, body) =
        send(&router, post("/graphql", Some(&t), json!({ "query": introspect }).to_string())).await;
    let v = json_of(&body);
    assert!(v["errors"].is_array() || v["data"]["__schema"].is_null(), "introspection answered: {v}");
}

#[tokio::test]
async fn websocket_needs_a_token_in_connection_init() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let connect = || async {
        let mut req = format!("ws://{addr}/graphql/ws").into_client_request().expect("request");
        req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect");
        ws
    };
    // With a token: acknowledged.
    let t = app.token("contoso", "alice@contoso.com", &[Role::Reader]);
    let mut ws = connect().await;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {t}") } });
    ws.send(Message::Text(init.to_string().into())).await.expect("send");
    let reply =
        tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("reply in time");
    match reply {
        Some(Ok(Message::Text(text))) => assert_eq!(json_of(&text)["type"], "connection_ack", "{text}"),
        other => panic!("expected connection_ack, got {other:?}"),
    }

    // Without one: the connection is closed, never acknowledged.
    let mut ws = connect().await;
    ws.send(Message::Text(json!({ "type": "connection_init", "payload": {} }).to_string().into()))
        .await
        .expect("send");
    let reply =
        tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("reply in time");
    match reply {
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {}
        Some(Ok(Message::Text(text))) => assert_ne!(json_of(&text)["type"], "connection_ack", "{text}"),
        other => panic!("unexpected reply {other:?}"),
    }
}
