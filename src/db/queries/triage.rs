//! Writes of the triage domain: row locks on incidents and alerts, and the updates analysts (and the
//! roll-up rules) make to them. Callers run these inside one transaction; every function filters by tenant.

use crate::db::models::{Alert, Incident};
use crate::db::schema::{alerts, incidents};
use crate::db::Conn;
use crate::domain::enums::{AlertStatus, Severity};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Locks one incident of the tenant (`FOR UPDATE`) and returns it, or `None` when it does not exist.
pub async fn lock_incident(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Incident>> {
    incidents::table
        .find((tenant_id, id))
        .select(Incident::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Moves an incident's `last_update_at` to `now` (never back): something of it that is not one of its
/// own fields changed (an alert, a comment), and `updatedAfter` must find it.
pub async fn touch_incident(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared::sql(
        "UPDATE incidents SET last_update_at = GREATEST(last_update_at, $3) WHERE tenant_id = $1 AND id = $2",
    )
    .bind::<diesel::sql_types::Text, _>(tenant_id)
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the fields triage may change on an incident.
pub async fn save_incident(conn: &mut Conn, i: &Incident) -> QueryResult<()> {
    diesel::update(incidents::table.find((i.tenant_id.as_str(), i.id)))
        .set((
            incidents::display_name.eq(&i.display_name),
            incidents::display_name_custom.eq(i.display_name_custom),
            incidents::severity.eq(i.severity),
            incidents::severity_custom.eq(i.severity_custom),
            incidents::status.eq(i.status),
            incidents::classification.eq(i.classification),
            incidents::determination.eq(i.determination),
            incidents::assigned_to.eq(&i.assigned_to),
            incidents::custom_tags.eq(&i.custom_tags),
            incidents::resolving_comment.eq(&i.resolving_comment),
            incidents::priority_score.eq(i.priority_score),
            incidents::priority_reasons.eq(&i.priority_reasons),
            incidents::last_update_at.eq(i.last_update_at),
            incidents::resolved_at.eq(i.resolved_at),
            incidents::last_modified_by.eq(&i.last_modified_by),
            incidents::version.eq(i.version),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The alert's incident id, without locking (to learn which incident to lock first).
pub async fn alert_incident_id(
    conn: &mut Conn,
    tenant_id: &str,
    alert_id: Uuid,
) -> QueryResult<Option<Uuid>> {
    alerts::table.find((tenant_id, alert_id)).select(alerts::incident_id).first(conn).await.optional()
}

/// Locks one alert of the tenant (`FOR UPDATE`).
pub async fn lock_alert(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Alert>> {
    alerts::table.find((tenant_id, id)).select(Alert::as_select()).for_update().first(conn).await.optional()
}

/// Locks every alert of an incident (`FOR UPDATE`, in id order) and returns them.
pub async fn lock_alerts_of_incident(
    conn: &mut Conn,
    tenant_id: &str,
    incident_id: Uuid,
) -> QueryResult<Vec<Alert>> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq(incident_id))
        .order(alerts::id.asc())
        .select(Alert::as_select())
        .for_update()
        .load(conn)
        .await
}

/// Writes the fields triage may change on an alert.
pub async fn save_alert(conn: &mut Conn, a: &Alert) -> QueryResult<()> {
    diesel::update(alerts::table.find((a.tenant_id.as_str(), a.id)))
        .set((
            alerts::status.eq(a.status),
            alerts::classification.eq(a.classification),
            alerts::determination.eq(a.determination),
            alerts::assigned_to.eq(&a.assigned_to),
            alerts::last_update_at.eq(a.last_update_at),
            alerts::resolved_at.eq(a.resolved_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives the alerts `ids` one owner (or none).
pub async fn assign_alerts(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    assigned_to: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(alerts::table)
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(ids))
        .set((alerts::assigned_to.eq(assigned_to), alerts::last_update_at.eq(now)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Resolves the alerts `ids` at `now`.
pub async fn resolve_alerts(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(alerts::table)
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(ids))
        .set((
            alerts::status.eq(AlertStatus::Resolved),
            alerts::resolved_at.eq(Some(now)),
            alerts::last_update_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// How many alerts of the incident are not resolved.
pub async fn count_open_alerts(conn: &mut Conn, tenant_id: &str, incident_id: Uuid) -> QueryResult<i64> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq(incident_id))
        .filter(alerts::status.ne(AlertStatus::Resolved))
        .count()
        .get_result(conn)
        .await
}

/// The highest severity among the incident's alerts, `None` when it has none.
pub async fn max_alert_severity(
    conn: &mut Conn,
    tenant_id: &str,
    incident_id: Uuid,
) -> QueryResult<Option<Severity>> {
    // Severities are stored as text, whose order is not the severity order: compare in Rust.
    let all: Vec<Severity> = alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq(incident_id))
        .select(alerts::severity)
        .distinct()
        .load(conn)
        .await?;
    Ok(all.into_iter().max())
}
