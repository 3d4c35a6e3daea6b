//! The SQL of tenants' mail servers: one row per tenant.

use crate::db::models::MailServer;
use crate::db::schema::mail_servers;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The tenant's mail server.
pub async fn find(conn: &mut Conn, tenant_id: &str) -> QueryResult<Option<MailServer>> {
    mail_servers::table.find(tenant_id).select(MailServer::as_select()).first(conn).await.optional()
}

/// The tenant's mail server, locked until the transaction ends.
pub async fn lock(conn: &mut Conn, tenant_id: &str) -> QueryResult<Option<MailServer>> {
    mail_servers::table
        .find(tenant_id)
        .for_update()
        .select(MailServer::as_select())
        .first(conn)
        .await
        .optional()
}

/// Stores the tenant's mail server, replacing the one there.
pub async fn upsert(conn: &mut Conn, row: &MailServer) -> QueryResult<()> {
    diesel::insert_into(mail_servers::table)
        .values(row)
        .on_conflict(mail_servers::tenant_id)
        .do_update()
        .set(row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the tenant's mail server.
pub async fn delete(conn: &mut Conn, tenant_id: &str) -> QueryResult<usize> {
    diesel::delete(mail_servers::table.find(tenant_id)).execute(conn).await
}

/// Whether any tenant has one.
pub async fn any(conn: &mut Conn) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(mail_servers::table.select(mail_servers::tenant_id)))
        .get_result(conn)
        .await
}
