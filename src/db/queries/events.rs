//! The events outbox table.

use crate::db::prepared::column;
use crate::db::schema::events;
use crate::db::Conn;
use crate::domain::events::NewEvent;
use diesel::prelude::*;
use diesel::sql_types::{Int8, Text};
use diesel_async::RunQueryDsl;

/// Serialises a tenant's event writers until commit.
pub async fn lock_tenant_events(conn: &mut Conn, lock: i64) -> QueryResult<()> {
    crate::db::prepared::sql("SELECT pg_advisory_xact_lock($1)").bind::<Int8, _>(lock).execute(conn).await?;
    Ok(())
}

/// Inserts event rows in order (their `seq` follows the order of `rows`).
pub async fn insert(conn: &mut Conn, tenant_id: &str, rows: &[NewEvent]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Jsonb, Nullable, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    crate::db::prepared::sql(
        "INSERT INTO events (tenant_id, kind, incident_id, alert_id, actor, payload, action_id) \
         SELECT $1, u.kind, u.incident_id, u.alert_id, u.actor, u.payload, u.action_id \
         FROM unnest($2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::jsonb[], $7::uuid[]) WITH ORDINALITY \
              AS u(kind, incident_id, alert_id, actor, payload, action_id, ord) \
         ORDER BY u.ord",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(column(rows, |e| e.kind.as_str()))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |e| e.incident_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |e| e.alert_id))
    .bind::<Array<Text>, _>(column(rows, |e| e.actor.as_str()))
    .bind::<Array<Jsonb>, _>(column(rows, |e| &e.payload))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |e| e.action_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// `pg_notify(channel, payload)`; delivered when the transaction commits.
