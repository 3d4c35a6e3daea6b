//! What `/metrics` serves: GraphQL requests by operation and outcome and their latency, refused HTTP
//! requests, WebSocket connections and operations, database pool usage, alerts ingested, live subscribers,
//! and the job queue (runs by outcome, depth, age of the oldest due job).
//!
//! Kept with `prometheus-client`, the Prometheus project's own Rust client. Its registry is a value, not
//! a process global: each app holds one [`Metrics`] in [`crate::state::AppState`], so the many apps a
//! test process builds never count into each other.
//!
//! **Adding a metric**: add a field to `Inner`, register it in [`Metrics::new`] (the one place that names
//! metrics; a counter is registered without its `_total`, which the encoder appends), and give it a
//! recording method here. Label values must come from a small fixed set chosen by the server (an
//! outcome, an operation type, a close code), never from user data: tenant ids never appear. The one
//! exception, HTTP operation names, is sanitised and capped at [`MAX_OPERATIONS`] distinct names (the
//! rest count as `other`), so a hostile client cannot grow memory or the scrape without bound.

use crate::db::Pool;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most distinct operation names tracked; later ones are counted as `other`.
pub const MAX_OPERATIONS: usize = 200;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How a GraphQL operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Ran to its end with no errors.
    Ok,
    /// A response carried at least one error.
    Error,
    /// Refused before execution (over a WebSocket: the operation cap, a payload that is no request).
    Rejected,
    /// Stopped by the client, or by the socket closing, before the server finished it (the usual end
    /// of a subscription).
    Cancelled,
}

