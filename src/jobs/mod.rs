//! Background work as jobs in PostgreSQL, shared by every replica: the queue's rules (attempts, backoff)
//! and the runner that claims jobs, holds them under a renewed lease and records how each run ended.

pub mod runner;

use chrono::{DateTime, Duration, Utc};

pub use crate::db::queries::jobs::{Job, NewJob, QueueStats};

/// Runs a job may take unless it says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth another run (the database was busy, a mail server did not answer): queued again with
    /// backoff while attempts remain.
    Retry(String),
    /// Worth another run, but not before this long (a mail server that refuses connections while it
    /// restarts): queued again after the longer of this wait and the backoff.
    RetryAfter(std::time::Duration, String),
    /// No run can mend it (the job names what no longer exists): failed for good at once.
    Fatal(String),
}

/// The run of `job` by its kind. No kind is defined yet (remediation actions will be the first), so
/// any job fails for good, saying so, rather than waiting in the queue for ever.
pub fn dispatch(job: Job) -> runner::Run {
    Box::pin(async move { Err(JobError::Fatal(format!("no handler for job kind {:?}", job.kind))) })
}

/// When a job whose `attempts`-th run just failed runs again: `base` doubled per attempt, at most `cap`.
pub fn retry_at(now: DateTime<Utc>, attempts: i32, base: Duration, cap: Duration) -> DateTime<Utc> {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(30);
    let wait = base.checked_mul(1_i32 << doublings.min(30)).unwrap_or(cap).min(cap);
    now + wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let now = Utc::now();
        let (base, cap) = (Duration::seconds(2), Duration::seconds(60));
        let waits: Vec<i64> = (1..=7).map(|a| (retry_at(now, a, base, cap) - now).num_seconds()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!((retry_at(now, 0, base, cap) - now).num_seconds(), 2);
        assert_eq!((retry_at(now, i32::MAX, base, cap) - now).num_seconds(), 60);
    }
}
