//! The job runner every replica starts: it claims due jobs (and jobs whose worker died) with
//! `FOR UPDATE SKIP LOCKED`, runs each under a lease it renews at a third of the lease, and records the
//! outcome; a failed run is queued again with backoff until its attempts are spent. A worker that loses
//! its lease (another worker holds the job, or it could not renew for a whole lease) stops the run and
//! writes nothing: the job is another worker's now. Handlers make each step idempotent and record it in the transaction that does
//! it, so a run taken over repeats nothing done and loses nothing.

use super::{retry_at, Job, JobError};
use crate::db::queries::jobs as q;
use crate::db::Pool;
use crate::metrics::Metrics;
use chrono::Utc;
use futures::FutureExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// How often a runner reads the queue's depth and oldest age for `/metrics`.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// Tries at recording a run's outcome before leaving it to the lease running out.
const RECORD_TRIES: usize = 3;

/// What a handler returns: the run's outcome, later.
pub type Run = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// How a runner works.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// This worker's name in leases (unique per process).
    pub owner: String,
    /// Runs at once.
    pub workers: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often to look for work when the last look found none.
    pub poll: Duration,
    /// First retry's wait; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest wait between retries.
    pub backoff_cap: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            workers: 4,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// Starts the runner: `handler` runs each claimed job. Abort the handle to stop it (runs in flight are
/// dropped; their leases run out and another worker takes the jobs over).
pub fn spawn<H>(
    pool: Pool,
    metrics: Metrics,
    settings: RunnerSettings,
    handler: H,
) -> tokio::task::JoinHandle<()>
where
    H: Fn(Job) -> Run + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(settings.workers.max(1)));
        let mut runs = tokio::task::JoinSet::new();
        let mut stats_read: Option<std::time::Instant> = None;
        loop {
            // Ended runs are collected here so the set stays as small as the worker count.
            while runs.try_join_next().is_some() {}
            if stats_read.is_none_or(|t| t.elapsed() >= STATS_EVERY) {
                refresh_stats(&pool, &metrics).await;
                stats_read = Some(std::time::Instant::now());
            }
            let free = slots.available_permits();
            let claimed = if free == 0 { vec![] } else { claim(&pool, &settings, free).await };
            let full = !claimed.is_empty() && claimed.len() == free;
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (pool, metrics, settings, handler) =
                    (pool.clone(), metrics.clone(), settings.clone(), handler.clone());
                runs.spawn(async move {
                    run_one(&pool, &metrics, &settings, handler.as_ref(), job).await;
                    drop(permit);
                });
            }
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(settings.poll) => {}
                    _ = runs.join_next(), if !runs.is_empty() => {}
                }
            }
        }
    })
}

async fn claim(pool: &Pool, settings: &RunnerSettings, free: usize) -> Vec<Job> {
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "job runner: no database connection; will look again");
            return vec![];
        }
    };
    let limit = i64::try_from(free).unwrap_or(i64::MAX);
    match q::claim(&mut conn, &settings.owner, limit, settings.lease.as_secs_f64(), Utc::now()).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "job runner: cannot claim jobs; will look again");
            vec![]
        }
    }
}

async fn refresh_stats(pool: &Pool, metrics: &Metrics) {
    let Ok(mut conn) = pool.get().await else { return };
    match q::fail_abandoned(&mut conn, Utc::now()).await {
        Ok(n) => metrics.job_runs("failed", u64::try_from(n).unwrap_or(0)),
        Err(e) => tracing::warn!(error = %e, "cannot fail abandoned jobs; will try again"),
    }
    if let Ok(s) = q::stats(&mut conn, Utc::now()).await {
        metrics.set_job_queue(s.depth, s.oldest_age_secs);
    }
}

