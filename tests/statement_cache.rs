//! Ingestion's statements are prepared once per connection and reused: diesel re-parses and re-plans
//! `sql_query` text and multi-row inserts on every call, which cost ingestion about a fifth of its
//! database time.

mod common;

use common::alerts::*;
use common::*;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use serde_json::{json, Value};

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    plans: i64,
}

fn batch(round: usize) -> Value {
    // Twelve alerts, so the batch also takes the read-ahead path; a URL and users of its own make each
    // batch one new incident.
    let alerts: Vec<Value> = (0..12)
        .map(|i| {
            url_alert(
                &format!("r{round}-{i}"),
                &format!("user{round}-{i}@contoso.com"),
                &format!("https://evil.example/login{round}"),
                &format!("s{round}-{i}@evil.example"),
            )
        })
        .collect();
    json!(alerts)
}

#[tokio::test]
async fn ingestion_reuses_its_prepared_statements() {
    // One connection, so every batch runs on the session whose prepared statements are read below.
    let app = TestApp::with_pool_size(1).await;
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    for round in 0..3 {
        let r = app.ok(&t, INGEST, json!({ "alerts": batch(round) })).await;
        assert_eq!(r["ingestAlerts"]["accepted"], 12, "{r}");
    }

    let mut conn = app.state.pool.get().await.expect("connection");
    let rows: Vec<Prepared> = diesel::sql_query(
        "SELECT statement, generic_plans + custom_plans AS plans FROM pg_prepared_statements",
    )
    .load(&mut conn)
    .await
    .expect("prepared statements");
    for table in ["alerts", "evidence", "alert_keys", "incidents", "activity", "events"] {
        let insert = format!("INSERT INTO {table} (");
        let found: Vec<&Prepared> = rows.iter().filter(|r| r.statement.starts_with(&insert)).collect();
        assert_eq!(
            found.len(),
            1,
            "one prepared insert into {table}: {:?}",
            rows.iter().map(|r| &r.statement).collect::<Vec<_>>()
        );
        assert!(found[0].plans >= 3, "the insert into {table} ran {} times prepared", found[0].plans);
    }
    let carriers = rows.iter().find(|r| r.statement.starts_with("WITH s AS (SELECT COALESCE(max(seq)"));
    assert!(carriers.is_some_and(|r| r.plans >= 3), "the read-ahead of carriers is prepared and reused");
}
