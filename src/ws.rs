//! GraphQL over WebSocket, our own thin loop: `graphql-transport-ws` and the legacy `graphql-ws`
//! (subscriptions-transport-ws). async-graphql 7.2's ready-made service closes a refused init with 1002
//! (clients then never retry), sends no pings and has no operation cap; this loop closes with the codes
//! the protocol defines (4401, 4403, 4408, 4409, 4429, 4400), pings, caps operations per socket, closes
//! when the token expires, and bounds what a slow client can make the server buffer.
//!
//! A message or frame over the HTTP body limit (`PARAPET_MAX_BODY_BYTES`) is refused by its header,
//! before its payload is buffered, and the socket closes with 1009 (Message Too Big): the WebSocket
//! keeps the limits of HTTP (depth and complexity apply in the schema, to both). Each operation is
//! counted in [`crate::metrics`] by type and outcome when it ends, and logged once like an HTTP one;
//! connections are counted by the close code they end with.

use crate::auth::Caller;
use crate::error::AppError;
use crate::graphql::AppSchema;
use crate::metrics::{Metrics, Outcome};
use crate::state::AppState;
use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
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

/// Accepts the upgrade with our subprotocols and a size limit of `max_message_bytes` for a message and
/// for a frame, and serves the socket.
pub fn upgrade(
    upgrade: WebSocketUpgrade,
    max_message_bytes: usize,
    app: AppState,
    schema: AppSchema,
    opts: WsOptions,
) -> Response {
    upgrade
        .protocols(PROTOCOLS)
        .max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
        .on_upgrade(move |socket| serve(socket, app, schema, opts, max_message_bytes))
        .into_response()
}

/// Serves one upgraded socket until it closes.
async fn serve(
    socket: WebSocket,
    app: AppState,
    schema: AppSchema,
    opts: WsOptions,
    max_message_bytes: usize,
) {
    let mut connection = app.metrics.ws_connection();
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
                    // tungstenite only reports the overflow; the client hears of it from us.
                    Some(Err(e)) if is_too_big(&e) => {
                        break close(1009, &format!("Message Too Big: at most {max_message_bytes} bytes"))
                    }
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
                            refused(&app.metrics, &c, "operation cap");
                            let err = json!([{ "message": format!("at most {} operations may run on one socket", opts.max_operations),
                                               "extensions": { "code": "BAD_USER_INPUT" } }]);
                            let _ = out_tx.send(Out::Json(json!({ "type": "error", "id": id, "payload": err }))).await;
                            continue;
                        }
                        let mut request = match serde_json::from_value::<async_graphql::Request>(m["payload"].clone()) {
                            Ok(r) => r,
                            Err(_) => {
                                refused(&app.metrics, &c, "payload is no GraphQL request");
                                let err = json!([{ "message": "payload must be {query, variables, operationName}",
                                                   "extensions": { "code": "BAD_USER_INPUT" } }]);
                                let _ = out_tx.send(Out::Json(json!({ "type": "error", "id": id, "payload": err }))).await;
                                continue;
                            }
                        };
                        let (name, kind) = crate::http::operation_of(&mut request);
                        let op = Operation::new(&app.metrics, name, kind, &c);
                        let request = request.data(c);
                        let handle = tokio::spawn(run(schema.clone(), request, id.clone(), dialect, out_tx.clone(), done_tx.clone(), op));
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
    if let Out::Close(code, reason) = &outcome {
        connection.closing(*code);
        if *code != 1000 {
            let tenant = caller.as_ref().map_or("-", |c| c.tenant_id.as_str());
            tracing::info!(code, reason = %reason, tenant, "websocket closed");
        }
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
    mut op: Operation,
) {
    let mut responses = schema.execute_stream(request);
    while let Some(resp) = responses.next().await {
        op.saw(&resp.errors);
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
            op.finished = true;
            let _ = done.send(id);
            return;
        }
    }
    op.finished = true;
    let _ = out.send(Out::Json(json!({ "type": "complete", "id": id }))).await;
    let _ = done.send(id);
}

/// Whether a read failed because a message or frame was over the size limit. axum hands tungstenite's
/// error over boxed; tungstenite must stay the version axum uses for the downcast to match (a test
/// checks the 1009).
fn is_too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>()).is_some_and(|e| {
        matches!(e, tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { .. }))
    })
}

/// Counts and logs an operation refused before it ran (its type is unknown: it was not parsed).
fn refused(metrics: &Metrics, caller: &Caller, reason: &str) {
    metrics.record_ws_operation("unknown", Outcome::Rejected);
    tracing::info!(
        reason,
        tenant = caller.tenant_id.as_str(),
        sub = caller.sub.as_str(),
        method = "WS",
        "graphql operation refused"
    );
}

/// One running operation; counted and logged when dropped, so an operation the client stops (the task
/// is aborted) is counted too.
struct Operation {
    metrics: Metrics,
    name: String,
    kind: &'static str,
    tenant: String,
    sub: String,
    started: Instant,
    /// Distinct error codes seen (server-chosen, so few).
    errors: BTreeSet<String>,
    /// The server ran it to its end (else the client or the socket stopped it).
    finished: bool,
}

impl Operation {
    fn new(metrics: &Metrics, name: String, kind: Option<OperationType>, caller: &Caller) -> Self {
        let kind = match kind {
            Some(OperationType::Query) => "query",
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            None => "unknown",
        };
        Self {
            metrics: metrics.clone(),
            name,
            kind,
            tenant: caller.tenant_id.clone(),
            sub: caller.sub.clone(),
            started: Instant::now(),
            errors: BTreeSet::new(),
            finished: false,
        }
    }

    fn saw(&mut self, errors: &[async_graphql::ServerError]) {
        self.errors.extend(errors.iter().map(crate::http::error_code));
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        let outcome = match (self.errors.is_empty(), self.finished) {
            (false, _) => Outcome::Error,
            (true, true) => Outcome::Ok,
            (true, false) => Outcome::Cancelled,
        };
        self.metrics.record_ws_operation(self.kind, outcome);
        let errors: Vec<&str> = self.errors.iter().map(String::as_str).collect();
        tracing::info!(
            operation = if self.name.is_empty() { "anonymous" } else { self.name.as_str() },
            kind = self.kind,
            outcome = outcome.as_str(),
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            errors = %errors.join(","),
            tenant = self.tenant.as_str(),
            sub = self.sub.as_str(),
            method = "WS",
            "graphql"
        );
    }
}
