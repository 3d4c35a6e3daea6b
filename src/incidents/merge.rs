//! Merging incidents, the rules automatic correlation and an analyst's `mergeIncidents` share: which
//! incidents may merge, what the target takes from a source, how the alerts move, and which fields an
//! event names as changed.

use super::log_entry;
use crate::db::models::{Activity, Incident};
use crate::db::queries::correlation as q;
use crate::db::Conn;
use crate::domain::activity::kind;
use crate::domain::enums::{Classification, CorrelationKind, Determination};
use crate::domain::keys::Key;
use crate::error::AppResult;
use crate::events::NewEvent;
use chrono::{DateTime, Utc};

/// Merge rules: owner, classification and determination equal or empty on either side.
pub fn mergeable(a: &Incident, b: &Incident) -> bool {
    let owner = match (&a.assigned_to, &b.assigned_to) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => true,
    };
    let class = a.classification == b.classification
        || a.classification == Classification::Unknown
        || b.classification == Classification::Unknown;
    let det = a.determination == b.determination
        || a.determination == Determination::Unknown
        || b.determination == Determination::Unknown;
    owner && class && det
}

/// Moves `source`'s alerts and tags into `target` and redirects `source`, in `actor`'s name. `target`
/// takes the non-empty owner, classification and determination.
#[allow(clippy::too_many_arguments)] // the two outputs (log, events) are appended to by every writer
pub async fn merge_into(
    conn: &mut Conn,
    target: &mut Incident,
    source: &Incident,
    shared: &[Key],
    actor: &str,
    now: DateTime<Utc>,
    log: &mut Vec<Activity>,
    events: &mut Vec<NewEvent>,
) -> AppResult<()> {
    let tid = target.tenant_id.clone();
    let matched = serde_json::to_value(shared)?;
    let moved_ids =
        q::move_all_alerts(conn, &tid, source.id, target.id, CorrelationKind::Merged, &matched, now).await?;
    q::redirect_incident(conn, &tid, source.id, target.id, actor, now).await?;
    // Its remediation actions (pending ones included) follow its alerts.
    let moved_actions =
        crate::db::queries::actions::move_to_incident(conn, &tid, source.id, target.id).await?;
    if moved_actions > 0 {
        events.push(NewEvent::incident_changed(target.id, actor, &["actions", "pendingActionCount"]));
    }
    for a in &moved_ids {
        events.push(NewEvent::alert_correlated(target.id, *a, actor, CorrelationKind::Merged, shared));
    }
    events.push(NewEvent::incident_changed(source.id, actor, &["status", "redirectIncidentId", "alerts"]));
    let moved = moved_ids.len();
    absorb(target, source);
    let keys: Vec<String> = shared.iter().map(|k| format!("{} {}", k.kind, k.value)).collect();
    log.push(log_entry(
        actor,
        &tid,
        Some(target.id),
        None,
        kind::MERGED,
        format!(
            "Incident {} merged into this incident ({moved} alerts; shared keys: {})",
            source.id,
            keys.join(", ")
        ),
        now,
    ));
    log.push(log_entry(
        actor,
        &tid,
        Some(source.id),
        None,
        kind::REDIRECTED,
        format!("Merged into incident {} ({moved} alerts moved)", target.id),
        now,
    ));
    Ok(())
}

/// What a merge target takes from a source: the owner, classification and determination it lacks, and
/// the source's tags.
pub fn absorb(target: &mut Incident, source: &Incident) {
    if target.assigned_to.is_none() {
        target.assigned_to = source.assigned_to.clone();
    }
    if target.classification == Classification::Unknown {
        target.classification = source.classification;
    }
    if target.determination == Determination::Unknown {
        target.determination = source.determination;
    }
    for t in &source.custom_tags {
        if !target.custom_tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            target.custom_tags.push(t.clone());
        }
    }
}

/// Names of the incident fields that differ, as GraphQL spells them.
pub fn incident_changes(a: &Incident, b: &Incident) -> Vec<&'static str> {
    let mut out = vec![];
    let pairs: [(&'static str, bool); 9] = [
        ("displayName", a.display_name != b.display_name),
        ("severity", a.severity != b.severity),
        ("status", a.status != b.status),
        ("assignedTo", a.assigned_to != b.assigned_to),
        ("classification", a.classification != b.classification),
        ("determination", a.determination != b.determination),
        ("customTags", a.custom_tags != b.custom_tags),
        ("priorityScore", a.priority_score != b.priority_score),
        ("alertCount", a.alert_count != b.alert_count),
    ];
    for (name, differs) in pairs {
        if differs {
            out.push(name);
        }
    }
    out
}
