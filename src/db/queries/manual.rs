//! The SQL of manual incident operations (create an incident from alerts, link alerts, merge by hand):
//! reading the chosen alerts and moving them. Incident row locks, inserts and redirects reuse
//! `queries::correlation`. Callers run these inside one transaction; every function filters by tenant.

use crate::db::models::Alert;
use crate::db::schema::alerts;
use crate::db::Conn;
use crate::domain::enums::CorrelationKind;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// The tenant's alerts among `ids`, in id order; missing ids (or another tenant's) are simply absent.
/// Not locked: the caller locks their incidents, which every writer that moves an alert holds.
pub async fn alerts_by_ids(conn: &mut Conn, tenant_id: &str, ids: &[Uuid]) -> QueryResult<Vec<Alert>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(ids))
        .order(alerts::id.asc())
        .select(Alert::as_select())
        .load(conn)
        .await
}

/// Moves the alerts `ids` into incident `to` as placed by a person: correlation kind `MANUAL`, no matched
/// or skipped keys (no key decided it), correlated now. Returns how many rows moved.
pub async fn move_alerts(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    to: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(alerts::table.filter(alerts::tenant_id.eq(tenant_id)).filter(alerts::id.eq_any(ids)))
        .set((
            alerts::incident_id.eq(to),
            alerts::correlation_kind.eq(CorrelationKind::Manual),
            alerts::correlation_matched.eq(serde_json::json!([])),
            alerts::correlation_skipped.eq(serde_json::json!([])),
            alerts::correlated_at.eq(now),
            alerts::last_update_at.eq(now),
        ))
        .execute(conn)
        .await
}
