//! The activity log of incidents and alerts.

use crate::db::models::Activity;
use crate::db::schema::activity;
use crate::db::Conn;
use diesel_async::RunQueryDsl;

/// Appends entries to the log.
pub async fn insert(conn: &mut Conn, entries: &[Activity]) -> diesel::QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    diesel::insert_into(activity::table).values(entries).execute(conn).await?;
    Ok(())
}
