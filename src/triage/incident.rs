//! Incident updates: one or many at once, and custom tags. Changes to the incident cascade to its alerts
//! (owner, resolution).

use super::changes::{Changes, Entry};
use super::input::{self, check_pair, contains_tag, IncidentPatch};
use super::{kind, MAX_BULK, MAX_TAGS};
use crate::auth::Caller;
use crate::db::models::Incident;
use crate::db::queries::{self, triage as q};
use crate::db::Conn;
use crate::domain::enums::{AlertStatus, IncidentStatus};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

/// Applies `patch` to one incident. With `expected_version`, a stale version is `CONFLICT` and nothing
/// changes. An update that changes nothing writes nothing and keeps the version.
pub async fn update_incident(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    patch: IncidentPatch,
    expected_version: Option<i32>,
) -> AppResult<Incident> {
    let patch = patch.validated()?;
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        let cur = q::lock_incident(c, tenant, id).await?.ok_or_else(|| not_found(id))?;
        ensure_not_redirected(&cur)?;
        if let Some(v) = expected_version {
            if v != cur.version {
                return Err(AppError::Conflict(format!(
                    "incident {id} is at version {}, not {v}: it changed meanwhile; reload it and retry",
                    cur.version
                )));
            }
        }
        let mut changes = Changes::new(tenant);
        let next = apply(c, &caller.sub, cur, &patch, &mut changes).await?;
        changes.commit(c).await?;
        Ok(next)
    })
    .await
}

/// Applies `patch` to up to `MAX_BULK` incidents, all or nothing: any failure (an id not found, a pair
/// that does not fit one of them, a redirected one) changes none, and the error names the failing id.
/// Returns the incidents in the order of `ids` (duplicates once).
pub async fn update_incidents(
    conn: &mut Conn,
    caller: &Caller,
    ids: &[Uuid],
    patch: IncidentPatch,
) -> AppResult<Vec<Incident>> {
    if ids.len() > MAX_BULK {
        return Err(AppError::bad(format!("at most {MAX_BULK} incidents at once ({} given)", ids.len())));
    }
    let patch = patch.validated()?;
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let wanted: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        // `lock_incidents` locks in id order, the order every writer of several incidents uses.
        let locked = queries::incidents::lock_incidents(c, tenant, &wanted).await?;
        let found: std::collections::HashSet<Uuid> = locked.iter().map(|i| i.id).collect();
        if let Some(missing) = wanted.iter().find(|id| !found.contains(id)) {
            return Err(AppError::NotFound(format!("incident {missing} not found; nothing was changed")));
        }
        let mut changes = Changes::new(tenant);
        let mut done: HashMap<Uuid, Incident> = HashMap::with_capacity(locked.len());
        for cur in locked {
            let id = cur.id;
            let result = match ensure_not_redirected(&cur) {
                Ok(()) => apply(c, &caller.sub, cur, &patch, &mut changes).await,
                Err(e) => Err(e),
            };
            done.insert(id, result.map_err(|e| about(e, id))?);
        }
        changes.commit(c).await?;
        Ok(wanted.iter().filter_map(|id| done.remove(id)).collect())
    })
    .await
}

/// Adds custom tags (trimmed; ones it already has, ignoring case, are skipped).
pub async fn add_incident_tags(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    tags: &[String],
) -> AppResult<Incident> {
    change_tags(conn, caller, id, tags, true).await
}

/// Removes custom tags (matched ignoring case; ones it does not have are ignored).
pub async fn remove_incident_tags(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    tags: &[String],
) -> AppResult<Incident> {
    change_tags(conn, caller, id, tags, false).await
}

