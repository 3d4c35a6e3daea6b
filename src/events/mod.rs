//! The event outbox: every change others must see writes event rows in the same transaction as the
//! change. A per-tenant advisory lock taken as the last step before the rows are written makes a
//! tenant's sequence order equal its commit order, so a reader that has seen event N of a tenant has
//! seen every earlier one. `pg_notify` (delivered at commit) wakes every replica's hub.

pub mod cursor;
pub mod hub;
pub mod retention;
pub mod stream;

use crate::db::queries::events as q;
use crate::db::Conn;
use crate::domain::locks::lock_id;

// What the outbox writes is defined below `db`, which stores it; writers find it here, beside `record`.
pub use crate::domain::events::{CorrelatedPayload, EventKind, NewEvent};

/// The channel replicas LISTEN on; the payload is the tenant id.
pub const CHANNEL: &str = "parapet_events";

/// Writes `events` for the tenant and schedules the NOTIFY. Call it as the LAST write of the
/// transaction: the tenant's event lock is held until commit.
pub async fn record(conn: &mut Conn, tenant_id: &str, events: &[NewEvent]) -> diesel::QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    q::lock_tenant_events(conn, lock_id(tenant_id, "EVENTS", "")).await?;
    q::insert(conn, tenant_id, events).await?;
    q::notify(conn, CHANNEL, tenant_id).await
}
