//! Retention of the mail store by partition: each pass makes the coming weeks' partitions ahead of
//! time, and retires every week that ended more than 30 days ago with `DETACH PARTITION … CONCURRENTLY`
//! (readers and writers go on meanwhile) under a `lock_timeout`, then `DROP TABLE`. No row is deleted
//! one by one, so retention costs the same whatever the volume. A pass that stops half-way (a lock
//! timeout, a crash) leaves a partition pending detach or detached; the next pass finishes it.

use crate::db::queries::emails as q;
use crate::db::Pool;
use crate::domain::email::RETENTION_DAYS;
use crate::domain::locks::lock_id;
use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};

/// How long a detach or drop waits for a lock before giving up until the next pass.
pub const LOCK_TIMEOUT_MS: u64 = 5_000;
/// How far ahead partitions are made.
pub const AHEAD_DAYS: i64 = 14;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionReport {
    /// `false` when another replica was at it and this pass stood aside.
    pub ran: bool,
    /// Partitions made ahead.
    pub made: i32,
    /// Partitions detached.
    pub detached: Vec<String>,
    /// Partitions dropped.
    pub dropped: Vec<String>,
    /// Partitions this pass could not detach or drop (a lock it waited on too long); the next pass
    /// finishes them.
    pub failed: Vec<String>,
}

fn pass_lock() -> i64 {
    lock_id("", "MAIL_PARTITIONS", "")
}

/// Makes the partitions of the weeks up to [`AHEAD_DAYS`] ahead of `now` and retires those whose week
/// ended more than 30 days before it.
pub async fn maintain(pool: &Pool, now: DateTime<Utc>, lock_timeout_ms: u64) -> AppResult<PartitionReport> {
    // A connection of its own: DETACH CONCURRENTLY runs outside any transaction, and the session lock
    // and settings must not travel back into the pool.
    let mut conn = pool.get().await?.detach();
    let lock = pass_lock();
    if !crate::db::queries::events::try_session_lock(&mut conn, lock).await? {
        return Ok(PartitionReport::default());
    }
    let outcome: AppResult<PartitionReport> = async {
        let mut report = PartitionReport { ran: true, ..PartitionReport::default() };
        let (from, to) = (now - Duration::days(1), now + Duration::days(AHEAD_DAYS));
        report.made = q::ensure_partitions_within(&mut conn, from, to, lock_timeout_ms).await?;
        // One partition's lock timeout (a long reader, say) holds up only that partition: it stays
        // pending detach, or detached, and the next pass finishes it.
        for p in q::expired_partitions(&mut conn, now - Duration::days(RETENTION_DAYS)).await? {
            match q::detach(&mut conn, &p.parent, &p.name, p.detach_pending, lock_timeout_ms).await {
                Ok(()) => report.detached.push(p.name),
                Err(e) => {
                    tracing::warn!(partition = %p.name, error = %e, "cannot detach an expired mail partition yet");
                    report.failed.push(p.name);
                }
            }
        }
        for name in q::orphan_partitions(&mut conn).await? {
            match q::drop_partition(&mut conn, &name, lock_timeout_ms).await {
                Ok(()) => report.dropped.push(name),
                Err(e) => {
                    tracing::warn!(partition = %name, error = %e, "cannot drop a detached mail partition yet");
                    report.failed.push(name);
                }
            }
        }
        Ok(report)
    }
    .await;
    let _ = crate::db::queries::events::session_unlock(&mut conn, lock).await;
    outcome
}

/// Starts the periodic pass (first right after start, then every `interval`); abort the handle to stop.
pub fn spawn(pool: Pool, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(std::time::Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match maintain(&pool, Utc::now(), LOCK_TIMEOUT_MS).await {
                Ok(r) if r.made > 0 || !r.dropped.is_empty() => tracing::info!(
                    made = r.made,
                    detached = ?r.detached,
                    dropped = ?r.dropped,
                    "mail store partitions made and retired"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "mail partition maintenance failed; will retry"),
            }
        }
    })
}