async fn change_tags(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    tags: &[String],
    add: bool,
) -> AppResult<Incident> {
    let tags = input::tags(tags)?;
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        let cur = q::lock_incident(c, tenant, id).await?.ok_or_else(|| not_found(id))?;
        ensure_not_redirected(&cur)?;
        let mut next_tags = cur.custom_tags.clone();
        let touched: Vec<String> = if add {
            let new: Vec<String> = tags.into_iter().filter(|t| !contains_tag(&cur.custom_tags, t)).collect();
            next_tags.extend(new.iter().cloned());
            if next_tags.len() > MAX_TAGS {
                return Err(AppError::bad(format!(
                    "an incident holds at most {MAX_TAGS} tags; this would make {}",
                    next_tags.len()
                )));
            }
            new
        } else {
            let gone: Vec<String> =
                cur.custom_tags.iter().filter(|t| contains_tag(&tags, t)).cloned().collect();
            next_tags.retain(|t| !contains_tag(&tags, t));
            gone
        };
        if touched.is_empty() {
            return Ok(cur);
        }
        let mut changes = Changes::new(tenant);
        let (k, verb) = if add { (kind::TAG_ADDED, "added") } else { (kind::TAG_REMOVED, "removed") };
        let message = format!("Tags {verb}: {}", touched.join(", "));
        changes.push(Entry::incident(id, &caller.sub, k, message).field(
            "customTags",
            json!(cur.custom_tags),
            json!(next_tags),
        ));
        let mut next = cur;
        next.custom_tags = next_tags;
        let next = save(c, next, &caller.sub, &changes).await?;
        changes.commit(c).await?;
        Ok(next)
    })
    .await
}

/// Applies a validated patch to a locked incident, cascades to its alerts, and records the entries.
/// Returns the incident as it now is (unchanged, and nothing written, when the patch changes nothing).
async fn apply(
    c: &mut Conn,
    actor: &str,
    cur: Incident,
    patch: &IncidentPatch,
    changes: &mut Changes,
) -> AppResult<Incident> {
    let now = changes.now;
    let id = cur.id;
    let mut next = cur.clone();
    let mut log: Vec<Entry> = Vec::new();
    let entry = |message: String| Entry::incident(id, actor, kind::UPDATE, message);

    if let Some(s) = patch.status {
        if s != cur.status {
            next.status = s;
            if s == IncidentStatus::Resolved {
                next.resolved_at = Some(now);
            } else if cur.status == IncidentStatus::Resolved {
                next.resolved_at = None;
            }
            log.push(entry(format!("Status changed from {} to {s}", cur.status)).field(
                "status",
                json!(cur.status),
                json!(s),
            ));
        }
    }

    if let Some(wanted) = patch.severity {
        // `None` drops the override: the severity follows the alerts again.
        let (severity, custom) = match wanted {
            Some(s) => (s, true),
            None => (q::max_alert_severity(c, &cur.tenant_id, id).await?.unwrap_or(cur.severity), false),
        };
        if severity != cur.severity || custom != cur.severity_custom {
            next.severity = severity;
            next.severity_custom = custom;
            let how = if custom { "set by hand" } else { "follows the alerts again" };
            log.push(entry(format!("Severity changed from {} to {severity} ({how})", cur.severity)).field(
                "severity",
                json!(cur.severity),
                json!(severity),
            ));
        }
    }

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

    let mut reassigned = false;
    if let Some(owner) = &patch.assigned_to {
        if *owner != cur.assigned_to {
            next.assigned_to = owner.clone();
            reassigned = true;
            log.push(entry(assignment_message(cur.assigned_to.as_deref(), owner.as_deref())).field(
                "assignedTo",
                json!(cur.assigned_to),
                json!(owner),
            ));
        }
    }

    if let Some(name) = &patch.display_name {
        if *name != cur.display_name || !cur.display_name_custom {
            next.display_name = name.clone();
            next.display_name_custom = true;
            log.push(entry(format!("Name changed from {:?} to {name:?}", cur.display_name)).field(
                "displayName",
                json!(cur.display_name),
                json!(name),
            ));
        }
    }

    if let Some(note) = &patch.resolving_comment {
        if *note != cur.resolving_comment {
            next.resolving_comment = note.clone();
            let message = if note.is_some() { "Resolving comment set" } else { "Resolving comment cleared" };
            log.push(entry(message.to_string()).field(
                "resolvingComment",
                json!(cur.resolving_comment),
                json!(note),
            ));
        }
    }

    if log.is_empty() {
        return Ok(cur);
    }

    let resolving = next.status == IncidentStatus::Resolved && cur.status != IncidentStatus::Resolved;
    if reassigned || resolving {
        cascade_to_alerts(c, actor, &next, reassigned, resolving, now, &mut log).await?;
    }

    changes.extend(log);
    save(c, next, actor, changes).await
}

