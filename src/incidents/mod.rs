//! Incident-level rules shared by correlation, triage and manual operations: the generated name, the
//! severity roll-up and the priority score, recomputed from the incident's alerts.

pub mod manual;
pub mod naming;
pub mod priority;

use crate::db::models::Incident;
use crate::db::queries::incidents as q;
use crate::db::Conn;
use crate::domain::enums::{IncidentStatus, Severity};
use crate::error::AppResult;
use chrono::Utc;

/// Recomputes what an incident derives from its alerts (count, severity unless set by hand, name unless
/// set by hand, priority), stamps `actor` and the time, bumps the version, and saves it. The caller holds
/// the incident's row lock. Returns the incident as saved.
pub async fn recompute(conn: &mut Conn, incident: Incident, actor: &str) -> AppResult<Incident> {
    let stats = q::stats(conn, &incident.tenant_id, incident.id).await?;
    let incident = derive(incident, &stats, actor, Utc::now());
    q::save_derived(conn, &incident).await?;
    Ok(incident)
}

/// `recompute` for several incidents at once: one aggregate query and one update for all of them.
pub async fn recompute_many(
    conn: &mut Conn,
    incidents: Vec<Incident>,
    actor: &str,
) -> AppResult<Vec<Incident>> {
    let Some(first) = incidents.first() else { return Ok(vec![]) };
    let tenant_id = first.tenant_id.clone();
    let ids: Vec<_> = incidents.iter().map(|i| i.id).collect();
    let mut stats: std::collections::HashMap<_, _> =
        q::stats_many(conn, &tenant_id, &ids).await?.into_iter().map(|r| (r.incident_id, r.stats)).collect();
    let now = Utc::now();
    let out: Vec<Incident> = incidents
        .into_iter()
        .map(|i| {
            let s = stats.remove(&i.id).unwrap_or_else(q::IncidentStats::empty);
            derive(i, &s, actor, now)
        })
        .collect();
    q::save_derived_many(conn, &tenant_id, &out).await?;
    Ok(out)
}

/// Applies the alerts' aggregates to an incident, stamps it and moves its version on.
fn derive(
    mut incident: Incident,
    stats: &q::IncidentStats,
    actor: &str,
    now: chrono::DateTime<Utc>,
) -> Incident {
    incident.alert_count = stats.alerts;
    if !incident.severity_custom {
        incident.severity = severity_from_rank(stats.severity_rank);
    }
    if !incident.display_name_custom {
        incident.display_name = naming::display_name(stats);
    }
    let (score, reasons) = priority::score(incident.severity, stats);
    incident.priority_score = score;
    incident.priority_reasons = reasons;
    incident.last_update_at = now;
    incident.last_modified_by = Some(actor.to_string());
    incident.version += 1;
    incident
}

/// Whether an incident in this status takes new alerts and may be merged.
pub fn is_open(status: IncidentStatus) -> bool {
    matches!(status, IncidentStatus::Active | IncidentStatus::InProgress)
}

fn severity_from_rank(rank: i32) -> Severity {
    match rank {
        4 => Severity::High,
        3 => Severity::Medium,
        2 => Severity::Low,
        1 => Severity::Informational,
        _ => Severity::Unknown,
    }
}

/// The actor name the system uses in the activity log and `lastModifiedBy`.
pub const CORRELATION_ACTOR: &str = "Parapet correlation";
