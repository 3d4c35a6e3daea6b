//! GraphQL over WebSocket, our own thin loop: `graphql-transport-ws` and the legacy `graphql-ws`
//! (subscriptions-transport-ws). async-graphql 7.2's ready-made service closes a refused init with 1002
//! (clients then never retry), sends no pings and has no operation cap; this loop closes with the codes
//! the protocol defines (4401, 4403, 4408, 4409, 4429, 4400), pings, caps operations per socket, closes
//! when the token expires, and bounds what a slow client can make the server buffer.

use crate::auth::Caller;
use crate::error::AppError;
use crate::graphql::AppSchema;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The subprotocols we speak, preferred first.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// Limits of one socket.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Keep-alive interval: `ping` (transport) or `ka` (legacy).
    pub ping_interval: Duration,
    /// How long a client has to send `connection_init`.
    pub init_timeout: Duration,
    /// Most operations running at once on one socket.
    pub max_operations: usize,
    /// Messages buffered for the client before producers wait.
    pub send_buffer: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            init_timeout: Duration::from_secs(10),
            max_operations: 100,
            send_buffer: 256,
        }
    }
}

/// Which dialect the client chose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    /// `graphql-transport-ws`.
    Transport,
    /// Legacy `graphql-ws`.
    Legacy,
}

impl Dialect {
    fn data_type(self) -> &'static str {
        match self {
            Dialect::Transport => "next",
            Dialect::Legacy => "data",
        }
    }
}

enum Out {
    Json(Value),
    Close(u16, String),
}

