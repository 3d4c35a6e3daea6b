//! Tenants and their settings.

use crate::db::models::Tenant;
use crate::db::schema::tenants;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Creates the tenant with default settings if it does not exist yet.
pub async fn ensure(conn: &mut Conn, tenant_id: &str) -> QueryResult<()> {
    diesel::insert_into(tenants::table)
        .values(tenants::id.eq(tenant_id))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's settings.
pub async fn get(conn: &mut Conn, tenant_id: &str) -> QueryResult<Tenant> {
    tenants::table.find(tenant_id).select(Tenant::as_select()).first(conn).await
}
