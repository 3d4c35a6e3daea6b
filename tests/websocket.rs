//! Subscriptions over real WebSockets with real JWTs: the graphql-transport-ws handshake and its close
//! codes, live delivery, resume after a dropped connection, token expiry, pings, the operation cap, and
//! the legacy graphql-ws protocol, the message size limit, and the WebSocket metrics.

mod common;

use common::alerts::*;
use common::*;
use futures::{SinkExt, StreamExt};
use parapet::auth::Role;
use parapet::http::{router_with, HttpOptions};
use parapet::ws::WsOptions;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SUB: &str = "subscription($after: String) { alertCorrelated(after: $after) { cursor kind alert { providerAlertId } incident { id } } }";

async fn serve(app: &TestApp, ws: WsOptions) -> SocketAddr {
    serve_with(app, HttpOptions { ws, ..Default::default() }).await
}

async fn serve_with(app: &TestApp, options: HttpOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = router_with(app.state.clone(), app.schema.clone(), &options);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn connect(addr: SocketAddr, protocol: &str) -> Ws {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", protocol.parse().expect("header"));
    tokio_tungstenite::connect_async(req).await.expect("connect").0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next JSON message, skipping keep-alives.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] != "ping" && v["type"] != "ka" {
                    return v;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Waits for the close frame and returns its code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("closed within 10 s");
        match m {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn init(ws: &mut Ws, token: &str) {
    send(ws, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(recv(ws).await["type"], "connection_ack");
}

#[tokio::test]
async fn handshake_close_codes() {
    let app = TestApp::new().await;
    let addr =
        serve(&app, WsOptions { init_timeout: Duration::from_millis(500), ..Default::default() }).await;
    // A bad token: 4403.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": "Bearer nope" } })).await;
    assert_eq!(close_code(&mut ws).await, 4403);
    // An expired token: 4403.
    let expired = token_with("contoso", "a@contoso.com", &[Role::Reader], None, -3600);
    let mut ws = connect(addr, "graphql-transport-ws").await;
    send(
        &mut ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {expired}") } }),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4403);
    // Subscribe before the acknowledgement: 4401.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": SUB } })).await;
    assert_eq!(close_code(&mut ws).await, 4401);
    // No init at all: 4408 after the timeout.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    assert_eq!(close_code(&mut ws).await, 4408);
    // Two inits: 4429.
    let t = app.token("contoso", "a@contoso.com", &[Role::Reader]);
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &t).await;
    send(
        &mut ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {t}") } }),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4429);
    // A duplicate operation id: 4409.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &t).await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": SUB } })).await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": SUB } })).await;
    assert_eq!(close_code(&mut ws).await, 4409);
}

#[tokio::test]
async fn live_delivery_and_resume_after_a_dropped_connection() {
    let app = TestApp::new().await;
    let addr = serve(&app, WsOptions::default()).await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let alert = |id: &str| alert_with(id, "p", "LOW", json!([{ "url": { "url": "https://a.example/" } }]));

    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &reader).await;
    send(&mut ws, json!({ "id": "a", "type": "subscribe", "payload": { "query": SUB } })).await;
    app.wait_subscribers("contoso", 1).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert("w1")] })).await;
    let first = recv(&mut ws).await;
    assert_eq!(first["type"], "next");
    assert_eq!(first["id"], "a");
    assert_eq!(first["payload"]["data"]["alertCorrelated"]["alert"]["providerAlertId"], "w1");
    let cursor = first["payload"]["data"]["alertCorrelated"]["cursor"].clone();
    // The client completes its operation; the server stops it.
    send(&mut ws, json!({ "id": "a", "type": "complete" })).await;
    drop(ws);

    // Two alerts while disconnected, then resume with the cursor: both, in order, then live ones.
    app.ok(&ing, INGEST, json!({ "alerts": [alert("w2")] })).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert("w3")] })).await;
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &reader).await;
    send(&mut ws, json!({ "id": "b", "type": "subscribe", "payload": { "query": SUB, "variables": { "after": cursor } } })).await;
    let ids: Vec<Value> = vec![recv(&mut ws).await, recv(&mut ws).await]
        .into_iter()
        .map(|m| m["payload"]["data"]["alertCorrelated"]["alert"]["providerAlertId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("w2"), json!("w3")]);
    app.ok(&ing, INGEST, json!({ "alerts": [alert("w4")] })).await;
    let live = recv(&mut ws).await;
    assert_eq!(live["payload"]["data"]["alertCorrelated"]["alert"]["providerAlertId"], "w4");
}

#[tokio::test]
async fn an_expiring_token_ends_the_stream() {
    let app = TestApp::new().await;
    let addr = serve(&app, WsOptions::default()).await;
    let short = token_with("contoso", "r@contoso.com", &[Role::Reader], None, 2);
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &short).await;
    send(&mut ws, json!({ "id": "x", "type": "subscribe", "payload": { "query": SUB } })).await;
    // The operation completes and the socket closes with 4403 once the token expires.
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("ends within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                assert!(matches!(v["type"].as_str(), Some("complete" | "ping")), "{v}");
            }
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 4403);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn pings_roles_and_the_operation_cap() {
    let app = TestApp::new().await;
    let opts =
        WsOptions { ping_interval: Duration::from_millis(200), max_operations: 2, ..Default::default() };
    let addr = serve(&app, opts).await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &reader).await;
    // A server ping arrives; the client's ping gets a pong.
    let ping = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("ping")
        .expect("msg")
        .expect("ok");
    assert!(ping.to_text().unwrap_or_default().contains("\"ping\""), "{ping:?}");
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": SUB } })).await;
    send(&mut ws, json!({ "id": "2", "type": "subscribe", "payload": { "query": SUB } })).await;
    send(&mut ws, json!({ "id": "3", "type": "subscribe", "payload": { "query": SUB } })).await;
    let refused = recv(&mut ws).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "3");
    assert!(refused["payload"][0]["message"].as_str().unwrap_or_default().contains("at most 2"));

    // An ingestor may not subscribe: the operation errors, the socket stays.
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &ing).await;
    send(&mut ws, json!({ "id": "9", "type": "subscribe", "payload": { "query": SUB } })).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["payload"][0]["extensions"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let app = TestApp::new().await;
    let addr = serve(&app, WsOptions::default()).await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut ws = connect(addr, "graphql-ws").await;
    init(&mut ws, &reader).await;
    send(&mut ws, json!({ "id": "1", "type": "start", "payload": { "query": SUB } })).await;
    app.wait_subscribers("contoso", 1).await;
    app.ok(&ing, INGEST, json!({ "alerts": [alert_with("l1", "p", "LOW", json!([]))] })).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["type"], "data");
    assert_eq!(m["payload"]["data"]["alertCorrelated"]["alert"]["providerAlertId"], "l1");
    send(&mut ws, json!({ "id": "1", "type": "stop" })).await;
    send(&mut ws, json!({ "type": "connection_terminate" })).await;
    assert_eq!(close_code(&mut ws).await, 1000);
}