impl Outcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4, the default (curl, older scrapers).
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper whose `Accept` lists `application/openmetrics-text`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for; Prometheus servers list OpenMetrics first when they
    /// support it.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationOutcome {
    operation: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WsOperationLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    requests: Family<OperationOutcome, Counter>,
    request_duration: HistogramFamily<OperationLabel>,
    /// Operation names already labelled, to hold them to [`MAX_OPERATIONS`].
    operations: Mutex<HashSet<String>>,
    rejected: Family<ReasonLabel, Counter>,
    alerts_ingested: Counter,
    emails_ingested: Counter,
    live_subscribers: Gauge,
    ws_operations: Family<WsOperationLabels, Counter>,
    ws_connections: Gauge,
    ws_connections_opened: Counter,
    ws_connections_closed: Family<CodeLabel, Counter>,
    pool_max: Gauge,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_in_use: Gauge,
    pool_waiting: Gauge,
    job_runs: Family<JobOutcomeLabel, Counter>,
    job_queue_depth: Gauge,
    job_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// This app's metrics; cheap to clone (every clone counts into the same registry).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, all at zero.
    pub fn new() -> Self {
        let mut r = Registry::default();
        r.register(
            "parapet_build",
            "Parapet version",
            Info::new(vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
        );

        let requests = Family::default();
        r.register(
            "parapet_graphql_requests",
            "GraphQL operations executed over HTTP, by operation name and outcome",
            requests.clone(),
        );
        let request_duration: HistogramFamily<OperationLabel> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        r.register_with_unit(
            "parapet_graphql_request_duration",
            "Time to execute a GraphQL operation over HTTP",
            Unit::Seconds,
            request_duration.clone(),
        );
        let rejected = Family::default();
        r.register(
            "parapet_http_rejected",
            "HTTP requests refused before execution, by reason",
            rejected.clone(),
        );

        let ws_operations = Family::default();
        r.register(
            "parapet_ws_operations",
            "GraphQL operations over WebSocket when they end, by operation type (query, mutation, \
             subscription, unknown) and outcome (ok, error, rejected, cancelled)",
            ws_operations.clone(),
        );
        let ws_connections = Gauge::default();
        r.register("parapet_ws_connections", "WebSocket connections open now", ws_connections.clone());
        let ws_connections_opened = Counter::default();
        r.register(
            "parapet_ws_connections_opened",
            "WebSocket connections accepted",
            ws_connections_opened.clone(),
        );
        let ws_connections_closed = Family::default();
        r.register(
            "parapet_ws_connections_closed",
            "WebSocket connections ended, by the close code the server sent (1009: a message over the \
             size limit; 1006: ended without one)",
            ws_connections_closed.clone(),
        );

        let alerts_ingested = Counter::default();
        r.register(
            "parapet_alerts_ingested",
            "Alerts accepted by ingestion (created or updated)",
            alerts_ingested.clone(),
        );
        let emails_ingested = Counter::default();
        r.register(
            "parapet_emails_ingested",
            "Mail-flow records accepted by ingestion (created or updated copies)",
            emails_ingested.clone(),
        );
        let live_subscribers = Gauge::default();
        r.register(
            "parapet_live_subscribers",
            "GraphQL subscriptions this process is serving",
            live_subscribers.clone(),
        );

        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let pool_max = gauge(&mut r, "parapet_db_pool_max_connections", "Most connections the pool may hold");
        let pool_size = gauge(&mut r, "parapet_db_pool_connections", "Connections the pool holds now");
        let pool_idle = gauge(&mut r, "parapet_db_pool_idle_connections", "Connections idle in the pool");
        let pool_in_use = gauge(&mut r, "parapet_db_pool_in_use_connections", "Connections lent out");
        let pool_waiting = gauge(&mut r, "parapet_db_pool_waiting", "Requests waiting for a connection");

        let job_runs = Family::default();
        r.register(
            "parapet_job_runs",
            "Job runs this process ended, by outcome (succeeded; retried: failed and queued again; failed: \
             failed for good; lost: its lease ran out and another worker took the job over)",
            job_runs.clone(),
        );
        let job_queue_depth = gauge(
            &mut r,
            "parapet_job_queue_depth",
            "Jobs queued or running, all replicas (as this process last read it)",
        );
        let job_oldest_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register_with_unit(
            "parapet_job_oldest_age",
            "How long the oldest due job has waited to be claimed (as this process last read it)",
            Unit::Seconds,
            job_oldest_age.clone(),
        );

        Self(Arc::new(Inner {
            registry: r,
            requests,
            request_duration,
            operations: Mutex::default(),
            rejected,
            alerts_ingested,
            emails_ingested,
            live_subscribers,
            ws_operations,
            ws_connections,
            ws_connections_opened,
            ws_connections_closed,
            pool_max,
            pool_size,
            pool_idle,
            pool_in_use,
            pool_waiting,
            job_runs,
            job_queue_depth,
            job_oldest_age,
        }))
    }

    /// Records one GraphQL operation executed over HTTP.
    pub fn record_request(&self, operation: &str, outcome: Outcome, elapsed: Duration) {
        let operation = self.operation_label(operation);
        self.0
            .requests
            .get_or_create(&OperationOutcome { operation: operation.clone(), outcome: outcome.as_str() })
            .inc();
        self.0.request_duration.get_or_create(&OperationLabel { operation }).observe(elapsed.as_secs_f64());
    }

    /// Counts an HTTP request refused before execution (`reason`: `body_too_large`, `batch_too_large`,
    /// `mutation_over_get`, `bad_request`).
    pub fn record_rejected(&self, reason: &'static str) {
        self.0.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one ended WebSocket operation; `operation` is its type (`query`, `mutation`,
    /// `subscription`, or `unknown` when it was refused unparsed).
    pub fn record_ws_operation(&self, operation: &'static str, outcome: Outcome) {
        self.0.ws_operations.get_or_create(&WsOperationLabels { operation, outcome: outcome.as_str() }).inc();
    }

    /// Counts an accepted WebSocket connection; the guard counts its end when dropped.
    pub fn ws_connection(&self) -> WsConnection {
        self.0.ws_connections_opened.inc();
        self.0.ws_connections.inc();
        WsConnection { metrics: self.clone(), code: None }
    }

    /// Counts `n` alerts accepted by ingestion (created or updated).
    pub fn alerts_ingested(&self, n: u64) {
        self.0.alerts_ingested.inc_by(n);
    }

    /// Counts `n` mail-flow records accepted by ingestion (created or updated copies).
    pub fn emails_ingested(&self, n: u64) {
        self.0.emails_ingested.inc_by(n);
    }

    /// Sets the live-subscriber gauge (read from the event hub at scrape time).
    pub fn set_live_subscribers(&self, n: usize) {
        self.0.live_subscribers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the pool gauges from the pool's usage now (read at scrape time).
    pub fn set_pool(&self, pool: &Pool) {
        let s = pool.status();
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.0.pool_max.set(n(s.max_size));
        self.0.pool_size.set(n(s.size));
        self.0.pool_idle.set(n(s.available));
        self.0.pool_in_use.set(n(s.size.saturating_sub(s.available)));
        self.0.pool_waiting.set(n(s.waiting));
    }

    /// Counts `n` job runs ended with `outcome` (`succeeded`, `retried`, `failed` or `lost`).
    pub fn job_runs(&self, outcome: &'static str, n: u64) {
        self.0.job_runs.get_or_create(&JobOutcomeLabel { outcome }).inc_by(n);
    }

    /// Sets the job-queue gauges: jobs queued or running, and the oldest due job's wait in seconds.
    pub fn set_job_queue(&self, depth: i64, oldest_age_secs: f64) {
        self.0.job_queue_depth.set(depth);
        self.0.job_oldest_age.set(oldest_age_secs);
    }

    /// Every metric, in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry)?
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?,
        }
        Ok(out)
    }

    /// The label for a client's operation name: sanitised, and `other` once [`MAX_OPERATIONS`] names
    /// are taken.
    fn operation_label(&self, operation: &str) -> String {
        let name = sanitize(operation);
        let Ok(mut known) = self.0.operations.lock() else { return "other".into() };
        if known.contains(&name) {
            return name;
        }
        if known.len() >= MAX_OPERATIONS {
            return "other".into();
        }
        known.insert(name.clone());
        name
    }
}

/// One open WebSocket connection, counted as closed (with the close code the server sent, or 1006 when
/// it sent none) when dropped.
pub struct WsConnection {
    metrics: Metrics,
    code: Option<u16>,
}

impl WsConnection {
    /// Notes the close code the server is sending.
    pub fn closing(&mut self, code: u16) {
        self.code = Some(code);
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        let m = &self.metrics.0;
        m.ws_connections.dec();
        m.ws_connections_closed.get_or_create(&CodeLabel { code: self.code.unwrap_or(1006) }).inc();
    }
}

/// A metric label value made readable: `[A-Za-z0-9_]`, at most 64 characters, `anonymous` when empty.
fn sanitize(name: &str) -> String {
    let s: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
    if s.is_empty() {
        "anonymous".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize("Queue"), "Queue");
        assert_eq!(sanitize("a\"b}\nc"), "abc");
        assert_eq!(sanitize(""), "anonymous");
    }

    #[test]
    fn a_recorded_request_shows_up_with_its_histogram() -> Result<(), std::fmt::Error> {
        let m = Metrics::new();
        m.record_request("MetricsUnitTest", Outcome::Ok, Duration::from_millis(20));
        let text = m.render(Format::Prometheus)?;
        for needle in [
            "# TYPE parapet_graphql_requests_total counter",
            "parapet_graphql_requests_total{operation=\"MetricsUnitTest\",outcome=\"ok\"} 1",
            "parapet_graphql_request_duration_seconds_bucket{operation=\"MetricsUnitTest\",le=\"0.025\"} 1",
            "parapet_graphql_request_duration_seconds_bucket{operation=\"MetricsUnitTest\",le=\"0.01\"} 0",
            "parapet_graphql_request_duration_seconds_count{operation=\"MetricsUnitTest\"} 1",
            "parapet_build_info{version=\"",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
        let open = m.render(Format::OpenMetrics)?;
        assert!(open.contains("# TYPE parapet_graphql_requests counter"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        Ok(())
    }

    #[test]
    fn operation_names_are_capped() -> Result<(), std::fmt::Error> {
        let m = Metrics::new();
        for i in 0..MAX_OPERATIONS + 5 {
            m.record_request(&format!("Op{i}"), Outcome::Ok, Duration::ZERO);
        }
        let text = m.render(Format::Prometheus)?;
        assert!(text.contains("operation=\"other\",outcome=\"ok\"} 5"), "{text}");
        assert!(text.contains("operation=\"Op0\",outcome=\"ok\"} 1"));
        Ok(())
    }

    #[test]
    fn a_websocket_connection_is_counted_until_dropped() -> Result<(), std::fmt::Error> {
        let m = Metrics::new();
        let mut c = m.ws_connection();
        assert!(m.render(Format::Prometheus)?.contains("parapet_ws_connections 1\n"));
        c.closing(1009);
        drop(c);
        let text = m.render(Format::Prometheus)?;
        assert!(text.contains("parapet_ws_connections 0\n"), "{text}");
        assert!(text.contains("parapet_ws_connections_opened_total 1\n"), "{text}");
        assert!(text.contains("parapet_ws_connections_closed_total{code=\"1009\"} 1\n"), "{text}");
        Ok(())
    }
}
