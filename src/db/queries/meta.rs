//! Queries about the database itself (migrations, health).

use crate::db::Conn;
use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Versions recorded in Diesel's migrations table.
pub async fn applied_migrations(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let rows: Vec<Version> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(conn).await?;
    Ok(rows.into_iter().map(|v| v.version).collect())
}
