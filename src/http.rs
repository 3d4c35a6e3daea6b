//! The HTTP surface: `/graphql` (POST, and GET for queries), `/graphql/ws`, `/playground`, `/healthz`,
//! `/readyz`, `/metrics`.
//!
//! Protection at this layer: a body limit (HTTP 413 beyond it), a cap on batched operations, GET allowed
//! for queries only (a mutation over GET could be triggered by a link or an image tag), a request that does
//! not decode (not JSON, not UTF-8, a lone surrogate escape) refused whole with HTTP 400 `BAD_REQUEST`,
//! and CORS only for configured origins. Each executed operation is counted in [`crate::metrics`] and
//! logged once with its name, duration and outcome.

use crate::auth::Caller;
use crate::config::Config;
use crate::error::AppError;
use crate::graphql::{AppSchema, AuthFailure};
use crate::metrics::{Format, Outcome};
use crate::state::AppState;
use async_graphql::http::MultipartOptions;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Request};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// HTTP-level limits and CORS.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// WebSocket limits.
    pub ws: crate::ws::WsOptions,
    /// Longest a GraphQL request over HTTP may run.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_batch: 10,
            cors_origins: vec![],
            ws: Default::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl From<&Config> for HttpOptions {
    fn from(c: &Config) -> Self {
        Self {
            max_body_bytes: c.max_body_bytes,
            max_batch: c.max_batch,
            cors_origins: c.cors_origins(),
            ws: Default::default(),
            request_timeout: Duration::from_millis(c.request_timeout_ms),
        }
    }
}

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: AppSchema,
    max_body_bytes: usize,
    max_batch: usize,
    ws: crate::ws::WsOptions,
    request_timeout: Duration,
}

/// Builds the router with default options.
pub fn router(app: AppState, schema: AppSchema) -> Router {
    router_with(app, schema, &HttpOptions::default())
}

/// Builds the router with `options`.
pub fn router_with(app: AppState, schema: AppSchema, options: &HttpOptions) -> Router {
    let state = HttpState {
        app,
        schema,
        max_body_bytes: options.max_body_bytes,
        max_batch: options.max_batch.max(1),
        ws: options.ws.clone(),
        request_timeout: options.request_timeout,
    };
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        // The page and its assets, with their own caching and CSP headers.
        .merge(crate::playground::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state);
    let origins: Vec<HeaderValue> =
        options.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    if !origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(Duration::from_secs(600)),
        );
    }
    router
}

async fn graphql_post(
    State(s): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                &s,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than the limit of {} bytes", s.max_body_bytes),
            )
        }
        Err(e) => return refuse(&s, e.status(), "bad_request", format!("cannot read the request body: {e}")),
    };
    // async-graphql reads `[]` as one request with an empty query; call it what it is.
    if body.trim_ascii_start().starts_with(b"[")
        && serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).is_ok_and(|v| v.is_empty())
    {
        return refuse(&s, StatusCode::BAD_REQUEST, "bad_request", "the batch holds no operations".into());
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let batch = match async_graphql::http::receive_batch_body(
        content_type,
        body.as_ref(),
        MultipartOptions::default(),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                &s,
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("invalid GraphQL request: {e}"),
            )
        }
    };
    execute(&s, &headers, batch, false).await
}

async fn graphql_get(State(s): State<HttpState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    match request_from_query_string(query.as_deref().unwrap_or_default()) {
        Ok(req) => execute(&s, &headers, BatchRequest::Single(req), true).await,
        Err(e) => refuse(&s, StatusCode::BAD_REQUEST, "bad_request", format!("invalid GraphQL request: {e}")),
    }
}

