//! Incidents.

use crate::db::models::Incident;
use crate::db::schema::incidents;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// One incident of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Incident>> {
    incidents::table.find((tenant_id, id)).select(Incident::as_select()).first(conn).await.optional()
}
