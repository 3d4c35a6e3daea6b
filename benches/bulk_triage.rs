//! Benchmark of triage on a large incident: one incident of 10,000 alerts (one campaign, ingested through
//! the API) is reassigned and then resolved, each change cascading to every alert with an activity entry
//! and an event per alert, against a real release `parapet serve` on a fresh database. Run it with
//! `cargo bench --bench bulk_triage`.
//!
//! Settings (environment): `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; a fresh
//! database is made and dropped after), `BENCH_ALERTS` (default 10000), `BENCH_REPEAT` (reassignments
//! timed, default 3), `BENCH_SERVER_BIN` (another `parapet` binary to measure, e.g. a baseline build).

use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::Instant;

mod support;
use support::*;

const INGEST: &str =
    "mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) { accepted rejected } }";
const UPDATE: &str =
    "mutation($id: ID!, $input: UpdateIncidentInput!) { updateIncident(id: $id, input: $input) { \
    status assignedTo version } }";
const BATCH: usize = 500;

fn main() -> AnyResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = Database::create().await?;
        let result = bench(&db).await;
        db.drop_it().await;
        result
    })
}

async fn bench(db: &Database) -> AnyResult<()> {
    let alerts = env_usize("BENCH_ALERTS", 10_000);
    let repeat = env_usize("BENCH_REPEAT", 3).max(1);
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let server = start_server(&db.url, &secret).await?;
    let http = reqwest::Client::new();
    let tenant = "bench-bulk";
    let admin = token(&secret, tenant, Role::Admin)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("parapet bulk triage benchmark");
    println!("  machine: {cores} cores, load average {}", load_average());
    println!("  server: pid {}, http://{}, database {}", server.child.id(), server.addr, db.name);

    // Every alert of the campaign shares its URL and sender: one incident, as long as the key is not
    // too common to correlate.
    graphql(
        &http,
        server.addr,
        &admin,
        "mutation { updateTenantSettings(input: { maxKeyPrevalence: 10000 }) { maxKeyPrevalence } }",
        json!({}),
    )
    .await?;
    let started = Instant::now();
    let url = "https://bulk.evil.example/pay";
    for chunk in (0..alerts).collect::<Vec<_>>().chunks(BATCH) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|n| {
                let recipient = format!("user{n}@contoso.example");
                alert(
                    &format!("bulk-{n}"),
                    "Email messages containing malicious URL removed after delivery",
                    &recipient,
                    url,
                    "billing@evil.example",
                    "203.0.113.50",
                    "HIGH",
                )
            })
            .collect();
        let data = graphql(&http, server.addr, &admin, INGEST, json!({ "alerts": batch })).await?;
        if data["ingestAlerts"]["rejected"] != 0 {
            return Err(format!("rejected: {data}").into());
        }
    }
    println!("  seeded {alerts} alerts in {:.1} s", started.elapsed().as_secs_f64());
    let q = "query { incidents(first: 100) { nodes { id alertCount } } }";
    let data = graphql(&http, server.addr, &admin, q, json!({})).await?;
    let nodes = data["incidents"]["nodes"].as_array().cloned().unwrap_or_default();
    let top = nodes.iter().max_by_key(|n| n["alertCount"].as_i64().unwrap_or(0)).ok_or("no incident")?;
    let id = top["id"].clone();
    println!("  largest incident: {} alerts", top["alertCount"]);

    let mut reassign = vec![];
    for r in 0..repeat {
        let owner = format!("analyst{r}@contoso.example");
        let t = Instant::now();
        graphql(&http, server.addr, &admin, UPDATE, json!({ "id": id, "input": { "assignedTo": owner } }))
            .await?;
        reassign.push(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let data =
        graphql(&http, server.addr, &admin, UPDATE, json!({ "id": id, "input": { "status": "RESOLVED" } }))
            .await?;
    let resolve = t.elapsed().as_secs_f64();
    if data["updateIncident"]["status"] != "RESOLVED" {
        return Err(format!("not resolved: {data}").into());
    }
    let fmt = |v: &[f64]| v.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", ");
    println!("  reassign (cascades to every alert): {}", fmt(&reassign));
    println!("  resolve (cascades to every alert): {resolve:.2} s");
    Ok(())
}
