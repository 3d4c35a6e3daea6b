//! Several replicas on one database: two real `parapet serve` processes share a fresh test database. An
//! alert ingested on one reaches a WebSocket subscriber on the other, a cursor from one resumes on the
//! other, and a campaign split across both still correlates into exactly one incident.

mod common;

use common::alerts::*;
use common::replica::Replica;
use common::*;
use diesel_async::RunQueryDsl;
use futures::{SinkExt, StreamExt};
use parapet::auth::Role;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

impl Replica {
    /// Opens a graphql-transport-ws connection authenticated with `token`.
    async fn ws(&self, token: &str) -> Ws {
        let mut req = format!("ws://{}/graphql/ws", self.addr).into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().expect("header"));
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("WebSocket connects");
        let init =
            json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        socket.send(Message::text(init.to_string())).await.expect("send connection_init");
        let mut ws = Ws { socket };
        let ack = ws.recv(Duration::from_secs(10)).await;
        assert_eq!(ack["type"], "connection_ack", "{ack:#}");
        ws
    }
}

/// A graphql-transport-ws client connection.
struct Ws {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let msg =
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.socket.send(Message::text(msg.to_string())).await.expect("send subscribe");
    }

    /// The next protocol message (answering pings on the way).
    async fn recv(&mut self, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("socket healthy");
            let text = match msg {
                Message::Text(t) => t.as_str().to_string(),
                Message::Ping(p) => {
                    let _ = self.socket.send(Message::Pong(p)).await;
                    continue;
                }
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).expect("JSON message");
            match v["type"].as_str() {
                Some("ping") => {
                    let pong = json!({ "type": "pong" }).to_string();
                    self.socket.send(Message::text(pong)).await.expect("pong");
                }
                Some("pong") | Some("ka") => {}
                _ => return v,
            }
        }
    }

    /// The payload of the next `next` message for subscription `id`.
    async fn next(&mut self, id: &str, within: Duration) -> Value {
        let v = self.recv(within).await;
        assert_eq!(v["type"], "next", "{v:#}");
        assert_eq!(v["id"], id, "{v:#}");
        assert!(v["payload"].get("errors").is_none() || v["payload"]["errors"].is_null(), "{v:#}");
        v["payload"]["data"].clone()
    }
}

const CORRELATED: &str = "subscription($after: String) { alertCorrelated(after: $after) { \
    cursor kind alert { id providerAlertId } incident { id } } }";

const BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_ingested_on_one_replica_reaches_a_subscriber_on_the_other() {
    let app = TestApp::new().await;
    let a = Replica::start("A", &app.db_url, &[]).await;
    let b = Replica::start("B", &app.db_url, &[]).await;
    let http = reqwest::Client::new();
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let reader = app.token("contoso", "wall@contoso.com", &[Role::Reader]);

    let mut on_a = a.ws(&reader).await;
    on_a.subscribe("1", CORRELATED, json!({})).await;
    let mut on_b = b.ws(&reader).await;
    on_b.subscribe("1", CORRELATED, json!({})).await;
    // The subscribe message has no acknowledgement: give both servers a moment to register them.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let alert = url_alert("r1", "alice@contoso.com", "https://replica.example/x", "x@replica.example");
    let sent = b.gql(&http, &ing, INGEST, json!({ "alerts": [alert] })).await;
    let item = &sent["ingestAlerts"]["items"][0];
    let e = on_a.next("1", BOUND).await["alertCorrelated"].clone();
    assert_eq!(e["kind"], "NEW_INCIDENT");
    assert_eq!(e["alert"]["id"], item["alert"]["id"]);
    assert_eq!(e["incident"]["id"], item["alert"]["incident"]["id"]);
    let same = on_b.next("1", BOUND).await["alertCorrelated"].clone();
    assert_eq!(same["cursor"], e["cursor"], "one event, one cursor, whichever replica delivers it");

    // Ingest on A now: B's subscriber gets it, and the two replicas agree on the order.
    let alert = url_alert("r2", "bob@contoso.com", "https://replica.example/x", "y@replica.example");
    a.gql(&http, &ing, INGEST, json!({ "alerts": [alert] })).await;
    let on_b2 = on_b.next("1", BOUND).await["alertCorrelated"].clone();
    let on_a2 = on_a.next("1", BOUND).await["alertCorrelated"].clone();
    assert_eq!(on_b2["kind"], "JOINED");
    assert_eq!(on_b2["alert"]["providerAlertId"], "r2");
    assert_eq!(on_a2["cursor"], on_b2["cursor"]);

    // No sticky sessions: a cursor A handed out resumes on B with nothing missed and nothing repeated.
    drop(on_a);
    let mut resumed = b.ws(&reader).await;
    resumed.subscribe("7", CORRELATED, json!({ "after": e["cursor"] })).await;
    let r = resumed.next("7", BOUND).await["alertCorrelated"].clone();
    assert_eq!(r["alert"]["providerAlertId"], "r2");
    assert_eq!(r["cursor"], on_b2["cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_split_over_two_replicas_yields_one_incident() {
    let app = TestApp::new().await;
    let a = Arc::new(Replica::start("A", &app.db_url, &[]).await);
    let b = Arc::new(Replica::start("B", &app.db_url, &[]).await);
    let http = reqwest::Client::new();
    let ing = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let alerts: Vec<Value> = (0..50)
        .map(|i| {
            url_alert(
                &format!("camp-{i}"),
                &format!("user{i}@contoso.com"),
                "https://phish.example/login",
                &format!("s{i}@phish.example"),
            )
        })
        .collect();
    // Ten clients at once, alternating replicas; half send one alert per call, half a batch of five.
    let mut handles = vec![];
    for (n, chunk) in alerts.chunks(5).map(|c| c.to_vec()).enumerate() {
        let replica = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (http, ing) = (http.clone(), ing.clone());
        handles.push(tokio::spawn(async move {
            let mut out = vec![];
            if n % 4 < 2 {
                for alert in chunk {
                    out.push(replica.gql(&http, &ing, INGEST, json!({ "alerts": [alert] })).await);
                }
            } else {
                out.push(replica.gql(&http, &ing, INGEST, json!({ "alerts": chunk })).await);
            }
            out
        }));
    }
    let mut incidents = std::collections::HashSet::new();
    for h in handles {
        for r in h.await.expect("client") {
            assert_eq!(r["ingestAlerts"]["rejected"], 0, "{r:#}");
            for item in r["ingestAlerts"]["items"].as_array().expect("items") {
                incidents.insert(item["alert"]["incident"]["id"].as_str().expect("incident").to_string());
            }
        }
    }
    #[derive(diesel::QueryableByName, Debug)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Int4)]
        alert_count: i32,
    }
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<Row> =
        diesel::sql_query("SELECT status, alert_count FROM incidents WHERE tenant_id = 'contoso'")
            .load(&mut conn)
            .await
            .expect("incidents");
    assert_eq!(rows.len(), 1, "exactly one incident, none created and merged away: {rows:?}");
    assert_eq!(rows[0].alert_count, 50, "{rows:?}");
    assert_ne!(rows[0].status, "REDIRECTED");
    assert_eq!(incidents.len(), 1, "every call placed its alerts in that incident: {incidents:?}");
}
