//! Exactly-once execution of a remediation action across crashes, against real `parapet serve` child
//! processes on a fresh test database (job lease 2 s).
//!
//! 1. Two replicas run; an approved SOFT_DELETE over some 24,000 copies starts; mid-way, the replica
//!    holding the job is killed with SIGKILL and the other one takes the job over; mid-way again, that
//!    one is killed too, leaving no replica at all; a new one is started (a restart) and finishes it.
//!    Then every target has exactly one outcome, the action's counts match them, every copy is
//!    soft-deleted with exactly one remediation event for the action in its timeline, and the job
//!    succeeded.
//! 2. Two responders approving one action at the same moment, over HTTP on two replicas: one approval,
//!    one `CONFLICT`, one job.

mod common;

use common::replica::Replica;
use common::*;
use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Replicas of this test: a 2 s job lease (a dead one's job is taken over quickly), two job workers.
const CRASH_ENV: &[(&str, &str)] = &[("PARAPET_JOB_LEASE_SECS", "2"), ("PARAPET_JOB_WORKERS", "2")];
const TENANT: &str = "contoso";
const SENDER: &str = "bad@crash.example";
/// Copies the crash test's action acts on: 24 execution steps of 1,000.
const COPIES: usize = 24_000;
const BATCH: usize = 2_000;
/// Longest wait for the action to end once the last replica is up.
const COMPLETION: Duration = Duration::from_secs(120);

const INGEST: &str = "mutation($e: [EmailInput!]!) { ingestEmails(emails: $e) { accepted rejected } }";
const REMEDIATE: &str =
    "mutation($i: RemediateEmailsInput!) { remediateEmails(input: $i) { id status targetCount } }";
const APPROVE: &str = "mutation($id: ID!) { approveAction(id: $id) { id status decidedBy } }";
const PROGRESS: &str = "query($id: ID!) { action(id: $id) { status targetCount successCount failedCount \
    alreadyInDestinationCount notFoundCount openTargetCount } }";

/// `n` copies from `sender`, one per message, all in the inbox, received over the last `n * 20` s.
fn copies(tag: &str, sender: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    let now = chrono::Utc::now();
    range
        .map(|n| {
            json!({
                "networkMessageId": format!("{tag}-{n}"),
                "recipient": format!("user{n}@contoso.com"),
                "headerFrom": sender,
                "envelopeSender": sender,
                "subject": "Your mailbox is full",
                "receivedAt": (now - chrono::Duration::seconds(20 * n as i64 + 60)).to_rfc3339(),
                "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX",
            })
        })
        .collect()
}

/// Ingests `records` in batches of 2,000, two requests at a time over the replicas given.
async fn ingest(replicas: &[&Replica], http: &reqwest::Client, token: &str, records: Vec<Value>) {
    let batches: Vec<Vec<Value>> = records.chunks(BATCH).map(<[Value]>::to_vec).collect();
    for pair in batches.chunks(2) {
        let sends = pair.iter().enumerate().map(|(i, b)| {
            let r = replicas[i % replicas.len()];
            let n = b.len();
            async move {
                let d = r.gql(http, token, INGEST, json!({ "e": b })).await;
                assert_eq!(d["ingestEmails"]["accepted"], n, "{d:#}");
                assert_eq!(d["ingestEmails"]["rejected"], 0, "{d:#}");
            }
        });
        futures::future::join_all(sends).await;
    }
}

/// The action as GraphQL gives it now.
async fn progress(r: &Replica, http: &reqwest::Client, token: &str, id: &str) -> Value {
    r.gql(http, token, PROGRESS, json!({ "id": id })).await["action"].clone()
}

fn count(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or_else(|| panic!("{field} in {v:#}"))
}

/// Polls `r` every 20 ms until the action is `RUNNING` with more than `past` and fewer than all
/// targets moved; returns the action then.
async fn until_mid_way(
    r: &Replica,
    http: &reqwest::Client,
    token: &str,
    id: &str,
    past: i64,
    what: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = progress(r, http, token, id).await;
        let moved = count(&a, "successCount");
        assert!(
            a["status"] != "COMPLETED" && a["status"] != "FAILED",
            "{what}: the action ended before it could be caught mid-way (make it larger): {a:#}"
        );
        if a["status"] == "RUNNING" && moved > past && moved < count(&a, "targetCount") {
            return a;
        }
        assert!(Instant::now() < deadline, "{what}: no progress past {past} within 60 s: {a:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(diesel::QueryableByName, Debug)]
struct JobRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<Text>)]
    lease_owner: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

/// The job that runs action `id` (exactly one).
async fn job_of(app: &TestApp, id: &str) -> JobRow {
    let mut conn = app.state.pool.get().await.expect("conn");
    let mut rows: Vec<JobRow> = diesel::sql_query(
        "SELECT status, attempts::int8 AS attempts, lease_owner, last_error FROM jobs \
         WHERE tenant_id = $1 AND kind = 'ACTION' AND dedupe_key = $2",
    )
    .bind::<Text, _>(TENANT)
    .bind::<Text, _>(id)
    .load(&mut conn)
    .await
    .expect("jobs");
    assert_eq!(rows.len(), 1, "one job per action: {rows:?}");
    rows.remove(0)
}

/// The PID in a lease owner's name (`<pid>-<uuid>`).
fn owner_pid(owner: &Option<String>) -> Option<u32> {
    owner.as_deref().and_then(|o| o.split('-').next()).and_then(|p| p.parse().ok())
}

/// Waits until one of `candidates` holds the job's lease; returns its index.
async fn holder(app: &TestApp, id: &str, candidates: &[&Replica], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let job = job_of(app, id).await;
        if job.status == "RUNNING" {
            if let Some(i) = candidates.iter().position(|r| Some(r.pid()) == owner_pid(&job.lease_owner)) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "none of the replicas took the job within {within:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq)]
struct Tally {
    #[diesel(sql_type = Text)]
    what: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Labelled counts from one statement (`what`, `n` rows).
async fn tallies(app: &TestApp, sql: &str, id: uuid::Uuid) -> std::collections::BTreeMap<String, i64> {
    let mut conn = app.state.pool.get().await.expect("conn");
    let rows: Vec<Tally> = diesel::sql_query(sql)
        .bind::<Text, _>(TENANT)
        .bind::<SqlUuid, _>(id)
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|t| (t.what, t.n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_killed_twice_mid_way_moves_every_copy_exactly_once() {
    let started = Instant::now();
    let app = TestApp::new().await;
    let http = reqwest::Client::new();
    let gw = app.token(TENANT, "gw@contoso.com", &[Role::Ingestor]);
    let analyst = app.token(TENANT, "ann@contoso.com", &[Role::Analyst]);
    let responder = app.token(TENANT, "rob@contoso.com", &[Role::Responder]);
    let (a, b) = tokio::join!(
        Replica::start("A", &app.db_url, CRASH_ENV),
        Replica::start("B", &app.db_url, CRASH_ENV)
    );
    let mut first = [Some(a), Some(b)];

    {
        let [Some(a), Some(b)] = &first else { unreachable!() };
        ingest(&[a, b], &http, &gw, copies("crash", SENDER, 0..COPIES)).await;
    }
    eprintln!("{COPIES} copies ingested after {:.1} s", started.elapsed().as_secs_f64());

    let (id, uid) = {
        let [Some(a), Some(b)] = &first else { unreachable!() };
        let input = json!({ "i": { "filter": { "sender": SENDER }, "action": "SOFT_DELETE", "comment": "crash test" } });
        let p = a.gql(&http, &analyst, REMEDIATE, input).await["remediateEmails"].clone();
        assert_eq!(p["status"], "PENDING", "four-eyes is on by default: {p:#}");
        assert_eq!(p["targetCount"], COPIES, "{p:#}");
        let id = p["id"].as_str().expect("action id").to_string();
        let ok = b.gql(&http, &responder, APPROVE, json!({ "id": id })).await["approveAction"].clone();
        assert_eq!(ok["status"], "APPROVED", "{ok:#}");
        let uid: uuid::Uuid = id.parse().expect("a UUID");
        (id, uid)
    };
    let approved = Instant::now();

    // Kill 1: the replica holding the job, mid-way (at a random point of a step). The other one, already
    // running, takes over.
    let survivor = {
        let [Some(a), Some(b)] = &first else { unreachable!() };
        let i = holder(&app, &id, &[a, b], Duration::from_secs(30)).await;
        let runner = first[i].as_ref().expect("replica");
        let seen = until_mid_way(runner, &http, &responder, &id, 0, "first run").await;
        let mut runner = first[i].take().expect("replica");
        let jitter = rand::random_range(0..300);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        runner.kill();
        eprintln!(
            "killed {} (pid {}) {jitter} ms after seeing {} of {COPIES} moved, {:.2} s after approval",
            runner.name,
            runner.pid(),
            seen["successCount"],
            approved.elapsed().as_secs_f64()
        );
        first[1 - i].take().expect("the other replica")
    };
    let took_over = Instant::now();
    holder(&app, &id, &[&survivor], Duration::from_secs(30)).await;
    // What the killed run committed: its lease has run out, so its session is long gone.
    let before = count(&progress(&survivor, &http, &responder, &id).await, "successCount");
    let seen = until_mid_way(&survivor, &http, &responder, &id, before, "after the take-over").await;
    eprintln!(
        "{} (pid {}) took the job over {:.2} s after the kill at {before} moved, and moved on to {}",
        survivor.name,
        survivor.pid(),
        took_over.elapsed().as_secs_f64(),
        seen["successCount"]
    );

    // Kill 2: the survivor too, mid-way: no replica runs at all until one is started again.
    let mut survivor = survivor;
    let jitter = rand::random_range(0..300);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    survivor.kill();
    eprintln!(
        "killed {} (pid {}) {jitter} ms after seeing {} moved",
        survivor.name,
        survivor.pid(),
        seen["successCount"]
    );
    drop(survivor);
    let restart = Replica::start("C", &app.db_url, CRASH_ENV).await;
    let restarted = Instant::now();
    let deadline = restarted + COMPLETION;
    let done = loop {
        let a = progress(&restart, &http, &responder, &id).await;
        if a["status"] != "RUNNING" && a["status"] != "APPROVED" {
            break a;
        }
        assert!(Instant::now() < deadline, "not done within {COMPLETION:?} of the restart: {a:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "C (pid {}) finished it {:.2} s after its start; {:.1} s in all",
        restart.pid(),
        restarted.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // GraphQL: the action.
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let n = COPIES as i64;
    assert_eq!(count(&done, "targetCount"), n, "{done:#}");
    assert_eq!(count(&done, "openTargetCount"), 0, "{done:#}");
    assert_eq!(count(&done, "successCount"), n, "every copy was in the inbox: {done:#}");
    assert_eq!(
        count(&done, "successCount")
            + count(&done, "alreadyInDestinationCount")
            + count(&done, "notFoundCount")
            + count(&done, "failedCount"),
        count(&done, "targetCount"),
        "{done:#}"
    );

    // SQL: one outcome per target, and the counts are the outcomes'.
    let targets = tallies(
        &app,
        "SELECT COALESCE(outcome, 'OPEN') AS what, count(*) AS n FROM action_targets \
         WHERE tenant_id = $1 AND action_id = $2 GROUP BY 1 \
         UNION ALL SELECT 'ALL', count(*) FROM action_targets WHERE tenant_id = $1 AND action_id = $2 \
         UNION ALL SELECT 'DISTINCT COPIES', count(DISTINCT email_id) FROM action_targets \
             WHERE tenant_id = $1 AND action_id = $2 \
         UNION ALL SELECT 'COUNTED ' || k, v::int8 FROM actions a, LATERAL (VALUES \
             ('SUCCESS', a.success_count), ('ALREADY_IN_DESTINATION', a.already_count), \
             ('NOT_FOUND', a.not_found_count), ('FAILED', a.failed_count), ('TARGETS', a.target_count)) s(k, v) \
             WHERE a.tenant_id = $1 AND a.id = $2",
        uid,
    )
    .await;
    let expected: std::collections::BTreeMap<String, i64> = [
        ("ALL", n),
        ("DISTINCT COPIES", n),
        ("SUCCESS", n),
        ("COUNTED SUCCESS", n),
        ("COUNTED ALREADY_IN_DESTINATION", 0),
        ("COUNTED NOT_FOUND", 0),
        ("COUNTED FAILED", 0),
        ("COUNTED TARGETS", n),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(targets, expected, "targets by outcome, and the action's counts");

    // SQL: every copy soft-deleted, each with exactly one event of this action, and no other move.
    let copies = tallies(
        &app,
        "SELECT 'COPIES ' || latest_delivery_location AS what, count(*) AS n FROM emails \
         WHERE tenant_id = $1 AND $2::uuid IS NOT NULL GROUP BY 1 \
         UNION ALL SELECT 'COPIES WITH ' || c || ' EVENTS OF THE ACTION', count(*) FROM ( \
             SELECT e.id, count(ev.id) AS c FROM emails e \
             LEFT JOIN email_events ev ON ev.tenant_id = e.tenant_id AND ev.email_id = e.id \
                 AND ev.received_at = e.received_at AND ev.action_id = $2 \
             WHERE e.tenant_id = $1 GROUP BY e.id) x GROUP BY c \
         UNION ALL SELECT 'EVENTS ' || kind || ' ' || COALESCE(from_location, '-') || '>' || \
                 COALESCE(to_location, '-') || CASE WHEN action_id = $2 THEN ' (the action)' \
                 WHEN action_id IS NULL THEN '' ELSE ' (another action)' END, count(*) \
             FROM email_events WHERE tenant_id = $1 GROUP BY 1",
        uid,
    )
    .await;
    assert_eq!(copies.get("COPIES SOFT_DELETED"), Some(&n), "{copies:#?}");
    assert_eq!(
        copies.get("COPIES WITH 1 EVENTS OF THE ACTION"),
        Some(&n),
        "no copy moved twice, none left out: {copies:#?}"
    );
    assert_eq!(
        copies.get("EVENTS MANUAL_REMEDIATION INBOX>SOFT_DELETED (the action)"),
        Some(&n),
        "{copies:#?}"
    );
    let moves: Vec<_> =
        copies.keys().filter(|k| k.starts_with("EVENTS ") && !k.contains("ORIGINAL_DELIVERY")).collect();
    assert_eq!(moves.len(), 1, "the action's moves are the only moves: {copies:#?}");
    assert_eq!(copies.keys().filter(|k| k.starts_with("COPIES ")).count(), 2, "{copies:#?}");

    // GraphQL: nothing left in the inbox, and the timelines of some pages of copies.
    let left = restart
        .gql(
            &http,
            &responder,
            "query($f: EmailFilter!) { emails(filter: $f) { totalCount totalCountIsEstimate } }",
            json!({ "f": { "sender": SENDER, "latestDeliveryLocation": ["INBOX"] } }),
        )
        .await;
    assert_eq!(left["emails"]["totalCount"], 0, "{left:#}");
    assert_eq!(left["emails"]["totalCountIsEstimate"], false, "{left:#}");
    let mut after: Option<String> = None;
    let mut checked = 0;
    for _ in 0..3 {
        let page = restart
            .gql(
                &http,
                &responder,
                "query($f: EmailFilter!, $after: String) { emails(filter: $f, first: 100, after: $after) { \
                 pageInfo { hasNextPage endCursor } nodes { id latestDeliveryLocation \
                 timeline { kind fromLocation toLocation actionId } } } }",
                json!({ "f": { "sender": SENDER }, "after": after }),
            )
            .await;
        for e in page["emails"]["nodes"].as_array().expect("nodes") {
            assert_eq!(e["latestDeliveryLocation"], "SOFT_DELETED", "{e:#}");
            let ours: Vec<&Value> = e["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .filter(|t| t["actionId"] == id.as_str())
                .collect();
            assert_eq!(ours.len(), 1, "one remediation event of the action: {e:#}");
            assert_eq!(ours[0]["kind"], "MANUAL_REMEDIATION", "{e:#}");
            assert_eq!(ours[0]["fromLocation"], "INBOX", "{e:#}");
            assert_eq!(ours[0]["toLocation"], "SOFT_DELETED", "{e:#}");
            checked += 1;
        }
        after = page["emails"]["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(checked, 300);

    // The job: succeeded, after three runs (the first two killed).
    let job = job_of(&app, &id).await;
    assert_eq!(job.status, "SUCCEEDED", "{job:?}");
    assert!(job.attempts >= 3, "two runs were killed, a third finished: {job:?}");
    eprintln!(
        "job {} after {} runs (last error: {:?}); test took {:.1} s",
        job.status,
        job.attempts,
        job.last_error,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_at_once_on_two_replicas_one_wins_one_conflicts() {
    let app = TestApp::new().await;
    let http = reqwest::Client::new();
    let gw = app.token(TENANT, "gw@contoso.com", &[Role::Ingestor]);
    let analyst = app.token(TENANT, "ann@contoso.com", &[Role::Analyst]);
    let rob = app.token(TENANT, "rob@contoso.com", &[Role::Responder]);
    let sue = app.token(TENANT, "sue@contoso.com", &[Role::Responder]);
    let (a, b) = tokio::join!(
        Replica::start("A", &app.db_url, CRASH_ENV),
        Replica::start("B", &app.db_url, CRASH_ENV)
    );
    for round in 0..5 {
        let sender = format!("race{round}@race.example");
        ingest(&[&a], &http, &gw, copies(&format!("race{round}"), &sender, 0..20)).await;
        let input = json!({ "i": { "filter": { "sender": sender }, "action": "MOVE_TO_JUNK" } });
        let p = a.gql(&http, &analyst, REMEDIATE, input).await["remediateEmails"].clone();
        let id = p["id"].as_str().expect("action id").to_string();
        let vars = json!({ "id": id });
        let (r1, r2) =
            tokio::join!(a.post(&http, &rob, APPROVE, vars.clone()), b.post(&http, &sue, APPROVE, vars));
        let (won, lost, winner) = match (r1.get("errors").is_none(), r2.get("errors").is_none()) {
            (true, false) => (r1, r2, "rob@contoso.com"),
            (false, true) => (r2, r1, "sue@contoso.com"),
            _ => panic!("round {round}: exactly one approval applies: {r1:#}\n{r2:#}"),
        };
        assert_eq!(won["data"]["approveAction"]["status"], "APPROVED", "{won:#}");
        assert_eq!(won["data"]["approveAction"]["decidedBy"], winner, "{won:#}");
        assert_eq!(lost["errors"][0]["extensions"]["code"], "CONFLICT", "{lost:#}");
        let job = job_of(&app, &id).await;
        assert_ne!(job.status, "FAILED", "{job:?}");
        // The action runs once, under the winner's decision.
        let deadline = Instant::now() + Duration::from_secs(30);
        let done = loop {
            let d = progress(&b, &http, &rob, &id).await;
            if d["status"] == "COMPLETED" {
                break d;
            }
            assert!(Instant::now() < deadline, "round {round}: not completed within 30 s: {d:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done["successCount"], 20, "{done:#}");
        let events = tallies(
            &app,
            "SELECT actor AS what, count(*) AS n FROM email_events WHERE tenant_id = $1 AND action_id = $2 GROUP BY 1",
            id.parse().expect("a UUID"),
        )
        .await;
        assert_eq!(events, [(winner.to_string(), 20)].into_iter().collect(), "round {round}");
        assert_eq!(job_of(&app, &id).await.status, "SUCCEEDED");
    }
}