/// A GraphQL request from GET parameters (`query`, `operationName`, `variables`, `extensions`; the last
/// two JSON-encoded). async-graphql 7.2.1's own parser expects `operation_name`, not the standard
/// `operationName`, hence this.
fn request_from_query_string(qs: &str) -> Result<Request, String> {
    let mut obj = serde_json::Map::new();
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (form_component(key)?, form_component(value)?);
        let (field, json) = match key.as_str() {
            "query" => ("query", false),
            "operationName" | "operation_name" => ("operationName", false),
            "variables" => ("variables", true),
            "extensions" => ("extensions", true),
            _ => continue,
        };
        let v = if json {
            if value.trim().is_empty() {
                continue;
            }
            serde_json::from_str(&value).map_err(|e| format!("{key} is not JSON: {e}"))?
        } else {
            serde_json::Value::String(value)
        };
        obj.insert(field.to_string(), v);
    }
    if !obj.contains_key("query") {
        return Err("the query parameter is missing".into());
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| e.to_string())
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte). Bytes that
/// are not UTF-8 are refused, where `url::form_urlencoded::parse` would silently replace them.
fn form_component(raw: &str) -> Result<String, String> {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make one byte (at most 255).
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query string is not UTF-8 once percent-decoded".to_string())
}

/// Name and kind of the operation a request will run (parsing once; the schema reuses the parse).
pub(crate) fn operation_of(req: &mut Request) -> (String, Option<OperationType>) {
    let wanted = req.operation_name.clone();
    let kind = match req.parsed_query() {
        Ok(doc) => match &doc.operations {
            DocumentOperations::Single(op) => Some(op.node.ty),
            DocumentOperations::Multiple(ops) => match &wanted {
                Some(n) => ops.iter().find(|(k, _)| k.as_str() == n).map(|(_, op)| op.node.ty),
                None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
                None => None,
            },
        },
        Err(_) => None,
    };
    let name = match (&wanted, req.parsed_query()) {
        (Some(n), _) => n.clone(),
        (None, Ok(doc)) => match &doc.operations {
            DocumentOperations::Multiple(ops) if ops.len() == 1 => {
                ops.keys().next().map(|k| k.to_string()).unwrap_or_default()
            }
            _ => String::new(),
        },
        (None, Err(_)) => String::new(),
    };
    (name, kind)
}