pub async fn notify(conn: &mut Conn, channel: &str, payload: &str) -> QueryResult<()> {
    crate::db::prepared::sql("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
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
    /// Action concerned.
    pub action_id: Option<uuid::Uuid>,
}

/// For each `(tenant, after)`, up to `limit` of the tenant's events after `after`, oldest first: one
/// statement (an index range per tenant) however many tenants are asked for.
pub async fn after_many(conn: &mut Conn, due: &[(String, i64)], limit: i64) -> QueryResult<Vec<EventRow>> {
    use diesel::sql_types::Array;
    if due.is_empty() {
        return Ok(vec![]);
    }
    crate::db::prepared::sql(
        "SELECT e.tenant_id, e.seq, e.kind, e.incident_id, e.alert_id, e.actor, e.payload, e.created_at, e.action_id \
         FROM unnest($1::text[], $2::int8[]) AS d(tenant_id, after) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM events WHERE tenant_id = d.tenant_id AND seq > d.after ORDER BY seq LIMIT $3 \
         ) e \
         ORDER BY e.tenant_id, e.seq",
    )
    .bind::<Array<Text>, _>(column(due, |d| d.0.as_str()))
    .bind::<Array<Int8>, _>(column(due, |d| d.1))
    .bind::<Int8, _>(limit)
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

/// The current rows of the alerts events name, among `tenant_ids` (missing ids are left out; the
/// caller pairs rows with events by tenant and id).
pub async fn load_alerts(
    conn: &mut Conn,
    tenant_ids: &[&str],
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<crate::db::models::Alert>> {
    use crate::db::schema::alerts;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    alerts::table
        .filter(alerts::tenant_id.eq_any(tenant_ids))
        .filter(alerts::id.eq_any(ids))
        .select(crate::db::models::Alert::as_select())
        .load(conn)
        .await
}

/// The current rows of the incidents events name, among `tenant_ids` (missing ids are left out; the
/// caller pairs rows with events by tenant and id).
pub async fn load_incidents(
    conn: &mut Conn,
    tenant_ids: &[&str],
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<crate::db::models::Incident>> {
    use crate::db::schema::incidents;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    incidents::table
        .filter(incidents::tenant_id.eq_any(tenant_ids))
        .filter(incidents::id.eq_any(ids))
        .select(crate::db::models::Incident::as_select())
        .load(conn)
        .await
}

/// The current rows of the actions events name, among `tenant_ids` (missing ids are left out; the
/// caller pairs rows with events by tenant and id).
pub async fn load_actions(
    conn: &mut Conn,
    tenant_ids: &[&str],
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<crate::db::models::Action>> {
    use crate::db::schema::actions;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    actions::table
        .filter(actions::tenant_id.eq_any(tenant_ids))
        .filter(actions::id.eq_any(ids))
        .select(crate::db::models::Action::as_select())
        .load(conn)
        .await
}

/// Position through which the tenant's events have been pruned (0 when none have).
pub async fn watermark(conn: &mut Conn, tenant_id: &str) -> QueryResult<i64> {
    use crate::db::schema::event_watermarks as w;
    w::table
        .filter(w::tenant_id.eq(tenant_id))
        .select(w::pruned_through)
        .first::<i64>(conn)
        .await
        .optional()
        .map(|m| m.unwrap_or(0))
}

/// A tenant with events older than the retention cutoff, and the position to prune through.
#[derive(Debug, Clone, QueryableByName)]
pub struct PruneTarget {
    /// Tenant.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// Position of the tenant's newest event written before the cutoff.
    #[diesel(sql_type = Int8)]
    pub seq: i64,
}

/// Every tenant that has events written more than `older_than_secs` seconds ago (by the database
/// clock), with the position of the newest such event. One index probe per tenant.
pub async fn prune_targets(conn: &mut Conn, older_than_secs: i64) -> QueryResult<Vec<PruneTarget>> {
    crate::db::prepared::sql(
        "SELECT t.id AS tenant_id, x.seq FROM tenants t \
         CROSS JOIN LATERAL ( \
             SELECT e.seq FROM events e \
             WHERE e.tenant_id = t.id AND e.created_at < now() - ($1 * interval '1 second') \
             ORDER BY e.created_at DESC, e.seq DESC LIMIT 1 \
         ) x ORDER BY t.id",
    )
    .bind::<Int8, _>(older_than_secs)
    .load(conn)
    .await
}

/// Raises the tenant's watermark to at least `seq` (never lowers it); returns the watermark now held.
pub async fn raise_watermark(conn: &mut Conn, tenant_id: &str, seq: i64) -> QueryResult<i64> {
    use crate::db::schema::event_watermarks as w;
    diesel::insert_into(w::table)
        .values((w::tenant_id.eq(tenant_id), w::pruned_through.eq(seq)))
        .on_conflict(w::tenant_id)
        .do_update()
        .set((
            w::pruned_through.eq(diesel::dsl::sql::<Int8>(
                "GREATEST(event_watermarks.pruned_through, excluded.pruned_through)",
            )),
            w::updated_at.eq(diesel::dsl::now),
        ))
        .returning(w::pruned_through)
        .get_result(conn)
        .await
}

/// Deletes up to `limit` of the tenant's oldest events at or below `through`; returns how many went.
pub async fn delete_through(
    conn: &mut Conn,
    tenant_id: &str,
    through: i64,
    limit: i64,
) -> QueryResult<usize> {
    crate::db::prepared::sql(
        "DELETE FROM events WHERE tenant_id = $1 AND seq IN ( \
             SELECT seq FROM events WHERE tenant_id = $1 AND seq <= $2 ORDER BY seq LIMIT $3)",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Int8, _>(through)
    .bind::<Int8, _>(limit)
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Tries to take a session-level advisory lock; `false` when another session holds it.
pub async fn try_session_lock(conn: &mut Conn, lock: i64) -> QueryResult<bool> {
    crate::db::prepared::sql("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<Int8, _>(lock)
        .get_result::<Locked>(conn)
        .await
        .map(|l| l.locked)
}

/// Releases a lock taken with [`try_session_lock`] on the same connection.
pub async fn session_unlock(conn: &mut Conn, lock: i64) -> QueryResult<()> {
    crate::db::prepared::sql("SELECT pg_advisory_unlock($1)").bind::<Int8, _>(lock).execute(conn).await?;
    Ok(())
}
