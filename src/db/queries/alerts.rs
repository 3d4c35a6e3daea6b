//! Alerts.

use crate::db::models::Alert;
use crate::db::schema::alerts;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// One alert of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Alert>> {
    alerts::table.find((tenant_id, id)).select(Alert::as_select()).first(conn).await.optional()
}
