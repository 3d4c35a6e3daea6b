//! The activity log of incidents and alerts.

use crate::db::models::Activity;
use crate::db::prepared::column;
use crate::db::Conn;
use diesel_async::RunQueryDsl;

/// Appends entries to the log.
pub async fn insert(conn: &mut Conn, entries: &[Activity]) -> diesel::QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    crate::db::prepared::sql(
        "INSERT INTO activity (tenant_id, id, incident_id, alert_id, actor, kind, field, before, after, message, \
                               created_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                              $8::jsonb[], $9::jsonb[], $10::text[], $11::timestamptz[])",
    )
    .bind::<Array<Text>, _>(column(entries, |e| e.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(entries, |e| e.id))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(entries, |e| e.incident_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(entries, |e| e.alert_id))
    .bind::<Array<Text>, _>(column(entries, |e| e.actor.as_str()))
    .bind::<Array<Text>, _>(column(entries, |e| e.kind.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.field.as_deref()))
    .bind::<Array<Nullable<Jsonb>>, _>(column(entries, |e| e.before.as_ref()))
    .bind::<Array<Nullable<Jsonb>>, _>(column(entries, |e| e.after.as_ref()))
    .bind::<Array<Text>, _>(column(entries, |e| e.message.as_str()))
    .bind::<Array<Timestamptz>, _>(column(entries, |e| e.created_at))
    .execute(conn)
    .await?;
    Ok(())
}