/// A client that reads nothing while many events arrive: a fast client is not held up, and the slow
/// one, when it reads again, gets every event in order. (The hub-buffer overflow path itself is tested
/// in `subscriptions.rs`, where the consumer can be paused exactly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_neither_blocks_others_nor_loses_events() {
    let app = TestApp::new().await;
    let addr = serve(&app, WsOptions { send_buffer: 8, ..Default::default() }).await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let mut slow = connect(addr, "graphql-transport-ws").await;
    init(&mut slow, &reader).await;
    send(&mut slow, json!({ "id": "s", "type": "subscribe", "payload": { "query": SUB } })).await;
    let mut fast = connect(addr, "graphql-transport-ws").await;
    init(&mut fast, &reader).await;
    send(&mut fast, json!({ "id": "f", "type": "subscribe", "payload": { "query": SUB } })).await;
    app.wait_subscribers("contoso", 2).await;

    let total = 700; // 1,400 events: more than the hub's per-tenant buffer of 1,024
    let mut fast_seen = 0;
    for batch in 0..(total / 100) {
        let alerts: Vec<Value> =
            (0..100).map(|i| alert_with(&format!("b{batch}-{i}"), "p", "LOW", json!([]))).collect();
        app.ok(&ing, INGEST, json!({ "alerts": alerts })).await;
        for _ in 0..100 {
            assert_eq!(recv(&mut fast).await["type"], "next");
            fast_seen += 1;
        }
    }
    assert_eq!(fast_seen, total);
    let mut last = 0;
    for n in 0..total {
        let m = recv(&mut slow).await;
        let c = m["payload"]["data"]["alertCorrelated"]["cursor"].as_str().unwrap_or_default();
        let seq = parapet::events::cursor::decode(c).expect("cursor");
        assert!(seq > last, "out of order at {n}");
        last = seq;
    }
}

/// A `subscribe` message running `query` whose text is exactly `size` bytes, padded with a GraphQL
/// comment (which the server would parse and ignore, were it let in).
fn subscribe_of_size(id: &str, query: &str, variables: Value, size: usize) -> String {
    let msg = |pad: usize| {
        let q = format!("# {}\n{query}", "x".repeat(pad));
        json!({ "id": id, "type": "subscribe", "payload": { "query": q, "variables": variables } })
            .to_string()
    };
    let bare = msg(0).len();
    assert!(size >= bare, "{size} bytes cannot hold the operation ({bare})");
    let m = msg(size - bare);
    assert_eq!(m.len(), size);
    m
}

/// `/metrics` of the served app, polled until it holds every one of `needles` (an aborted operation
/// is counted when its task is dropped, a moment after the socket closes).
async fn metrics_with(addr: SocketAddr, needles: &[&str]) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        if needles.iter().all(|n| text.contains(n)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("metrics lack one of {needles:?}:\n{text}");
}

const QUEUE_TOTAL: &str = "{ incidents(first: 1) { totalCount } }";

