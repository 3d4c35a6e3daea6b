//! The ingestion service: validates a batch, then, in one transaction, writes its new alerts and places
//! every good alert while holding the batch's key locks. The whole batch commits before any item is
//! acknowledged.

use super::input::AlertInput;
use super::learn::{learn, learnable};
use super::validate::prepare;
use crate::auth::{Caller, Role};
use crate::correlation::engine::{place_all, preread, stage, Batch, Placement, Staged};
use crate::db::queries::{correlation as q, tenants};
use crate::db::retry::{retry_idempotent, ATTEMPTS};
use crate::db::Pool;
use crate::domain::alert::PreparedAlert;
use crate::domain::locks::lock_id;
use crate::error::{AppError, AppResult};
use crate::mail::ingest::ensure_partitions_for;
use diesel_async::AsyncConnection;

/// Most alerts one call may carry.
pub const MAX_BATCH: usize = 500;

/// The outcome of one item of a batch.
#[derive(Debug, Clone)]
pub enum ItemOutcome {
    /// Stored and correlated.
    Placed(Placement),
    /// Refused; the reason names the field.
    Rejected(String),
}

/// Ingests a batch for the caller's tenant.
pub async fn ingest_alerts(
    pool: &Pool,
    caller: &Caller,
    inputs: Vec<AlertInput>,
) -> AppResult<Vec<ItemOutcome>> {
    caller.require(Role::Ingestor)?;
    if inputs.len() > MAX_BATCH {
        return Err(AppError::bad(format!("at most {MAX_BATCH} alerts per call ({} given)", inputs.len())));
    }
    let prepared: Vec<Result<PreparedAlert, String>> =
        inputs.into_iter().map(|i| prepare(i, caller.svc.as_deref())).collect();
    let good: Vec<(usize, &PreparedAlert)> =
        prepared.iter().enumerate().filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, p))).collect();

    let tid = caller.tenant_id.as_str();
    // Every key of the batch is locked before it decides anything.
    let mut key_locks: Vec<i64> = vec![];
    for (_, p) in &good {
        for k in &p.keys {
            key_locks.push(lock_id(tid, k.kind.as_str(), &k.value));
        }
    }

    let mut placed: Vec<Placement> = vec![];
    if !good.is_empty() {
        let items: Vec<&PreparedAlert> = good.iter().map(|(_, p)| *p).collect();
        // Copies the evidence names, for tenants whose gateways push no mail flow.
        let learned = learnable(&items, chrono::Utc::now());
        ensure_partitions_for(pool, learned.iter().map(|c| c.received_at)).await?;
        // Re-sending a batch is idempotent, so even an attempt whose commit went unanswered may run again.
        let result = retry_idempotent(pool, "ingest transaction", async |conn| {
            // The key rows exist before the transaction (a statement of its own, committed at once), so
            // the transaction's key locks are quick: they lock rows, and insert one only if it vanished.
            q::ensure_key_rows(conn, tid, &key_locks).await?;
            conn.transaction::<_, AppError, _>(async |conn| {
                let now = chrono::Utc::now();
                // Writing the new alerts and reading what their keys match need no lock; deciding
                // where they go does, and then reads only what changed meanwhile.
                let staged = stage(conn, tid, &items, now).await?;
                let tenant = tenants::get(conn, tid).await?;
                let pre = preread(conn, &tenant, &items, &staged, now).await?;
                q::lock_keys(conn, tid, &with_resends(tid, &key_locks, &items, &staged)).await?;
                let mut batch = Batch::default();
                let mut out = place_all(conn, &tenant, &items, &staged, pre, now, &mut batch).await?;
                // Report where each alert ended the batch (a later alert may have merged its incident).
                for p in &mut out {
                    p.incident_id = batch.resolve(p.incident_id);
                }
                learn(conn, tid, &learned, now).await?;
                batch.finish(conn, tid).await?;
                Ok(out)
            })
            .await
        })
        .await;
        placed = match result {
            Err(AppError::Transient(detail)) => {
                tracing::warn!(attempt = ATTEMPTS, %detail, "ingest transaction failed after its retries");
                return Err(AppError::Unavailable(format!(
                    "the database was busy and the batch could not be stored after {ATTEMPTS} tries; \
                     nothing of it was stored: retry the same batch (re-sending is idempotent)"
                )));
            }
            Err(AppError::ConnectionLost(detail)) => {
                tracing::warn!(attempt = ATTEMPTS, %detail, "ingest lost its connection on every try");
                return Err(AppError::Unavailable(format!(
                    "the connection to the database was lost on each of {ATTEMPTS} tries, the last one \
                     perhaps while committing: retry the same batch (re-sending is idempotent, so it is \
                     stored once either way)"
                )));
            }
            other => other?,
        };
    }

    let mut placed = placed.into_iter();
    Ok(prepared
        .into_iter()
        .map(|p| match p {
            Ok(_) => placed
                .next()
                .map(ItemOutcome::Placed)
                .unwrap_or_else(|| ItemOutcome::Rejected("internal server error".into())),
            Err(reason) => ItemOutcome::Rejected(reason),
        })
        .collect())
}

/// The key locks, and one lock per re-sent (service source, provider id), so that re-sends of one alert
/// decide one after the other. A new alert needs none: a second batch staging the same provider id waits
/// on the first one's row (the unique index) until it commits, and then finds it a re-send.
fn with_resends(tid: &str, keys: &[i64], items: &[&PreparedAlert], staged: &[Option<Staged>]) -> Vec<i64> {
    let mut ids = keys.to_vec();
    for (p, s) in items.iter().zip(staged) {
        if s.is_none() {
            ids.push(lock_id(tid, "PROVIDER", &format!("{}\u{1f}{}", p.service_source, p.provider_alert_id)));
        }
    }
    ids
}
