//! The tenant audit log: writing an entry (in the transaction of the change it records) and reading
//! the log newest first, a keyset page at a time.

use crate::db::models::AuditEntry;
use crate::db::queries::queue::TimeKeyset;
use crate::db::schema::audit_log;
use crate::db::Conn;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Writes an entry.
pub async fn insert(conn: &mut Conn, row: &AuditEntry) -> QueryResult<()> {
    diesel::insert_into(audit_log::table).values(row).execute(conn).await?;
    Ok(())
}

/// A page of the tenant's log, newest first, after `after`.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    after: Option<TimeKeyset>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut q = audit_log::table.filter(audit_log::tenant_id.eq(tenant_id)).into_boxed();
    if let Some(k) = after {
        q = q.filter(audit_log::at.lt(k.at).or(audit_log::at.eq(k.at).and(audit_log::id.lt(k.id))));
    }
    q.order_by((audit_log::at.desc(), audit_log::id.desc()))
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
        .await
}

/// How many entries the tenant's log holds.
pub async fn count(conn: &mut Conn, tenant_id: &str) -> QueryResult<i64> {
    audit_log::table.filter(audit_log::tenant_id.eq(tenant_id)).select(count_star()).first(conn).await
}
