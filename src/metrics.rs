//! Process-wide counters and the Prometheus text `/metrics` serves: GraphQL requests by operation and
//! outcome, their latency, refused HTTP requests, database pool usage, and alerts ingested.
//!
//! Counters are global (one process, one set) so any layer can bump them without threading state
//! through: ingestion calls [`alerts_ingested`]. Operation names come from clients, so they are
//! sanitised and capped at [`MAX_OPERATIONS`] distinct names (the rest count as `other`), keeping a
//! hostile client from growing memory or the scrape without bound.

use crate::db::Pool;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Most distinct operation names tracked; later ones are counted as `other`.
pub const MAX_OPERATIONS: usize = 200;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How a GraphQL operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No errors.
    Ok,
    /// The response carried at least one error.
    Error,
}

impl Outcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Requests {
    counts: BTreeMap<(String, Outcome), u64>,
    latency: BTreeMap<String, Histogram>,
}

#[derive(Default)]
struct Registry {
    requests: Mutex<Requests>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    alerts_ingested: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// Counts `n` alerts accepted by ingestion (created or updated).
pub fn alerts_ingested(n: u64) {
    REGISTRY.alerts_ingested.fetch_add(n, Ordering::Relaxed);
}

/// Total alerts counted by [`alerts_ingested`] so far.
pub fn alerts_ingested_total() -> u64 {
    REGISTRY.alerts_ingested.load(Ordering::Relaxed)
}

/// Records one executed GraphQL operation.
pub fn record_request(operation: &str, outcome: Outcome, elapsed: Duration) {
    let Ok(mut r) = REGISTRY.requests.lock() else { return };
    let mut name = sanitize(operation);
    if !r.latency.contains_key(&name) && r.latency.len() >= MAX_OPERATIONS {
        name = "other".to_string();
    }
    *r.counts.entry((name.clone(), outcome)).or_default() += 1;
    let h = r.latency.entry(name).or_default();
    let secs = elapsed.as_secs_f64();
    h.count += 1;
    h.sum += secs;
    for (i, bound) in BUCKETS.iter().enumerate() {
        if secs <= *bound {
            h.buckets[i] += 1;
        }
    }
}

/// Counts an HTTP request refused before execution (`reason`: `body_too_large`, `batch_too_large`,
/// `mutation_over_get`, `bad_request`).
pub fn record_rejected(reason: &'static str) {
    if let Ok(mut r) = REGISTRY.rejected.lock() {
        *r.entry(reason).or_default() += 1;
    }
}

/// A metric label value made safe: `[A-Za-z0-9_]`, at most 64 characters, `anonymous` when empty.
fn sanitize(name: &str) -> String {
    let s: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
    if s.is_empty() {
        "anonymous".to_string()
    } else {
        s
    }
}

/// The Prometheus text exposition of every metric, with the pool's current usage and the number of live
/// subscribers.
pub fn render(pool: Option<&Pool>, subscribers: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP parapet_build_info Parapet version.");
    let _ = writeln!(out, "# TYPE parapet_build_info gauge");
    let _ = writeln!(out, "parapet_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

    let _ = writeln!(
        out,
        "# HELP parapet_graphql_requests_total GraphQL operations executed, by operation name and outcome."
    );
    let _ = writeln!(out, "# TYPE parapet_graphql_requests_total counter");
    let _ =
        writeln!(out, "# HELP parapet_graphql_request_duration_seconds Time to execute a GraphQL operation.");
    let _ = writeln!(out, "# TYPE parapet_graphql_request_duration_seconds histogram");
    if let Ok(r) = REGISTRY.requests.lock() {
        for ((op, outcome), n) in &r.counts {
            let _ = writeln!(
                out,
                "parapet_graphql_requests_total{{operation=\"{op}\",outcome=\"{}\"}} {n}",
                outcome.as_str()
            );
        }
        for (op, h) in &r.latency {
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "parapet_graphql_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "parapet_graphql_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ =
                writeln!(out, "parapet_graphql_request_duration_seconds_sum{{operation=\"{op}\"}} {}", h.sum);
            let _ = writeln!(
                out,
                "parapet_graphql_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
    }

    let _ = writeln!(
        out,
        "# HELP parapet_http_rejected_total HTTP requests refused before execution, by reason."
    );
    let _ = writeln!(out, "# TYPE parapet_http_rejected_total counter");
    if let Ok(r) = REGISTRY.rejected.lock() {
        for (reason, n) in r.iter() {
            let _ = writeln!(out, "parapet_http_rejected_total{{reason=\"{reason}\"}} {n}");
        }
    }

    let _ = writeln!(
        out,
        "# HELP parapet_alerts_ingested_total Alerts accepted by ingestion (created or updated)."
    );
    let _ = writeln!(out, "# TYPE parapet_alerts_ingested_total counter");
    let _ = writeln!(out, "parapet_alerts_ingested_total {}", alerts_ingested_total());

    let _ = writeln!(out, "# HELP parapet_live_subscribers GraphQL subscriptions this process is serving.");
    let _ = writeln!(out, "# TYPE parapet_live_subscribers gauge");
    let _ = writeln!(out, "parapet_live_subscribers {subscribers}");

    if let Some(pool) = pool {
        let s = pool.status();
        let gauges = [
            ("parapet_db_pool_max_connections", "Most connections the pool may hold.", s.max_size),
            ("parapet_db_pool_connections", "Connections the pool holds now.", s.size),
            ("parapet_db_pool_idle_connections", "Connections idle in the pool.", s.available),
            (
                "parapet_db_pool_in_use_connections",
                "Connections lent out.",
                s.size.saturating_sub(s.available),
            ),
            ("parapet_db_pool_waiting", "Requests waiting for a connection.", s.waiting),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
    }
    out
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
    fn a_recorded_request_shows_up_with_its_histogram() {
        record_request("MetricsUnitTest", Outcome::Ok, Duration::from_millis(20));
        let text = render(None, 0);
        assert!(
            text.contains("parapet_graphql_requests_total{operation=\"MetricsUnitTest\",outcome=\"ok\"} 1")
        );
        assert!(text.contains(
            "parapet_graphql_request_duration_seconds_bucket{operation=\"MetricsUnitTest\",le=\"0.025\"} 1"
        ));
        assert!(text.contains(
            "parapet_graphql_request_duration_seconds_bucket{operation=\"MetricsUnitTest\",le=\"0.01\"} 0"
        ));
    }
}