/// Gives the incident's alerts its owner, and resolves its open ones when it was just resolved.
async fn cascade_to_alerts(
    c: &mut Conn,
    actor: &str,
    incident: &Incident,
    reassigned: bool,
    resolving: bool,
    now: DateTime<Utc>,
    log: &mut Vec<Entry>,
) -> AppResult<()> {
    let alerts = q::lock_alerts_of_incident(c, &incident.tenant_id, incident.id).await?;
    if reassigned {
        let owner = incident.assigned_to.as_deref();
        let to_assign: Vec<_> = alerts.iter().filter(|a| a.assigned_to.as_deref() != owner).collect();
        let ids: Vec<Uuid> = to_assign.iter().map(|a| a.id).collect();
        q::assign_alerts(c, &incident.tenant_id, &ids, owner, now).await?;
        for a in to_assign {
            let message =
                format!("{} (with its incident)", assignment_message(a.assigned_to.as_deref(), owner));
            log.push(Entry::alert(a.id, incident.id, actor, kind::ROLLUP, message).field(
                "assignedTo",
                json!(a.assigned_to),
                json!(owner),
            ));
        }
    }
    if resolving {
        let open: Vec<_> = alerts.iter().filter(|a| a.status != AlertStatus::Resolved).collect();
        let ids: Vec<Uuid> = open.iter().map(|a| a.id).collect();
        q::resolve_alerts(c, &incident.tenant_id, &ids, now).await?;
        for a in open {
            let message = format!("Status changed from {} to RESOLVED (its incident was resolved)", a.status);
            log.push(Entry::alert(a.id, incident.id, actor, kind::ROLLUP, message).field(
                "status",
                json!(a.status),
                json!(AlertStatus::Resolved),
            ));
        }
    }
    Ok(())
}

/// Stamps a changed incident (version, time, who) and writes it.
pub(crate) async fn save(
    c: &mut Conn,
    mut next: Incident,
    actor: &str,
    changes: &Changes,
) -> AppResult<Incident> {
    next.version += 1;
    next.last_update_at = changes.now;
    next.last_modified_by = Some(actor.to_string());
    // The priority follows the severity, which triage may change.
    let stats = crate::db::queries::incidents::stats(c, &next.tenant_id, next.id).await?;
    (next.priority_score, next.priority_reasons) = crate::incidents::priority::score(next.severity, &stats);
    q::save_incident(c, &next).await?;
    Ok(next)
}

/// Human text for an owner change.
pub(crate) fn assignment_message(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (_, Some(to)) => format!("Assigned to {to} (was {})", before.unwrap_or("unassigned")),
        (Some(from), None) => format!("Unassigned (was {from})"),
        (None, None) => "Unassigned".to_string(),
    }
}

/// A merged incident is read-only: changes go to the one it was merged into.
pub(crate) fn ensure_not_redirected(i: &Incident) -> AppResult<()> {
    if i.status != IncidentStatus::Redirected {
        return Ok(());
    }
    let target = i.redirect_incident_id.map(|t| t.to_string()).unwrap_or_else(|| "another incident".into());
    Err(AppError::Conflict(format!(
        "incident {} was merged into {target} (see redirectIncidentId) and can no longer be changed; \
         change {target} instead",
        i.id
    )))
}

/// `NOT_FOUND` for an incident id (the same whether it is missing or another tenant's).
pub(crate) fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("incident {id} not found"))
}

/// Names the failing incident of a bulk update in the error, keeping its code.
fn about(e: AppError, id: Uuid) -> AppError {
    let m = |m: String| format!("incident {id}: {m}; nothing was changed");
    match e {
        AppError::NotFound(s) => AppError::NotFound(m(s)),
        AppError::BadInput(s) => AppError::BadInput(m(s)),
        AppError::Conflict(s) => AppError::Conflict(m(s)),
        AppError::Forbidden(s) => AppError::Forbidden(m(s)),
        other => other,
    }
}
