//! Pending actions expire after 7 days without a decision (and the same sweep ends actions whose job
//! failed for good, `stranded`). Every replica sweeps once a minute; each
//! expiry is a conditional update of a still-pending row (`SKIP LOCKED`), so replicas share the work
//! and none expires an action twice. A decision arriving after the time ran out expires it on the spot.

use super::evidence;
use super::notes::{what, Notes};
use crate::db::models::Action;
use crate::db::queries::actions as q;
use crate::db::{Conn, Pool};
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::ActionStatus;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// How often each replica sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Most actions one sweep transaction expires.
const BATCH: i64 = 500;

async fn record(conn: &mut Conn, expired: Vec<Action>, now: DateTime<Utc>) -> AppResult<usize> {
    let n = expired.len();
    let mut by_tenant: BTreeMap<String, Vec<Action>> = BTreeMap::new();
    for a in expired {
        by_tenant.entry(a.tenant_id.clone()).or_default().push(a);
    }
    for (tenant, actions) in by_tenant {
        let mut notes = Notes::default();
        for a in &actions {
            evidence::ended_undecided(conn, a, ActionStatus::Expired).await?;
            let message = format!("{} expired: no decision within 7 days", what(a));
            notes.status(a, Some(ActionStatus::Pending), SYSTEM_ACTOR, message, now);
        }
        notes.write(conn, &tenant, now).await?;
    }
    Ok(n)
}

/// Expires the tenant's pending actions whose time ran out (`only`: just this one), in the caller's
/// transaction, which holds the tenant's action lock.
pub async fn expire_in(
    conn: &mut Conn,
    tenant_id: &str,
    only: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let expired = q::expire_due(conn, Some(tenant_id), only, now, BATCH).await?;
    record(conn, expired, now).await
}

/// Expires every pending action whose time ran out at `now`, one transaction per tenant and batch (a
/// tenant's outbox lock is never held for another's work); returns how many.
pub async fn sweep(pool: &Pool, now: DateTime<Utc>) -> AppResult<usize> {
    let mut total = 0;
    loop {
        let mut conn = pool.get().await?;
        let tenants = q::tenants_with_due(&mut conn, now, 100).await?;
        if tenants.is_empty() {
            return Ok(total);
        }
        for tenant in &tenants {
            total += conn
                .transaction::<_, AppError, _>(async |conn| {
                    q::tenant_lock(conn, super::lock(tenant), true).await?;
                    expire_in(conn, tenant, None, now).await
                })
                .await?;
        }
    }
}

/// Starts the periodic sweep.
pub fn spawn(pool: Pool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            match sweep(&pool, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "pending actions expired"),
                Err(e) => tracing::warn!(error = ?e, "expiring pending actions failed; next sweep retries"),
            }
            match super::stranded::sweep(&pool, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(ended = n, "actions whose job failed for good were ended"),
                Err(e) => tracing::warn!(error = ?e, "ending stranded actions failed; next sweep retries"),
            }
        }
    })
}