/// Runs `job` to its end, renewing the lease meanwhile, and records the outcome.
async fn run_one(
    pool: &Pool,
    metrics: &Metrics,
    settings: &RunnerSettings,
    handler: &(dyn Fn(Job) -> Run + Send + Sync),
    job: Job,
) {
    let (id, attempts, max_attempts) = (job.id, job.attempts, job.max_attempts);
    let span = tracing::info_span!("job", id = %id, kind = %job.kind, attempt = attempts);
    // A handler that panics fails its run (retried like any failure) instead of taking the runner down.
    let mut work: Run = Box::pin(
        std::panic::AssertUnwindSafe(handler(job).instrument(span))
            .catch_unwind()
            .map(|r| r.unwrap_or_else(|_| Err(JobError::Retry("the job's handler panicked".into())))),
    );
    let mut renewal = tokio::time::interval(settings.lease / 3);
    renewal.tick().await;
    // The lease as this worker last knew it held: past it, another worker may have taken the job over,
    // so a worker that cannot reach the database stops too.
    let mut held_since = std::time::Instant::now();
    let outcome = loop {
        tokio::select! {
            r = &mut work => break Some(r),
            _ = renewal.tick() => {
                let renewed = match pool.get().await {
                    Ok(mut conn) => {
                        q::renew(&mut conn, id, &settings.owner, settings.lease.as_secs_f64(), Utc::now()).await
                    }
                    Err(e) => Err(diesel::result::Error::QueryBuilderError(e.to_string().into())),
                };
                match renewed {
                    Ok(true) => held_since = std::time::Instant::now(),
                    // Another worker holds it now: stop, and write nothing.
                    Ok(false) => break None,
                    Err(e) if held_since.elapsed() >= settings.lease => {
                        tracing::warn!(error = %e, "cannot renew a job's lease and it has run out: stopping the run");
                        break None;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew a job's lease; will try again"),
                }
            }
        }
    };
    let Some(outcome) = outcome else {
        metrics.job_runs("lost", 1);
        return;
    };
    let (label, retry, error) = match outcome {
        Ok(()) => ("succeeded", None, None),
        Err(e) => {
            let base =
                chrono::Duration::from_std(settings.backoff_base).unwrap_or(chrono::Duration::seconds(2));
            let cap =
                chrono::Duration::from_std(settings.backoff_cap).unwrap_or(chrono::Duration::seconds(300));
            let backoff = retry_at(Utc::now(), attempts, base, cap);
            let (error, retry) = match e {
                JobError::Retry(m) if attempts < max_attempts => (m, Some(backoff)),
                JobError::RetryAfter(wait, m) if attempts < max_attempts => {
                    let wait = chrono::Duration::from_std(wait).unwrap_or(cap);
                    (m, Some(backoff.max(Utc::now() + wait)))
                }
                JobError::Retry(m) | JobError::RetryAfter(_, m) | JobError::Fatal(m) => (m, None),
            };
            tracing::warn!(error = %error, retry = retry.is_some(), "job run failed");
            (if retry.is_some() { "retried" } else { "failed" }, retry, Some(error))
        }
    };
    // The outcome is written while the lease holds, retried a few times: a success lost here would run
    // the job again, or, on its last attempt, fail it as abandoned.
    for _ in 0..RECORD_TRIES {
        let recorded = match pool.get().await {
            Ok(mut conn) => match &error {
                None => q::succeed(&mut conn, id, &settings.owner, Utc::now()).await,
                Some(m) => q::fail(&mut conn, id, &settings.owner, m, retry, Utc::now()).await,
            },
            Err(e) => Err(diesel::result::Error::QueryBuilderError(e.to_string().into())),
        };
        match recorded {
            Ok(true) => return metrics.job_runs(label, 1),
            Ok(false) => return metrics.job_runs("lost", 1),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a job's outcome; trying again");
                tokio::time::sleep(settings.lease / 10).await;
            }
        }
    }
    tracing::warn!("a job's outcome could not be recorded; its lease will run out and it is taken over");
}