async fn execute(s: &HttpState, headers: &HeaderMap, batch: BatchRequest, over_get: bool) -> Response {
    let (mut requests, batched) = match batch {
        BatchRequest::Single(r) => (vec![r], false),
        BatchRequest::Batch(v) => (v, true),
    };
    if requests.is_empty() {
        return refuse(s, StatusCode::BAD_REQUEST, "bad_request", "the batch holds no operations".into());
    }
    if requests.len() > s.max_batch {
        return refuse(
            s,
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            format!("a batch may hold at most {} operations; this one holds {}", s.max_batch, requests.len()),
        );
    }
    let ops: Vec<(String, Option<OperationType>)> = requests.iter_mut().map(operation_of).collect();
    if over_get
        && ops.iter().any(|(_, k)| matches!(k, Some(OperationType::Mutation | OperationType::Subscription)))
    {
        let mut resp = refuse(
            s,
            StatusCode::METHOD_NOT_ALLOWED,
            "mutation_over_get",
            "mutations are not allowed over GET; send them with POST".into(),
        );
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }

    // One deadline for the whole request, batch included.
    let deadline = tokio::time::Instant::now() + s.request_timeout;
    let auth = authenticate(&s.app, headers).await;
    if let Some(Err(e @ (AppError::Unavailable(_) | AppError::Transient(_) | AppError::ConnectionLost(_)))) =
        &auth
    {
        // Nothing ran yet, so the client may simply send the request again.
        return unavailable_before_execution(s, e);
    }
    let mut responses = Vec::with_capacity(requests.len());
    for (index, (mut req, (name, _))) in requests.into_iter().zip(ops).enumerate() {
        let (tenant, sub) = match &auth {
            Some(Ok(c)) => {
                req = req.data(c.clone());
                (Some(c.tenant_id.clone()), Some(c.sub.clone()))
            }
            Some(Err(e)) => {
                req = req.data(AuthFailure(e.clone()));
                (None, None)
            }
            None => (None, None),
        };
        let started = Instant::now();
        let resp = match crate::db::abandoning(deadline, s.schema.execute(req)).await {
            Some(resp) => resp,
            None => timed_out(s.request_timeout),
        };
        let elapsed = started.elapsed();
        let outcome = if resp.errors.is_empty() { Outcome::Ok } else { Outcome::Error };
        s.app.metrics.record_request(&name, outcome, elapsed);
        let codes: Vec<String> = resp.errors.iter().map(error_code).collect();
        tracing::info!(
            operation = if name.is_empty() { "anonymous" } else { name.as_str() },
            outcome = outcome.as_str(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            errors = %codes.join(","),
            tenant = tenant.as_deref().unwrap_or("-"),
            sub = sub.as_deref().unwrap_or("-"),
            batch_index = if batched { Some(index) } else { None },
            method = if over_get { "GET" } else { "POST" },
            "graphql"
        );
        responses.push(resp);
    }
    let body = if batched {
        BatchResponse::Batch(responses)
    } else {
        match responses.pop() {
            Some(r) => BatchResponse::Single(r),
            None => BatchResponse::Batch(vec![]),
        }
    };
    GraphQLResponse::from(body).into_response()
}

/// The caller from the `Authorization` header: `None` without one, `Some(Err)` when it is refused.
async fn authenticate(app: &AppState, headers: &HeaderMap) -> Option<Result<Caller, AppError>> {
    let h = headers.get(header::AUTHORIZATION)?;
    Some(match h.to_str() {
        Ok(v) => app.authenticate(v).await,
        Err(_) => Err(AppError::Unauthenticated("Authorization header is not text".into())),
    })
}

/// An error's `extensions.code` for the log (`GRAPHQL` for one the schema raised without a code).
pub(crate) fn error_code(e: &async_graphql::ServerError) -> String {
    e.extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .map(|v| v.to_string().trim_matches('"').to_string())
        .unwrap_or_else(|| "GRAPHQL".into())
}

/// The answer to a request refused because the database could not be reached in time (HTTP 503):
/// nothing was executed, so it is safe to send again after the `Retry-After` delay.
fn unavailable_before_execution(s: &HttpState, e: &AppError) -> Response {
    s.app.metrics.record_rejected("unavailable");
    tracing::warn!(error = ?e, "graphql request refused: database unavailable");
    let body =
        json!({ "errors": [{ "message": e.public_message(), "extensions": { "code": "UNAVAILABLE" } }] });
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The answer for an operation stopped at the request deadline. Its work was dropped and the
/// connections it held closed, so PostgreSQL rolls back what it had not committed; only a commit
/// already under way at the deadline may have landed, hence the advice for mutations.
fn timed_out(limit: Duration) -> async_graphql::Response {
    let message = format!(
        "the request was stopped after {} ms (PARAPET_REQUEST_TIMEOUT); what it had not committed was \
         rolled back. A query may be sent again; a mutation may have completed just before the \
         deadline, so read what it changes before repeating it",
        limit.as_millis()
    );
    let mut error = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "UNAVAILABLE");
    ext.set("reason", "REQUEST_TIMEOUT");
    error.extensions = Some(ext);
    async_graphql::Response::from_errors(vec![error])
}

/// A refusal before execution, shaped like a GraphQL error response.
fn refuse(s: &HttpState, status: StatusCode, reason: &'static str, message: String) -> Response {
    s.app.metrics.record_rejected(reason);
    tracing::info!(status = status.as_u16(), reason, message = %message, "graphql request refused");
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_REQUEST" } }] });
    (status, Json(body)).into_response()
}

/// GraphQL over WebSocket (`graphql-transport-ws` and the legacy `graphql-ws`), served by
/// [`crate::ws`]. The `connection_init` payload must carry `{"Authorization": "Bearer <jwt>"}`.
async fn graphql_ws(State(s): State<HttpState>, upgrade: WebSocketUpgrade) -> Response {
    crate::ws::upgrade(upgrade, s.max_body_bytes, s.app.clone(), s.schema.clone(), s.ws.clone())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(s): State<HttpState>) -> Response {
    // A database that does not answer must not hang the probe.
    let ready =
        tokio::time::timeout(Duration::from_secs(3), crate::db::is_ready(&s.app.pool)).await.unwrap_or(false);
    if ready {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": "database unreachable or not migrated" })),
        )
            .into_response()
    }
}

async fn metrics_text(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    let metrics = &s.app.metrics;
    metrics.set_live_subscribers(s.app.hub.subscribers_total().await);
    metrics.set_pool(&s.app.pool);
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match metrics.render(format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
