//! Retention of the event outbox: events older than the window are deleted in bounded batches by a
//! periodic task every replica runs, and each tenant's watermark records the position pruned through.
//!
//! Invariant: for a tenant with watermark `W`, every event at or below `W` is gone (or about to go)
//! and every event above `W` is intact. The watermark is raised and committed *before* the deletes, so
//! a subscriber that reads it after its replay page can tell whether anything it had not yet seen was
//! deleted (see [`super::stream`]). Replicas coordinate with a session advisory lock, so one prunes at
//! a time; the steps are idempotent anyway (the watermark only rises, deletes of deleted rows are no-ops).
//!
//! The same pass empties the correlation key-lock table of rows no transaction holds: they are made
//! again on demand, and the table would otherwise keep a row for every key ever seen.

use crate::db::queries::correlation::prune_key_rows;
use crate::db::queries::events as q;
use crate::db::Pool;
use crate::domain::locks::lock_id;
use crate::error::AppResult;
use std::time::Duration;

/// Rows deleted per statement: short transactions, no long locks, bounded WAL bursts.
pub const DEFAULT_BATCH: i64 = 5_000;

/// How retention runs.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Events older than this are pruned.
    pub window: Duration,
    /// How often each replica tries to prune.
    pub interval: Duration,
    /// Rows deleted per statement.
    pub batch: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(3600),
            batch: DEFAULT_BATCH,
        }
    }
}

/// What one pruning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// `false` when another replica was pruning and this pass stood aside.
    pub ran: bool,
    /// Tenants that had expired events.
    pub tenants: usize,
    /// Events deleted.
    pub deleted: u64,
    /// Correlation key-lock rows deleted (none held at the time).
    pub key_rows: u64,
}

fn prune_lock() -> i64 {
    lock_id("", "EVENT_PRUNE", "")
}

/// Deletes every tenant's events older than `window`, `batch` rows per statement, and raises the
/// tenants' watermarks. Returns at once (with `ran: false`) when another replica is pruning.
pub async fn prune(pool: &Pool, window: Duration, batch: i64) -> AppResult<PruneReport> {
    // A connection of its own for the session lock: if this task dies half-way, closing the connection
    // releases the lock, where a pooled connection would carry it back into the pool.
    let mut conn = pool.get().await?.detach();
    let lock = prune_lock();
    if !q::try_session_lock(&mut conn, lock).await? {
        return Ok(PruneReport::default());
    }
    let secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2);
    let batch = batch.max(1);
    let mut report = PruneReport { ran: true, ..PruneReport::default() };
    let outcome: AppResult<()> = async {
        for target in q::prune_targets(&mut conn, secs).await? {
            report.tenants += 1;
            // Committed before any delete: readers learn of the gap before it exists.
            let through = q::raise_watermark(&mut conn, &target.tenant_id, target.seq).await?;
            loop {
                let n = q::delete_through(&mut conn, &target.tenant_id, through, batch).await?;
                report.deleted += n as u64;
                if (n as i64) < batch {
                    break;
                }
            }
        }
        loop {
            let n = prune_key_rows(&mut conn, batch).await?;
            report.key_rows += n as u64;
            if (n as i64) < batch {
                break;
            }
        }
        Ok(())
    }
    .await;
    // The connection is dropped right after, which would release the lock too; unlock explicitly so a
    // failed unlock is no reason to fail the pass.
    let _ = q::session_unlock(&mut conn, lock).await;
    outcome.map(|_| report)
}

/// Starts the periodic pruning task (first pass shortly after start); abort the handle to stop it.
pub fn spawn(pool: Pool, settings: RetentionSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Replicas started together need not all try at the same moment.
        let jitter = Duration::from_millis(u64::from(rand::random::<u16>()) % 10_000);
        tokio::time::sleep(Duration::from_secs(5) + jitter).await;
        let mut tick = tokio::time::interval(settings.interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match prune(&pool, settings.window, settings.batch).await {
                Ok(r) if r.deleted > 0 || r.key_rows > 0 => tracing::info!(
                    tenants = r.tenants,
                    deleted = r.deleted,
                    key_rows = r.key_rows,
                    "pruned expired events and idle key rows"
                ),
                Ok(r) if !r.ran => tracing::debug!("another replica is pruning events"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "pruning expired events failed; will retry"),
            }
        }
    })
}
