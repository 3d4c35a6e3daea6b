//! Incident-level rules shared by correlation, triage and manual operations: the generated name, the
//! severity roll-up and the priority score, recomputed from the incident's alerts.

pub mod manual;
pub mod merge;
pub mod naming;
pub mod priority;

use crate::db::models::{Activity, Incident};
use crate::db::queries::incidents as q;
use crate::db::Conn;
use crate::domain::enums::{IncidentStatus, Severity};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Recomputes what an incident derives from its alerts (count, severity unless set by hand, name unless
/// set by hand, priority) and saves it, with the time. `before` is the incident as the caller locked it:
/// the version moves on (in `actor`'s name) only when a field a person sets differs from it, see
/// [`versioned_change`]. The caller holds the incident's row lock. Returns the incident as saved.
pub async fn recompute(
    conn: &mut Conn,
    before: &Incident,
    next: Incident,
    actor: &str,
) -> AppResult<Incident> {
    let stats = q::stats(conn, &next.tenant_id, next.id).await?;
    let mut incident = derive(next, &stats, stamp_now());
    stamp_version(before, &mut incident, actor);
    q::save_derived(conn, &incident).await?;
    Ok(incident)
}

/// `recompute` for several incidents at once, each given as (before, next): one aggregate query and
/// one update for all of them.
pub async fn recompute_many(
    conn: &mut Conn,
    incidents: Vec<(Incident, Incident)>,
    actor: &str,
) -> AppResult<Vec<Incident>> {
    let Some((_, first)) = incidents.first() else { return Ok(vec![]) };
    let tenant_id = first.tenant_id.clone();
    let ids: Vec<_> = incidents.iter().map(|(_, i)| i.id).collect();
    let mut stats: std::collections::HashMap<_, _> =
        q::stats_many(conn, &tenant_id, &ids).await?.into_iter().map(|r| (r.incident_id, r.stats)).collect();
    let now = stamp_now();
    let out: Vec<Incident> = incidents
        .into_iter()
        .map(|(before, next)| {
            let s = stats.remove(&next.id).unwrap_or_else(q::IncidentStats::empty);
            let mut after = derive(next, &s, now);
            stamp_version(&before, &mut after, actor);
            after
        })
        .collect();
    q::save_derived_many(conn, &tenant_id, &out).await?;
    Ok(out)
}

/// Applies the alerts' aggregates to an incident and stamps the time. Derived values never move the
/// version: alerts joining an incident must not make an analyst's pending update (`expectedVersion`)
/// fail.
fn derive(mut incident: Incident, stats: &q::IncidentStats, now: chrono::DateTime<Utc>) -> Incident {
    incident.alert_count = stats.alerts;
    if !incident.severity_custom {
        incident.severity = Severity::from_rank(stats.severity_rank);
    }
    if !incident.display_name_custom {
        incident.display_name = naming::display_name(stats);
    }
    let (score, reasons) = priority::score(incident.severity, stats);
    incident.priority_score = score;
    incident.priority_reasons = reasons;
    incident.last_update_at = now;
    incident
}

/// Now, to the microsecond PostgreSQL keeps, so what a mutation returns equals what a read returns.
fn stamp_now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Moves the version on, in `actor`'s name, when `after` differs from `before` in a field a person sets.
pub fn stamp_version(before: &Incident, after: &mut Incident, actor: &str) {
    if versioned_change(before, after) {
        after.version = before.version + 1;
        after.last_modified_by = Some(actor.to_string());
    }
}

/// Whether a field a person can set differs: status, the severity override, owner, classification,
/// determination, a custom name, tags, the resolving comment. These, and only these, move `version`
/// (whoever changes them: a person, a merge, a status roll-up); what an incident derives from its
/// alerts (count, computed severity and name, priority) moves only `lastUpdateAt`.
pub fn versioned_change(a: &Incident, b: &Incident) -> bool {
    a.status != b.status
        || a.severity_custom != b.severity_custom
        || (b.severity_custom && a.severity != b.severity)
        || a.display_name_custom != b.display_name_custom
        || (b.display_name_custom && a.display_name != b.display_name)
        || a.assigned_to != b.assigned_to
        || a.classification != b.classification
        || a.determination != b.determination
        || a.custom_tags != b.custom_tags
        || a.resolving_comment != b.resolving_comment
}

/// Whether an incident in this status takes new alerts and may be merged.
pub fn is_open(status: IncidentStatus) -> bool {
    matches!(status, IncidentStatus::Active | IncidentStatus::InProgress)
}

/// An activity-log row in `actor`'s name that changes no field (correlation's and manual operations'
/// rows; triage's, which record field changes, are built by `triage::changes`).
pub fn log_entry(
    actor: &str,
    tid: &str,
    incident_id: Option<Uuid>,
    alert_id: Option<Uuid>,
    kind: &str,
    message: String,
    now: DateTime<Utc>,
) -> Activity {
    Activity {
        tenant_id: tid.to_string(),
        id: Uuid::now_v7(),
        incident_id,
        alert_id,
        actor: actor.to_string(),
        kind: kind.to_string(),
        field: None,
        before: None,
        after: None,
        message,
        created_at: now,
    }
}
