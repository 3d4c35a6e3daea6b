//! The ingestion service: validates a batch, then, in one transaction, writes its new alerts and places
//! every good alert while holding the batch's key locks. The whole batch commits before any item is
//! acknowledged.

use super::input::AlertInput;
use super::validate::{prepare, PreparedAlert};
use crate::auth::{Caller, Role};
use crate::correlation::engine::{place_all, preread, stage, Batch, Placement};
use crate::correlation::keys::lock_id;
use crate::db::queries::{correlation as q, tenants};
use crate::db::retry::{backoff, ATTEMPTS};
use crate::db::{Conn, Pool};
use crate::error::{AppError, AppResult};
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
    // Every key of the batch, and every (service source, provider id) it sends, so re-sends of one alert
    // decide one after the other too.
    let mut lock_ids: Vec<i64> = vec![];
    for (_, p) in &good {
        lock_ids.push(lock_id(
            tid,
            "PROVIDER",
            &format!("{}\u{1f}{}", p.service_source, p.provider_alert_id),
        ));
        for k in &p.keys {
            lock_ids.push(lock_id(tid, k.kind.as_str(), &k.value));
        }
    }

    let mut placed: Vec<Placement> = vec![];
    if !good.is_empty() {
        let mut attempt = 0;
        placed = loop {
            attempt += 1;
            // A connection of its own for every attempt: the one before may be the one that was lost.
            let mut conn = pool.get().await?;
            let result = conn
                .transaction::<_, AppError, _>(async |conn| {
                    let now = chrono::Utc::now();
                    let items: Vec<&PreparedAlert> = good.iter().map(|(_, p)| *p).collect();
                    // Writing the new alerts and reading what their keys match need no lock; deciding
                    // where they go does, and then reads only what changed meanwhile.
                    let staged = stage(conn, tid, &items, now).await?;
                    let tenant = tenants::get(conn, tid).await?;
                    let pre = preread(conn, &tenant, &items, &staged, now).await?;
                    lock_keys(conn, tid, &lock_ids).await?;
                    let mut batch = Batch::default();
                    let mut out = place_all(conn, &tenant, &items, &staged, pre, now, &mut batch).await?;
                    // Report where each alert ended the batch (a later alert may have merged its incident).
                    for p in &mut out {
                        p.incident_id = batch.resolve(p.incident_id);
                    }
                    batch.finish(conn, tid).await?;
                    Ok(out)
                })
                .await;
            match result {
                Err(AppError::Transient(detail)) if attempt < ATTEMPTS => {
                    tracing::warn!(attempt, %detail, "ingest transaction collided; retrying");
                    backoff(attempt).await;
                }
                Err(AppError::Transient(detail)) => {
                    tracing::warn!(attempt, %detail, "ingest transaction failed after its retries");
                    return Err(AppError::Unavailable(format!(
                        "the database was busy and the batch could not be stored after {ATTEMPTS} tries; \
                         nothing of it was stored: retry the same batch (re-sending is idempotent)"
                    )));
                }
                other => break other?,
            }
        };
    }

    crate::metrics::alerts_ingested(placed.len() as u64);
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

/// Takes the batch's key locks; a key row that vanished (none is ever deleted) makes the batch start over.
async fn lock_keys(conn: &mut Conn, tid: &str, hashes: &[i64]) -> AppResult<()> {
    let mut wanted = hashes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let locked = q::lock_keys(conn, tid, &wanted).await?;
    if locked != wanted.len() {
        return Err(AppError::Transient(format!("locked {locked} of {} keys", wanted.len())));
    }
    Ok(())
}