#[tokio::test]
async fn a_message_over_the_body_limit_closes_with_1009_and_is_not_run() {
    let app = TestApp::new().await;
    // The default limit, 4 MiB, as HTTP has.
    let addr = serve(&app, WsOptions::default()).await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let alerts = json!({ "alerts": [alert_with("big", "p", "LOW", json!([]))] });

    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &ing).await;
    let big = subscribe_of_size("1", INGEST, alerts.clone(), 8 << 20);
    // The server may close before it has read it all, so the send itself may fail.
    let _ = ws.send(Message::Text(big.into())).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    assert_eq!(app.ok(&reader, QUEUE_TOTAL, json!({})).await["incidents"]["totalCount"], 0);
    let text = metrics_with(addr, &["parapet_ws_connections_closed_total{code=\"1009\"} 1"]).await;
    assert!(!text.contains("operation=\"mutation\""), "{text}");
    assert!(text.contains("parapet_alerts_ingested_total 0"), "{text}");
}

#[tokio::test]
async fn the_limit_is_the_configured_body_limit_to_the_byte() {
    let app = TestApp::new().await;
    let limit = 16 * 1024;
    let addr = serve_with(&app, HttpOptions { max_body_bytes: limit, ..Default::default() }).await;
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let alerts = |id: &str| json!({ "alerts": [alert_with(id, "p", "LOW", json!([]))] });

    // Exactly the limit: run.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &ing).await;
    ws.send(Message::Text(subscribe_of_size("1", INGEST, alerts("at"), limit).into())).await.expect("send");
    let done = recv(&mut ws).await;
    assert_eq!(done["type"], "next", "{done}");
    assert_eq!(done["payload"]["data"]["ingestAlerts"]["accepted"], 1, "{done}");
    assert_eq!(recv(&mut ws).await["type"], "complete");

    // One byte more, on the same socket: refused, the socket closes with 1009, nothing runs.
    ws.send(Message::Text(subscribe_of_size("2", INGEST, alerts("over"), limit + 1).into()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await, 1009);
    assert_eq!(app.ok(&reader, QUEUE_TOTAL, json!({})).await["incidents"]["totalCount"], 1);
}

#[tokio::test]
async fn websocket_operations_and_connections_show_in_metrics() {
    let app = TestApp::new().await;
    let addr = serve(&app, WsOptions { max_operations: 1, ..Default::default() }).await;
    let reader = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);

    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, &reader).await;
    // A query: one result, then complete.
    send(
        &mut ws,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "query Me { me { sub } }" } }),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "next");
    assert_eq!(recv(&mut ws).await["type"], "complete");
    // A subscription the client stops; a second one over the cap of 1 is refused meanwhile.
    send(&mut ws, json!({ "id": "s", "type": "subscribe", "payload": { "query": SUB } })).await;
    app.wait_subscribers("contoso", 1).await;
    send(&mut ws, json!({ "id": "t", "type": "subscribe", "payload": { "query": SUB } })).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    let live =
        metrics_with(addr, &["parapet_ws_connections 1\n", "parapet_ws_connections_opened_total 1\n"]).await;
    assert!(
        !live.contains("operation=\"subscription\""),
        "a running subscription is counted when it ends: {live}"
    );
    send(&mut ws, json!({ "id": "s", "type": "complete" })).await;

    // A subscription that errors (an ingestor may not subscribe).
    let mut other = connect(addr, "graphql-transport-ws").await;
    init(&mut other, &ing).await;
    send(&mut other, json!({ "id": "x", "type": "subscribe", "payload": { "query": SUB } })).await;
    assert_eq!(recv(&mut other).await["type"], "error");
    send(&mut other, json!({ "type": "connection_terminate" })).await;
    drop(other);
    // A socket that never authenticates.
    let mut refused = connect(addr, "graphql-transport-ws").await;
    send(&mut refused, json!({ "type": "connection_init", "payload": {} })).await;
    assert_eq!(close_code(&mut refused).await, 4403);

    let text = metrics_with(
        addr,
        &[
            "parapet_ws_operations_total{operation=\"query\",outcome=\"ok\"} 1\n",
            "parapet_ws_operations_total{operation=\"subscription\",outcome=\"cancelled\"} 1\n",
            "parapet_ws_operations_total{operation=\"subscription\",outcome=\"error\"} 1\n",
            "parapet_ws_operations_total{operation=\"unknown\",outcome=\"rejected\"} 1\n",
            "parapet_ws_connections_opened_total 3\n",
            "parapet_ws_connections_closed_total{code=\"4403\"} 1\n",
            "parapet_ws_connections_closed_total{code=\"1000\"} 1\n",
            "parapet_ws_connections 1\n",
        ],
    )
    .await;
    assert!(!text.contains("contoso"), "no tenant in metrics: {text}");
    // HTTP's per-name counter is HTTP's alone.
    assert!(!text.contains("parapet_graphql_requests_total{operation=\"Me\""), "{text}");
    drop(ws);
    metrics_with(
        addr,
        &["parapet_ws_connections 0\n", "parapet_ws_connections_closed_total{code=\"1000\"} 2\n"],
    )
    .await;
}
