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

/// The alert a source sent before under the same provider id, if any.
pub async fn find_by_provider(
    conn: &mut Conn,
    tenant_id: &str,
    service_source: &str,
    provider_alert_id: &str,
) -> QueryResult<Option<Alert>> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::service_source.eq(service_source))
        .filter(alerts::provider_alert_id.eq(provider_alert_id))
        .select(Alert::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts a new alert.
pub async fn insert(conn: &mut Conn, alert: &Alert) -> QueryResult<()> {
    diesel::insert_into(alerts::table).values(alert).execute(conn).await?;
    Ok(())
}

/// Writes what a re-send may change: the source's own fields. Triage fields (status, owner,
/// classification) and the correlation record stay as they are.
pub async fn update_from_source(conn: &mut Conn, a: &Alert) -> QueryResult<()> {
    diesel::update(alerts::table.find((&a.tenant_id, a.id)))
        .set((
            alerts::detection_source.eq(&a.detection_source),
            alerts::alert_policy.eq(&a.alert_policy),
            alerts::title.eq(&a.title),
            alerts::description.eq(&a.description),
            alerts::severity.eq(a.severity),
            alerts::category.eq(&a.category),
            alerts::mitre_techniques.eq(&a.mitre_techniques),
            alerts::first_activity_at.eq(a.first_activity_at),
            alerts::last_activity_at.eq(a.last_activity_at),
            alerts::activity_at.eq(a.activity_at),
            alerts::last_update_at.eq(a.last_update_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
