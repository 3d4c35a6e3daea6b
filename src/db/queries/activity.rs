//! The activity log of incidents and alerts.

use crate::db::models::Activity;
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
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.tenant_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(entries.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(entries.iter().map(|e| e.incident_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(entries.iter().map(|e| e.alert_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(entries.iter().map(|e| e.field.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Jsonb>>, _>(entries.iter().map(|e| e.before.as_ref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Jsonb>>, _>(entries.iter().map(|e| e.after.as_ref()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.message.as_str()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(entries.iter().map(|e| e.created_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