/// Serves one upgraded socket until it closes.
pub async fn serve(socket: WebSocket, app: AppState, schema: AppSchema, opts: WsOptions) {
    let dialect = match socket.protocol().and_then(|p| p.to_str().ok()) {
        Some("graphql-ws") => Dialect::Legacy,
        _ => Dialect::Transport,
    };
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(opts.send_buffer);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            match m {
                Out::Json(v) => {
                    if sink.send(Message::Text(Utf8Bytes::from(v.to_string()))).await.is_err() {
                        return;
                    }
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
        }
    });

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut ops: HashMap<String, AbortHandle> = HashMap::new();
    let mut caller: Option<Caller> = None;
    let mut inits = 0u32;
    let init_deadline = tokio::time::sleep(opts.init_timeout);
    tokio::pin!(init_deadline);
    let never = Duration::from_secs(86_400 * 365);
    let expiry = tokio::time::sleep(never);
    tokio::pin!(expiry);
    let mut ping = tokio::time::interval(opts.ping_interval);
    ping.tick().await;

    let close = |code: u16, reason: &str| Out::Close(code, reason.to_string());
    let outcome: Out = loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => break close(4400, "binary messages are not supported"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break close(1000, "bye"),
                };
                let Ok(m) = serde_json::from_str::<Value>(text.as_str()) else {
                    break close(4400, "messages must be JSON objects");
                };
                let kind = m["type"].as_str().unwrap_or_default();
                let id = m["id"].as_str().map(str::to_string);
                match kind {
                    "connection_init" => {
                        inits += 1;
                        if inits > 1 {
                            break close(4429, "Too many initialisation requests");
                        }
                        match authenticate(&app, &m["payload"]).await {
                            Ok(c) => {
                                let left = (c.expires_at - chrono::Utc::now().timestamp()).max(0);
                                expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left.unsigned_abs()));
                                caller = Some(c);
                                if out_tx.send(Out::Json(json!({ "type": "connection_ack" }))).await.is_err() {
                                    break close(1000, "bye");
                                }
                            }
                            Err(e) => break close(4403, &format!("Forbidden: {}", e.public_message())),
                        }
                    }
                    "ping" => {
                        let _ = out_tx.send(Out::Json(json!({ "type": "pong" }))).await;
                    }
                    "pong" => {}
                    "subscribe" | "start" => {
                        let Some(c) = caller.clone() else { break close(4401, "Unauthorized") };
                        let Some(id) = id else { break close(4400, "an operation needs an id") };
                        if ops.contains_key(&id) {
                            break close(4409, &format!("Subscriber for {id} already exists"));
                        }
                        if ops.len() >= opts.max_operations {
                            let err = json!([{ "message": format!("at most {} operations may run on one socket", opts.max_operations),
                                               "extensions": { "code": "BAD_USER_INPUT" } }]);
                            let _ = out_tx.send(Out::Json(json!({ "type": "error", "id": id, "payload": err }))).await;
                            continue;
                        }
                        let request = match serde_json::from_value::<async_graphql::Request>(m["payload"].clone()) {
                            Ok(r) => r.data(c),
                            Err(_) => {
                                let err = json!([{ "message": "payload must be {query, variables, operationName}",
                                                   "extensions": { "code": "BAD_USER_INPUT" } }]);
                                let _ = out_tx.send(Out::Json(json!({ "type": "error", "id": id, "payload": err }))).await;
                                continue;
                            }
                        };
                        let handle = tokio::spawn(run(schema.clone(), request, id.clone(), dialect, out_tx.clone(), done_tx.clone()));
                        ops.insert(id, handle.abort_handle());
                    }
                    "complete" | "stop" => {
                        if let Some(h) = id.and_then(|id| ops.remove(&id)) {
                            h.abort();
                        }
                    }
                    "connection_terminate" => break close(1000, "bye"),
                    other => break close(4400, &format!("unknown message type {other:?}")),
                }
            }
            Some(id) = done_rx.recv() => { ops.remove(&id); }
            _ = ping.tick(), if caller.is_some() => {
                let keepalive = match dialect { Dialect::Transport => "ping", Dialect::Legacy => "ka" };
                if out_tx.try_send(Out::Json(json!({ "type": keepalive }))).is_err() {
                    // The client reads nothing: the buffer is full. Don't wait for it.
                }
            }
            _ = &mut init_deadline, if caller.is_none() => break close(4408, "Connection initialisation timeout"),
            _ = &mut expiry, if caller.is_some() => break close(4403, "Forbidden: token expired"),
        }
    };
    for (_, h) in ops.drain() {
        h.abort();
    }
    // The close frame goes after anything already queued; a client that reads nothing is cut off.
    let _ = tokio::time::timeout(Duration::from_secs(5), out_tx.send(outcome)).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn authenticate(app: &AppState, payload: &Value) -> Result<Caller, AppError> {
    let header = payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))
        .or_else(|| {
            payload.get("headers").and_then(|h| h.get("Authorization").or_else(|| h.get("authorization")))
        })
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "connection_init payload must be {\"Authorization\": \"Bearer <jwt>\"}".into(),
            )
        })?;
    app.authenticate(header).await
}

/// Runs one operation and forwards its results; waits when the client's buffer is full, so a slow
/// client slows only its own streams (which then catch up from the event table).
async fn run(
    schema: AppSchema,
    request: async_graphql::Request,
    id: String,
    dialect: Dialect,
    out: mpsc::Sender<Out>,
    done: mpsc::UnboundedSender<String>,
) {
    let mut responses = schema.execute_stream(request);
    while let Some(resp) = responses.next().await {
        let is_err_only = resp.data == async_graphql::Value::Null && !resp.errors.is_empty();
        let payload = serde_json::to_value(&resp).unwrap_or(Value::Null);
        let msg = if is_err_only && dialect == Dialect::Transport {
            json!({ "type": "error", "id": id, "payload": payload["errors"] })
        } else {
            json!({ "type": dialect.data_type(), "id": id, "payload": payload })
        };
        let terminal = is_err_only && dialect == Dialect::Transport;
        if out.send(Out::Json(msg)).await.is_err() {
            return;
        }
        if terminal {
            let _ = done.send(id);
            return;
        }
    }
    let _ = out.send(Out::Json(json!({ "type": "complete", "id": id }))).await;
    let _ = done.send(id);
}
