//! The event hub with many tenants: one statement per poll for all tenants with live subscribers,
//! each tenant's events only to its own subscribers, and a slow poll that blocks neither new
//! subscriptions nor `/metrics`. Its own test binary, so the process-wide statement counter sees no
//! other test's queries.

mod common;

use common::alerts::*;
use common::*;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Statements that read the events table (what a hub poll sends).
static EVENT_READS: AtomicUsize = AtomicUsize::new(0);

struct Counter;

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            if text.contains("FROM \"events\"") || text.contains("FROM events") {
                EVENT_READS.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

const TENANTS: usize = 1000;
const SUB: &str = "subscription { alertCorrelated { kind alert { providerAlertId } } }";

#[tokio::test]
async fn a_thousand_tenants_cost_one_read_per_poll() {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Counter))).expect("instrumentation");
    let app = TestApp::new().await;
    let mut subs = Vec::with_capacity(TENANTS);
    for n in 0..TENANTS {
        let tenant = format!("t{n:04}");
        let reader = app.token(&tenant, &format!("r@{tenant}.example"), &[Role::Reader]);
        subs.push(app.subscribe(&reader, SUB, json!({})).await);
    }
    for n in 0..TENANTS {
        app.wait_subscribers(&format!("t{n:04}"), 1).await;
    }
    assert_eq!(app.state.hub.tenants().await, TENANTS);

    // Idle: the timer re-polls every tenant twice a second. One statement per poll, not one per tenant.
    let before = EVENT_READS.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = EVENT_READS.load(Ordering::SeqCst) - before;
    eprintln!("{idle} event reads in 3 s with {TENANTS} tenants subscribed");
    assert!(idle <= 12, "{idle} event reads in 3 s: the hub polls tenants one by one");

    // Events of a few tenants reach their own subscribers and nobody else's.
    let writers = [3usize, 500, 999];
    for n in writers {
        let tenant = format!("t{n:04}");
        let ing = app.token(&tenant, &format!("gw@{tenant}.example"), &[Role::Ingestor]);
        let id = format!("a-{tenant}");
        app.ok(
            &ing,
            INGEST,
            json!({ "alerts": [url_alert(&id, "u@x.example", "https://x.example/", "s@evil.example")] }),
        )
        .await;
    }
    for n in writers {
        let got = next_data(&mut subs[n]).await;
        assert_eq!(got["alertCorrelated"]["alert"]["providerAlertId"], format!("a-t{n:04}"), "{got:#}");
    }
    for n in [0usize, 4, 501, 998] {
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(300), subs[n].next()).await {
            panic!("tenant {n} got another tenant's event: {v:#}");
        }
    }

    // A poll stuck behind a lock on the events table blocks neither /metrics nor a new subscriber.
    let mut blocker = AsyncPgConnection::establish(&app.db_url).await.expect("connect");
    blocker.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    tokio::time::sleep(Duration::from_millis(1200)).await; // the timer's poll is now waiting
    let (status, _, text) = tokio::time::timeout(Duration::from_secs(3), app.get_text("/metrics"))
        .await
        .expect("/metrics answers while a poll waits");
    assert_eq!(status.as_u16(), 200);
    assert!(text.contains("parapet_live_subscribers"), "{text}");
    let reader = app.token("t0007", "second@t0007.example", &[Role::Reader]);
    let mut second = app.subscribe(&reader, SUB, json!({})).await;
    tokio::time::timeout(Duration::from_secs(3), app.wait_subscribers("t0007", 2))
        .await
        .expect("a new subscriber of a known tenant starts while a poll waits");
    blocker.batch_execute("COMMIT").await.expect("unlock");

    // Once the lock is gone, delivery goes on.
    let ing = app.token("t0007", "gw@t0007.example", &[Role::Ingestor]);
    app.ok(
        &ing,
        INGEST,
        json!({ "alerts": [url_alert("after-lock", "u@x.example", "https://y.example/", "s@evil.example")] }),
    )
    .await;
    let got = next_data(&mut second).await;
    assert_eq!(got["alertCorrelated"]["alert"]["providerAlertId"], "after-lock");
    let got = next_data(&mut subs[7]).await;
    assert_eq!(got["alertCorrelated"]["alert"]["providerAlertId"], "after-lock");
}
