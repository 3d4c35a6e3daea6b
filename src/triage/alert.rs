//! Alert updates, and the roll-ups they cause on the alert's incident: the last open alert resolved
//! resolves the incident, an alert reopened reopens a resolved incident.

use super::changes::{Changes, Entry};
use super::incident::{assignment_message, save};
use super::input::{check_pair, AlertPatch};
use super::{kind, SYSTEM_ACTOR};
use crate::auth::Caller;
use crate::db::models::{Alert, Incident};
use crate::db::queries::triage as q;
use crate::db::Conn;
use crate::domain::enums::{AlertStatus, IncidentStatus};
use crate::error::{AppError, AppResult};
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

/// How often to chase an alert that a merge moves to another incident while we lock it.
const LOCK_ATTEMPTS: usize = 3;

/// Applies `patch` to one alert, then the roll-ups on its incident. An update that changes nothing writes
/// nothing.
pub async fn update_alert(conn: &mut Conn, caller: &Caller, id: Uuid, patch: AlertPatch) -> AppResult<Alert> {
    let patch = patch.validated()?;
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        for _ in 0..LOCK_ATTEMPTS {
            // Lock the incident before the alert, as ingestion and incident updates do, so that the two
            // never wait on each other crosswise.
            let incident_id = q::alert_incident_id(c, tenant, id).await?.ok_or_else(|| not_found(id))?;
            let incident = q::lock_incident(c, tenant, incident_id)
                .await?
                .ok_or_else(|| AppError::Internal(format!("alert {id} points at a missing incident")))?;
            let alert = q::lock_alert(c, tenant, id).await?.ok_or_else(|| not_found(id))?;
            if alert.incident_id != incident_id {
                // A merge moved it meanwhile: lock its new incident instead.
                continue;
            }
            let mut changes = Changes::new(tenant);
            let next = apply(c, &caller.sub, alert, incident, &patch, &mut changes).await?;
            changes.commit(c).await?;
            return Ok(next);
        }
        Err(AppError::Conflict(format!(
            "alert {id} kept moving between incidents while being updated; retry"
        )))
    })
    .await
}

async fn apply(
    c: &mut Conn,
    actor: &str,
    cur: Alert,
    incident: Incident,
    patch: &AlertPatch,
    changes: &mut Changes,
) -> AppResult<Alert> {
    let now = changes.now;
    let (id, incident_id) = (cur.id, cur.incident_id);
    let mut next = cur.clone();
    let mut log: Vec<Entry> = Vec::new();
    let entry = |message: String| Entry::alert(id, incident_id, actor, kind::UPDATE, message);

    let mut status_changed = false;
    if let Some(s) = patch.status {
        if s != cur.status {
            next.status = s;
            next.resolved_at = (s == AlertStatus::Resolved).then_some(now);
            status_changed = true;
            log.push(entry(format!("Status changed from {} to {s}", cur.status)).field(
                "status",
                json!(cur.status),
                json!(s),
            ));
        }
    }

    if let Some(owner) = &patch.assigned_to {
        if *owner != cur.assigned_to {
            next.assigned_to = owner.clone();
            log.push(entry(assignment_message(cur.assigned_to.as_deref(), owner.as_deref())).field(
                "assignedTo",
                json!(cur.assigned_to),
                json!(owner),
            ));
        }
    }

    // The alert's own pair, independent of the incident's.
    let classification = patch.classification.unwrap_or(cur.classification);
    let determination = patch.determination.unwrap_or(cur.determination);
    check_pair(classification, determination)?;
    if classification != cur.classification {
        next.classification = classification;
        log.push(
            entry(format!("Classification changed from {} to {classification}", cur.classification)).field(
                "classification",
                json!(cur.classification),
                json!(classification),
            ),
        );
    }
    if determination != cur.determination {
        next.determination = determination;
        log.push(
            entry(format!("Determination changed from {} to {determination}", cur.determination)).field(
                "determination",
                json!(cur.determination),
                json!(determination),
            ),
        );
    }

    if log.is_empty() {
        return Ok(cur);
    }
    next.last_update_at = now;
    q::save_alert(c, &next).await?;
    changes.extend(log);

    let incident_id = incident.id;
    if !(status_changed && roll_up(c, &next, incident, changes).await?) {
        // The incident's own fields stay, but it changed: `updatedAfter` must find it.
        q::touch_incident(c, &next.tenant_id, incident_id, now).await?;
    }
    Ok(next)
}

/// The incident follows its alerts' status: resolved when none is open any more, reopened when a
/// resolved incident gets an open alert back. The system makes these changes. Returns whether the
/// incident changed (and was saved).
async fn roll_up(c: &mut Conn, alert: &Alert, incident: Incident, changes: &mut Changes) -> AppResult<bool> {
    let (status, message) = if alert.status == AlertStatus::Resolved {
        if !incident.is_open() || q::count_open_alerts(c, &incident.tenant_id, incident.id).await? > 0 {
            return Ok(false);
        }
        (IncidentStatus::Resolved, format!("all its alerts are resolved (the last: {:?})", alert.title))
    } else {
        if incident.status != IncidentStatus::Resolved {
            return Ok(false);
        }
        (IncidentStatus::Active, format!("its alert {:?} was reopened", alert.title))
    };
    let message = format!("Status changed from {} to {status}: {message}", incident.status);
    changes.push(Entry::incident(incident.id, SYSTEM_ACTOR, kind::ROLLUP, message).field(
        "status",
        json!(incident.status),
        json!(status),
    ));
    let mut next = incident;
    next.status = status;
    next.resolved_at = (status == IncidentStatus::Resolved).then_some(changes.now);
    save(c, next, SYSTEM_ACTOR, changes).await?;
    Ok(true)
}

/// `NOT_FOUND` for an alert id (the same whether it is missing or another tenant's).
pub(crate) fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("alert {id} not found"))
}
