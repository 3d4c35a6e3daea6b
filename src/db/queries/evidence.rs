//! Evidence of alerts, read in batches for the loaders (by alert, and by incident through its alerts).

use crate::db::models::Evidence;
use crate::db::schema::{alerts, evidence};
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Evidence of each of `alert_ids`, oldest first.
pub async fn by_alerts(conn: &mut Conn, tenant_id: &str, alert_ids: &[Uuid]) -> QueryResult<Vec<Evidence>> {
    if alert_ids.is_empty() {
        return Ok(vec![]);
    }
    evidence::table
        .filter(evidence::tenant_id.eq(tenant_id))
        .filter(evidence::alert_id.eq_any(alert_ids))
        .order_by((evidence::created_at, evidence::id))
        .select(Evidence::as_select())
        .load(conn)
        .await
}

/// Evidence of every alert of each of `incident_ids`, with the incident it belongs to, oldest first.
pub async fn by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, Evidence)>> {
    if incident_ids.is_empty() {
        return Ok(vec![]);
    }
    evidence::table
        .inner_join(
            alerts::table
                .on(alerts::tenant_id.eq(evidence::tenant_id).and(alerts::id.eq(evidence::alert_id))),
        )
        .filter(evidence::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq_any(incident_ids))
        .order_by((evidence::created_at, evidence::id))
        .select((alerts::incident_id, Evidence::as_select()))
        .load(conn)
        .await
}
