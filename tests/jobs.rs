//! The job runner against a real PostgreSQL: every job runs once however many runners share the queue,
//! failed runs are retried with backoff until their attempts are spent, a dead worker's job is taken
//! over once its lease runs out, a renewed lease keeps a long run its own, a worker that lost its lease
//! stops and writes nothing, enqueueing is idempotent by key, and `/metrics` counts it all.

mod common;

use chrono::Utc;
use common::*;
use parapet::db::queries::jobs as q;
use parapet::jobs::runner::{self, Run, RunnerSettings};
use parapet::jobs::{Job, JobError, NewJob};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn settings(owner: &str) -> RunnerSettings {
    RunnerSettings {
        owner: owner.to_string(),
        workers: 4,
        lease: Duration::from_millis(600),
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(2),
    }
}

fn new_job(kind: &str, max_attempts: i32) -> NewJob {
    NewJob {
        tenant_id: "contoso".into(),
        kind: kind.into(),
        payload: serde_json::json!({}),
        max_attempts,
        run_at: Utc::now(),
        dedupe_key: None,
    }
}

async fn enqueue(app: &TestApp, job: NewJob) -> Uuid {
    let mut conn = app.state.pool.get().await.expect("conn");
    q::enqueue(&mut conn, &job, Utc::now()).await.expect("enqueue")
}

async fn job(app: &TestApp, id: Uuid) -> Job {
    let mut conn = app.state.pool.get().await.expect("conn");
    q::find(&mut conn, "contoso", id).await.expect("find").expect("the job")
}

