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
