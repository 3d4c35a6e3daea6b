//! The events outbox table.

use crate::db::schema::events;
use crate::db::Conn;
use crate::events::NewEvent;
use diesel::prelude::*;
use diesel::sql_types::{Int8, Text};
use diesel_async::RunQueryDsl;

/// Serialises a tenant's event writers until commit.
pub async fn lock_tenant_events(conn: &mut Conn, lock: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<Int8, _>(lock).execute(conn).await?;
    Ok(())
}

/// Inserts event rows in order.
pub async fn insert(conn: &mut Conn, tenant_id: &str, rows: &[NewEvent]) -> QueryResult<()> {
    let values: Vec<_> = rows
        .iter()
        .map(|e| {
            (
                events::tenant_id.eq(tenant_id),
                events::kind.eq(e.kind.as_str()),
                events::incident_id.eq(e.incident_id),
                events::alert_id.eq(e.alert_id),
                events::actor.eq(Some(e.actor.as_str())),
                events::payload.eq(&e.payload),
            )
        })
        .collect();
    diesel::insert_into(events::table).values(values).execute(conn).await?;
    Ok(())
}

/// `pg_notify(channel, payload)`; delivered when the transaction commits.
pub async fn notify(conn: &mut Conn, channel: &str, payload: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    /// Tenant.
    pub tenant_id: String,
    /// Position in the tenant's stream (commit order within the tenant).
    pub seq: i64,
    /// Kind (stored spelling).
    pub kind: String,
    /// Incident concerned.
    pub incident_id: Option<uuid::Uuid>,
    /// Alert concerned.
    pub alert_id: Option<uuid::Uuid>,
    /// Who caused it.
    pub actor: Option<String>,
    /// Detail.
    pub payload: serde_json::Value,
    /// When it was written.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The tenant's events after `after`, oldest first, at most `limit`.
pub async fn after(conn: &mut Conn, tenant_id: &str, after: i64, limit: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::tenant_id.eq(tenant_id))
        .filter(events::seq.gt(after))
        .order(events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
        .await
}

/// The tenant's newest event position (0 when it has none).
pub async fn max_seq(conn: &mut Conn, tenant_id: &str) -> QueryResult<i64> {
    events::table
        .filter(events::tenant_id.eq(tenant_id))
        .select(diesel::dsl::max(events::seq))
        .first::<Option<i64>>(conn)
        .await
        .map(|m| m.unwrap_or(0))
}

/// The current rows of the alerts events name (missing ids are left out).
pub async fn load_alerts(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<crate::db::models::Alert>> {
    use crate::db::schema::alerts;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(ids))
        .select(crate::db::models::Alert::as_select())
        .load(conn)
        .await
}

/// The current rows of the incidents events name (missing ids are left out).
pub async fn load_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<crate::db::models::Incident>> {
    use crate::db::schema::incidents;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    incidents::table
        .filter(incidents::tenant_id.eq(tenant_id))
        .filter(incidents::id.eq_any(ids))
        .select(crate::db::models::Incident::as_select())
        .load(conn)
        .await
}