/// Waits until `done` holds of every job in `ids` (at most 20 s).
async fn wait_for(app: &TestApp, ids: &[Uuid], done: impl Fn(&Job) -> bool) -> Vec<Job> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut jobs = vec![];
        for id in ids {
            jobs.push(job(app, *id).await);
        }
        if jobs.iter().all(&done) {
            return jobs;
        }
        assert!(Instant::now() < deadline, "jobs did not get there in time: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs of each job, with their start times and the runner that ran them, shared by every runner of a
/// test.
type Runs = Arc<Mutex<HashMap<Uuid, Vec<(Instant, String)>>>>;

fn record(runs: &Runs, id: Uuid, owner: &str) -> usize {
    let mut runs = runs.lock().expect("runs");
    let v = runs.entry(id).or_default();
    v.push((Instant::now(), owner.to_string()));
    v.len()
}

fn runs_of(runs: &Runs, id: Uuid) -> Vec<Instant> {
    runs.lock().expect("runs").get(&id).map(|v| v.iter().map(|r| r.0).collect()).unwrap_or_default()
}

/// The runners that ran any job.
fn runners_used(runs: &Runs) -> std::collections::HashSet<String> {
    runs.lock().expect("runs").values().flatten().map(|r| r.1.clone()).collect()
}

/// A runner whose handler records each run in `runs`, then takes `work` and succeeds.
fn recording_runner(
    app: &TestApp,
    settings: RunnerSettings,
    runs: &Runs,
    work: Duration,
) -> tokio::task::JoinHandle<()> {
    let runs = runs.clone();
    let owner = settings.owner.clone();
    runner::spawn(app.state.pool.clone(), app.state.metrics.clone(), settings, move |j: Job| -> Run {
        let (runs, owner) = (runs.clone(), owner.clone());
        Box::pin(async move {
            record(&runs, j.id, &owner);
            tokio::time::sleep(work).await;
            Ok(())
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_once_across_three_runners() {
    let app = TestApp::new().await;
    let mut ids = vec![];
    for _ in 0..60 {
        ids.push(enqueue(&app, new_job("count", 3)).await);
    }
    let runs: Runs = Arc::default();
    let mut runners = vec![];
    for owner in ["a", "b", "c"] {
        runners.push(recording_runner(&app, settings(owner), &runs, Duration::from_millis(5)));
    }
    let jobs = wait_for(&app, &ids, |j| j.status == "SUCCEEDED").await;
    for r in &runners {
        r.abort();
    }
    assert!(runners_used(&runs).len() >= 2, "the runners shared the queue: {:?}", runners_used(&runs));
    for j in &jobs {
        assert_eq!(runs_of(&runs, j.id).len(), 1, "ran once: {j:?}");
        assert_eq!(j.attempts, 1);
        assert!(j.finished_at.is_some() && j.lease_owner.is_none());
    }
    let (_, _, text) = app.get_text("/metrics").await;
    assert!(text.contains("parapet_job_runs_total{outcome=\"succeeded\"} 60\n"), "{text}");
    assert!(text.contains("parapet_job_queue_depth "), "{text}");
    assert!(text.contains("parapet_job_oldest_age_seconds "), "{text}");
    // A job belongs to its tenant.
    let mut conn = app.state.pool.get().await.expect("conn");
    assert_eq!(q::find(&mut conn, "fabrikam", ids[0]).await.expect("find"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_with_backoff_until_their_attempts_are_spent() {
    let app = TestApp::new().await;
    let down = enqueue(&app, new_job("always-down", 3)).await;
    let flaky = enqueue(&app, new_job("flaky", 5)).await;
    let doomed = enqueue(&app, new_job("doomed", 5)).await;
    let runs: Runs = Arc::default();
    let r = runs.clone();
    let runner = runner::spawn(
        app.state.pool.clone(),
        app.state.metrics.clone(),
        settings("a"),
        move |j: Job| -> Run {
            let runs = r.clone();
            Box::pin(async move {
                let n = record(&runs, j.id, "a");
                match j.kind.as_str() {
                    "always-down" => Err(JobError::Retry("mail server down".into())),
                    "flaky" if n < 3 => Err(JobError::Retry(format!("busy, run {n}"))),
                    "doomed" => Err(JobError::Fatal("the copy no longer exists".into())),
                    _ => Ok(()),
                }
            })
        },
    );
    let jobs =
        wait_for(&app, &[down, flaky, doomed], |j| matches!(j.status.as_str(), "SUCCEEDED" | "FAILED")).await;
    runner.abort();

    let (d, f, x) = (&jobs[0], &jobs[1], &jobs[2]);
    assert_eq!(
        (d.status.as_str(), d.attempts, d.last_error.as_deref()),
        ("FAILED", 3, Some("mail server down"))
    );
    assert!(d.finished_at.is_some());
    let starts = runs_of(&runs, down);
    assert_eq!(starts.len(), 3, "three runs, no more");
    // Backoff: 100 ms after the first failure, then 200 ms.
    assert!(starts[1] - starts[0] >= Duration::from_millis(100), "{:?}", starts[1] - starts[0]);
    assert!(starts[2] - starts[1] >= Duration::from_millis(200), "{:?}", starts[2] - starts[1]);

    assert_eq!((f.status.as_str(), f.attempts), ("SUCCEEDED", 3), "{f:?}");
    assert_eq!(f.last_error.as_deref(), Some("busy, run 2"), "the last failure stays for the record");
    assert_eq!((x.status.as_str(), x.attempts), ("FAILED", 1), "a fatal error is not retried: {x:?}");
    assert_eq!(runs_of(&runs, doomed).len(), 1);

    let (_, _, text) = app.get_text("/metrics").await;
    assert!(text.contains("parapet_job_runs_total{outcome=\"retried\"} 4\n"), "{text}");
    assert!(text.contains("parapet_job_runs_total{outcome=\"failed\"} 2\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_taken_over_once_its_lease_runs_out() {
    let app = TestApp::new().await;
    let id = enqueue(&app, new_job("count", 3)).await;
    // A worker claims it and dies (it never renews nor records anything).
    let mut conn = app.state.pool.get().await.expect("conn");
    let started = Instant::now();
    let claimed = q::claim(&mut conn, "dead", 10, 0.5, Utc::now()).await.expect("claim");
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    // While the lease holds, nobody else may take it.
    assert!(q::claim(&mut conn, "other", 10, 0.5, Utc::now()).await.expect("claim").is_empty());

    let runs: Runs = Arc::default();
    let runner = recording_runner(&app, settings("b"), &runs, Duration::ZERO);
    let jobs = wait_for(&app, &[id], |j| j.status == "SUCCEEDED").await;
    runner.abort();
    assert!(started.elapsed() >= Duration::from_millis(450), "not before the lease ran out");
    assert_eq!(jobs[0].attempts, 2, "the dead worker's run counts");
    assert_eq!(runs_of(&runs, id).len(), 1);
    // The dead worker, back, can record nothing: the job is no longer its own.
    assert!(!q::succeed(&mut conn, id, "dead", Utc::now()).await.expect("succeed"));
    assert!(!q::fail(&mut conn, id, "dead", "late", None, Utc::now()).await.expect("fail"));
    assert_eq!(job(&app, id).await.status, "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_keeps_a_long_run_its_own() {
    let app = TestApp::new().await;
    let id = enqueue(&app, new_job("long", 3)).await;
    let runs: Runs = Arc::default();
    let mut runners = vec![];
    // Two runners; the run lasts four leases of 600 ms.
    for owner in ["a", "b"] {
        let mut s = settings(owner);
        s.lease = Duration::from_millis(600);
        runners.push(recording_runner(&app, s, &runs, Duration::from_millis(2400)));
    }
    let jobs = wait_for(&app, &[id], |j| j.status == "SUCCEEDED").await;
    for r in &runners {
        r.abort();
    }
    assert_eq!(runs_of(&runs, id).len(), 1, "never taken over while renewed");
    assert_eq!(jobs[0].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_stops_and_writes_nothing() {
    let app = TestApp::new().await;
    let id = enqueue(&app, new_job("long", 3)).await;
    let finished: Arc<Mutex<bool>> = Arc::default();
    let done = finished.clone();
    let runner = runner::spawn(
        app.state.pool.clone(),
        app.state.metrics.clone(),
        settings("a"),
        move |_j: Job| -> Run {
            let done = done.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                *done.lock().expect("flag") = true;
                Ok(())
            })
        },
    );
    wait_for(&app, &[id], |j| j.status == "RUNNING").await;
    // The worker is cut off past its lease (simulated: the lease is moved into the past) and another
    // takes the job over before the worker's next renewal.
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id),
        &mut conn,
    )
    .await
    .expect("expire");
    let stolen = q::claim(&mut conn, "thief", 1, 60.0, Utc::now()).await.expect("claim");
    assert_eq!(stolen.len(), 1);
    // The worker's next renewal finds the job gone: it stops the run and records nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, text) = app.get_text("/metrics").await;
        if text.contains("parapet_job_runs_total{outcome=\"lost\"} 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never saw it lost the job: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the end the run would have had.
    tokio::time::sleep(Duration::from_secs(3)).await;
    runner.abort();
    assert!(!*finished.lock().expect("flag"), "the run was stopped");
    let j = job(&app, id).await;
    assert_eq!((j.status.as_str(), j.lease_owner.as_deref(), j.attempts), ("RUNNING", Some("thief"), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueueing_by_key_is_idempotent_and_a_kind_without_handler_fails_for_good() {
    let app = TestApp::new().await;
    let mut keyed = new_job("remediate", 3);
    keyed.dedupe_key = Some("action-1".into());
    let first = enqueue(&app, keyed.clone()).await;
    assert_eq!(enqueue(&app, keyed.clone()).await, first, "the same key makes one job");
    keyed.tenant_id = "fabrikam".into();
    assert_ne!(enqueue(&app, keyed.clone()).await, first, "keys are per tenant");
    // Eight at once with a new key: one job, and every caller gets its id.
    keyed.dedupe_key = Some("action-2".into());
    let mut calls = vec![];
    for _ in 0..8 {
        let (pool, keyed) = (app.state.pool.clone(), keyed.clone());
        calls.push(tokio::spawn(async move {
            let mut conn = pool.get().await.expect("conn");
            q::enqueue(&mut conn, &keyed, Utc::now()).await.expect("enqueue")
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        ids.insert(c.await.expect("task"));
    }
    assert_eq!(ids.len(), 1, "{ids:?}");

    // The server's own dispatch knows no kind yet: such a job fails at once, saying why.
    let runner = runner::spawn(
        app.state.pool.clone(),
        app.state.metrics.clone(),
        settings("a"),
        parapet::jobs::dispatch,
    );
    let jobs = wait_for(&app, &[first], |j| j.status == "FAILED").await;
    runner.abort();
    assert_eq!(jobs[0].attempts, 1);
    assert!(jobs[0].last_error.as_deref().is_some_and(|e| e.contains("no handler")), "{:?}", jobs[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_run_and_the_runner_goes_on() {
    let app = TestApp::new().await;
    let bad = enqueue(&app, new_job("panics", 2)).await;
    let runner =
        runner::spawn(app.state.pool.clone(), app.state.metrics.clone(), settings("a"), |j: Job| -> Run {
            Box::pin(async move {
                if j.kind == "panics" {
                    panic!("a bug in a handler");
                }
                Ok(())
            })
        });
    let jobs = wait_for(&app, &[bad], |j| j.status == "FAILED").await;
    assert_eq!(jobs[0].attempts, 2, "retried once, like any failure");
    assert_eq!(jobs[0].last_error.as_deref(), Some("the job's handler panicked"));
    // The same runner still works.
    let good = enqueue(&app, new_job("fine", 2)).await;
    wait_for(&app, &[good], |j| j.status == "SUCCEEDED").await;
    runner.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_stopped_in_its_last_attempt_fails_for_good() {
    let app = TestApp::new().await;
    let id = enqueue(&app, new_job("crashes-its-worker", 1)).await;
    let mut conn = app.state.pool.get().await.expect("conn");
    assert_eq!(q::claim(&mut conn, "dead", 10, 0.2, Utc::now()).await.expect("claim").len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs: Runs = Arc::default();
    let runner = recording_runner(&app, settings("b"), &runs, Duration::ZERO);
    let jobs = wait_for(&app, &[id], |j| j.status == "FAILED").await;
    runner.abort();
    assert_eq!(jobs[0].last_error.as_deref(), Some("its worker stopped during its last attempt"));
    assert!(runs_of(&runs, id).is_empty(), "not run again");
}
