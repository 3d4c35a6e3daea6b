//! Manual incident operations (DOMAIN.md "Correlation", issue 3 §4): an analyst creates an incident from
//! chosen alerts, links alerts to an existing incident, or merges up to five incidents. Each takes a
//! comment that lands in the activity log (and as a comment on the incident that receives the alerts).
//!
//! Rules:
//! - alerts move only into an open incident (`ACTIVE` or `IN_PROGRESS`), from any incident (a resolved
//!   one too); alerts already in the target are left alone; moved alerts say `MANUAL`, with
//!   no matched keys (a person, not a key, put them there); alerts moved by a merge say `MERGED`, as in an
//!   automatic merge, since they came with their incident;
//! - every incident touched gets its count, severity (unless set by hand), name (unless set by hand) and
//!   priority recomputed; its version moves only when its status or a field a person sets changes
//! - an incident that loses its last open alert this way becomes `RESOLVED` (the status roll-up); one left
//!   with no alert at all becomes `REDIRECTED` to where its alerts went; a new incident whose alerts are all
//!   resolved starts `RESOLVED`;
//! - merges: 2 to 5 open incidents whose owner, classification and determination are equal or empty; the
//!   target (most alerts, then oldest) is chosen by the system and the others are merged into it with
//!   `super::merge::merge_into`.
//!
//! Each operation is one transaction: it locks every incident involved `FOR UPDATE` in one statement in id
//! order (the order ingestion and triage use), re-checks states after locking, and writes the outbox
//! events last. A collision (deadlock, or an alert moved by a concurrent merge between reading and
//! locking) rolls back and retries on a fresh connection (`db::retry::retry_transient`).

use super::log_entry;
use super::merge::{incident_changes, merge_into, mergeable};
use crate::auth::Caller;
use crate::db::models::{Activity, Alert, Comment, Incident};
use crate::db::queries::{activity, comments, correlation as cq, incidents as iq, manual as q};
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::activity::{comment_excerpt, kind, SYSTEM_ACTOR};
use crate::domain::enums::{AlertStatus, Classification, CorrelationKind, IncidentStatus};
use crate::domain::keys::Key;
use crate::domain::text::{self, MAX_NAME_LEN};
use crate::error::{AppError, AppResult};
use crate::events::{self, NewEvent};
use chrono::{DateTime, SubsecRound, Utc};
use diesel_async::AsyncConnection;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// Most incidents one merge takes (Defender's limit).
pub const MAX_MERGE: usize = 5;
/// Most alerts one `createIncident` or `linkAlertsToIncident` moves.
pub const MAX_ALERTS: usize = 500;
/// Creates an incident holding the alerts `alert_ids` (moved from wherever they are). `display_name`,
/// when given, is kept as a custom name; else the name is generated from the alerts. Returns the new
/// incident.
pub async fn create_incident(
    pool: &Pool,
    caller: &Caller,
    alert_ids: &[Uuid],
    display_name: Option<&str>,
    comment: &str,
) -> AppResult<Incident> {
    let comment = text::comment(comment)?;
    let name = display_name.map(|n| text::field("displayName", n, MAX_NAME_LEN)).transpose()?;
    let ids = alert_list(alert_ids)?;
    retry_transient(pool, "createIncident", async |conn| {
        conn.transaction(async |c| create_tx(c, caller, &ids, name.as_deref(), &comment).await).await
    })
    .await
}

/// Moves the alerts `alert_ids` into the open incident `incident_id` and returns it. Alerts already in
/// it are left alone; when all are, nothing changes.
pub async fn link_alerts(
    pool: &Pool,
    caller: &Caller,
    incident_id: Uuid,
    alert_ids: &[Uuid],
    comment: &str,
) -> AppResult<Incident> {
    let comment = text::comment(comment)?;
    let ids = alert_list(alert_ids)?;
    retry_transient(pool, "linkAlertsToIncident", async |conn| {
        conn.transaction(async |c| link_tx(c, caller, incident_id, &ids, &comment).await).await
    })
    .await
}

/// Merges 2 to `MAX_MERGE` open, mergeable incidents into the one the system picks (most alerts, then
/// oldest) and returns it; the others become `REDIRECTED` to it.
pub async fn merge_incidents(
    pool: &Pool,
    caller: &Caller,
    incident_ids: &[Uuid],
    comment: &str,
) -> AppResult<Incident> {
    let comment = text::comment(comment)?;
    let ids = distinct(incident_ids);
    if ids.len() < 2 {
        return Err(AppError::bad(format!(
            "a merge needs at least 2 different incidents ({} given)",
            ids.len()
        )));
    }
    if ids.len() > MAX_MERGE {
        return Err(AppError::bad(format!(
            "at most {MAX_MERGE} incidents can be merged at once ({} given)",
            ids.len()
        )));
    }
    retry_transient(pool, "mergeIncidents", async |conn| {
        conn.transaction(async |c| merge_tx(c, caller, &ids, &comment).await).await
    })
    .await
}

async fn create_tx(
    c: &mut Conn,
    caller: &Caller,
    ids: &[Uuid],
    name: Option<&str>,
    comment: &str,
) -> AppResult<Incident> {
    let tid = caller.tenant_id.as_str();
    let (sources, alerts) = lock_alerts_and_incidents(c, tid, ids, None).await?;
    let mut op = Op::new(caller, comment);
    let target = new_incident(tid, name, &caller.sub, op.now);
    cq::insert_incident(c, &target).await?;
    move_alerts(c, &mut op, target, true, sources, alerts).await
}

async fn link_tx(
    c: &mut Conn,
    caller: &Caller,
    target_id: Uuid,
    ids: &[Uuid],
    comment: &str,
) -> AppResult<Incident> {
    let tid = caller.tenant_id.as_str();
    let (mut locked, alerts) = lock_alerts_and_incidents(c, tid, ids, Some(target_id)).await?;
    let target = locked.remove(&target_id).ok_or_else(|| incident_not_found(target_id))?;
    ensure_open(&target, "link alerts to it")?;
    let alerts: Vec<Alert> = alerts.into_iter().filter(|a| a.incident_id != target_id).collect();
    if alerts.is_empty() {
        // Every alert is there already: nothing to do, and nothing is written.
        return Ok(target);
    }
    let mut op = Op::new(caller, comment);
    move_alerts(c, &mut op, target, false, locked, alerts).await
}

async fn merge_tx(c: &mut Conn, caller: &Caller, ids: &[Uuid], comment: &str) -> AppResult<Incident> {
    let tid = caller.tenant_id.as_str();
    let locked = iq::lock_incidents(c, tid, ids).await?;
    let found: HashSet<Uuid> = locked.iter().map(|i| i.id).collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(incident_not_found(*missing));
    }
    for i in &locked {
        ensure_open(i, "merge it")?;
    }
    for (n, a) in locked.iter().enumerate() {
        for b in &locked[n + 1..] {
            if !mergeable(a, b) {
                return Err(AppError::Conflict(why_not_mergeable(a, b)));
            }
        }
    }
    // The target keeps the most: most alerts, then the oldest.
    let target_id = locked
        .iter()
        .min_by_key(|i| (std::cmp::Reverse(i.alert_count), i.created_at, i.id))
        .map(|i| i.id)
        .ok_or_else(|| AppError::Internal("merge with no incidents".into()))?;
    let mut sources: Vec<Incident> = vec![];
    let mut target: Option<Incident> = None;
    for i in locked {
        if i.id == target_id {
            target = Some(i);
        } else {
            sources.push(i);
        }
    }
    let mut target = target.ok_or_else(|| AppError::Internal("merge target vanished".into()))?;
    sources.sort_by_key(|i| (i.created_at, i.id));

    let mut op = Op::new(caller, comment);
    let quote = op.quote();
    let before = target.clone();
    let comment_id = op.comment_on(c, target.id).await?;
    let mut alert_events = vec![];
    let mut source_events = vec![];
    for source in &sources {
        let (log_from, events_from) = (op.log.len(), alert_events.len());
        let mut events = vec![];
        merge_into(c, &mut target, source, &[], &caller.sub, op.now, &mut op.log, &mut events).await?;
        let (moved, rest): (Vec<NewEvent>, Vec<NewEvent>) =
            events.into_iter().partition(|e| e.kind == events::EventKind::AlertCorrelated);
        alert_events.extend(moved);
        source_events.extend(rest);
        let n = alert_events.len() - events_from;
        // The analyst's own words replace the engine's "shared keys" messages.
        for row in &mut op.log[log_from..] {
            if row.incident_id == Some(target.id) {
                row.message = format!(
                    "Incident {} ({:?}) merged into this incident by hand by {} ({n} alerts moved). {}",
                    source.id, source.display_name, caller.sub, quote
                );
                row.after = Some(json!({
                    "source": source.id, "alerts": n, "comment": op.comment, "commentId": comment_id
                }));
            } else {
                row.message = format!(
                    "Merged by hand by {} into incident {} ({n} alerts moved); it now redirects there. {}",
                    caller.sub, target.id, quote
                );
                row.after =
                    Some(json!({ "redirectIncidentId": target.id, "alerts": n, "comment": op.comment }));
            }
        }
    }

    let after = super::recompute(c, &before, target, &caller.sub).await?;
    let mut changed = vec!["alerts", "comments"];
    changed.extend(incident_changes(&before, &after));
    op.events.extend(alert_events);
    op.events.extend(source_events);
    op.events.push(NewEvent::incident_changed(after.id, &caller.sub, &changed));
    op.finish(c).await?;
    Ok(after)
}

/// Reads the alerts, locks their incidents (and `extra`) in one statement in id order, then reads the
/// alerts again: if one moved meanwhile to an incident not locked, the transaction is retried.
/// Returns the locked incidents by id and the alerts as they are under the locks.
async fn lock_alerts_and_incidents(
    c: &mut Conn,
    tid: &str,
    ids: &[Uuid],
    extra: Option<Uuid>,
) -> AppResult<(BTreeMap<Uuid, Incident>, Vec<Alert>)> {
    let seen = q::alerts_by_ids(c, tid, ids).await?;
    let mut lock_ids: BTreeSet<Uuid> = seen.iter().map(|a| a.incident_id).collect();
    lock_ids.extend(extra);
    let lock_ids: Vec<Uuid> = lock_ids.into_iter().collect();
    let locked: BTreeMap<Uuid, Incident> =
        iq::lock_incidents(c, tid, &lock_ids).await?.into_iter().map(|i| (i.id, i)).collect();
    if let Some(t) = extra {
        if !locked.contains_key(&t) {
            return Err(incident_not_found(t));
        }
    }
    let alerts = q::alerts_by_ids(c, tid, ids).await?;
    let found: HashSet<Uuid> = alerts.iter().map(|a| a.id).collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(AppError::NotFound(format!("alert {missing} not found; nothing was changed")));
    }
    if let Some(a) = alerts.iter().find(|a| !locked.contains_key(&a.incident_id)) {
        return Err(AppError::Transient(format!(
            "alert {} moved to incident {} while locking",
            a.id, a.incident_id
        )));
    }
    Ok((locked, alerts))
}

/// Moves `alerts` (none already in `target`) into `target`, then brings every incident touched up to date:
/// sources recomputed, rolled up to `RESOLVED` or redirected when emptied; the target recomputed.
async fn move_alerts(
    c: &mut Conn,
    op: &mut Op<'_>,
    target: Incident,
    created: bool,
    sources: BTreeMap<Uuid, Incident>,
    alerts: Vec<Alert>,
) -> AppResult<Incident> {
    let tid = op.caller.tenant_id.clone();
    let actor = op.caller.sub.clone();
    let now = op.now;
    let before = target.clone();
    let ids: Vec<Uuid> = alerts.iter().map(|a| a.id).collect();
    q::move_alerts(c, &tid, &ids, target.id, now).await?;
    let comment_id = op.comment_on(c, target.id).await?;

    let n = alerts.len();
    let (k, message) = if created {
        (
            kind::INCIDENT_CREATED,
            format!("Incident created by hand by {actor} from {n} alert(s). {}", op.quote()),
        )
    } else {
        (
            kind::ALERTS_LINKED,
            format!("{n} alert(s) linked to this incident by hand by {actor}. {}", op.quote()),
        )
    };
    let after = json!({ "alertIds": ids, "comment": op.comment, "commentId": comment_id });
    op.log.push(row(&tid, now, Some(target.id), None, &actor, k, message, Some(after)));
    let none: &[Key] = &[];
    for a in &alerts {
        let message = format!("Alert {:?} moved here by hand from incident {}", a.title, a.incident_id);
        let after = json!({ "from": a.incident_id });
        op.log.push(row(
            &tid,
            now,
            Some(target.id),
            Some(a.id),
            &actor,
            kind::ALERT_CORRELATED,
            message,
            Some(after),
        ));
        op.events.push(NewEvent::alert_correlated(target.id, a.id, &actor, CorrelationKind::Manual, none));
    }

    for (id, source) in sources {
        let gone: Vec<&Alert> = alerts.iter().filter(|a| a.incident_id == id).collect();
        if gone.is_empty() {
            continue;
        }
        leave(c, op, source, &gone, target.id).await?;
    }

    let mut next = target;
    if created {
        let stats = iq::stats(c, &tid, next.id).await?;
        if stats.alerts > 0 && stats.open_alerts == 0 {
            op.log.push(status_rollup(&tid, now, next.id, next.status, "all its alerts are resolved"));
            next.status = IncidentStatus::Resolved;
            next.resolved_at = Some(now);
        }
    }
    let after = super::recompute(c, &before, next, &actor).await?;
    let mut changed = vec!["alerts", "comments"];
    changed.extend(incident_changes(&before, &after));
    op.events.push(NewEvent::incident_changed(after.id, &actor, &changed));
    op.finish(c).await?;
    Ok(after)
}

/// Brings a source incident up to date after `gone` left it for `target`.
async fn leave(
    c: &mut Conn,
    op: &mut Op<'_>,
    source: Incident,
    gone: &[&Alert],
    target: Uuid,
) -> AppResult<()> {
    let tid = op.caller.tenant_id.clone();
    let actor = op.caller.sub.clone();
    let now = op.now;
    let n = gone.len();
    let moved: Vec<Uuid> = gone.iter().map(|a| a.id).collect();
    let stats = iq::stats(c, &tid, source.id).await?;
    if stats.alerts == 0 {
        cq::redirect_incident(c, &tid, source.id, target, &actor, op.now).await?;
        let message = format!(
            "All its alerts ({n}) were moved by hand by {actor} to incident {target}; it now redirects there. {}",
            op.quote()
        );
        let after = json!({ "redirectIncidentId": target, "alertIds": moved, "comment": op.comment });
        op.log.push(row(&tid, now, Some(source.id), None, &actor, kind::REDIRECTED, message, Some(after)));
        op.events.push(NewEvent::incident_changed(
            source.id,
            &actor,
            &["alerts", "status", "redirectIncidentId", "alertCount"],
        ));
        return Ok(());
    }
    let message = format!("{n} alert(s) moved by hand by {actor} to incident {target}. {}", op.quote());
    let after = json!({ "to": target, "alertIds": moved, "comment": op.comment });
    op.log.push(row(&tid, now, Some(source.id), None, &actor, kind::ALERTS_MOVED, message, Some(after)));
    let mut next = source.clone();
    // Roll-ups fire on transitions: losing its last open alert resolves an open incident.
    let took_open = gone.iter().any(|a| a.status != AlertStatus::Resolved);
    if source.is_open() && took_open && stats.open_alerts == 0 {
        op.log.push(status_rollup(
            &tid,
            op.now,
            source.id,
            source.status,
            "all its remaining alerts are resolved",
        ));
        next.status = IncidentStatus::Resolved;
        next.resolved_at = Some(op.now);
    }
    let after = super::recompute(c, &source, next, &actor).await?;
    let mut changed = vec!["alerts"];
    changed.extend(incident_changes(&source, &after));
    op.events.push(NewEvent::incident_changed(source.id, &actor, &changed));
    Ok(())
}

/// What one operation writes besides the rows it changes: activity rows and events, plus its comment.
struct Op<'a> {
    caller: &'a Caller,
    comment: &'a str,
    now: DateTime<Utc>,
    log: Vec<Activity>,
    events: Vec<NewEvent>,
}

impl<'a> Op<'a> {
    fn new(caller: &'a Caller, comment: &'a str) -> Self {
        // PostgreSQL keeps microseconds: truncate so what a mutation returns equals what a read returns.
        let now = Utc::now().trunc_subsecs(6);
        Self { caller, comment, now, log: vec![], events: vec![] }
    }

    /// "Comment: <the first words>".
    fn quote(&self) -> String {
        comment_excerpt(self.comment)
    }

    /// Stores the operation's comment on the incident that receives the alerts; returns its id.
    async fn comment_on(&self, c: &mut Conn, incident_id: Uuid) -> AppResult<Uuid> {
        let row = Comment {
            tenant_id: self.caller.tenant_id.clone(),
            id: Uuid::now_v7(),
            incident_id: Some(incident_id),
            alert_id: None,
            author: self.caller.sub.clone(),
            author_name: Some(self.caller.name.clone()),
            body: self.comment.to_string(),
            created_at: self.now,
        };
        Ok(comments::insert(c, &row).await?.id)
    }

    /// Writes the activity rows, then the events: the last write of the transaction.
    async fn finish(&mut self, c: &mut Conn) -> AppResult<()> {
        activity::insert(c, &self.log).await?;
        events::record(c, &self.caller.tenant_id, &self.events).await?;
        Ok(())
    }
}

/// A row of this operation's log: [`log_entry`] with what the operation adds (`after`).
#[allow(clippy::too_many_arguments)]
fn row(
    tid: &str,
    now: DateTime<Utc>,
    incident_id: Option<Uuid>,
    alert_id: Option<Uuid>,
    actor: &str,
    kind: &str,
    message: String,
    after: Option<Value>,
) -> Activity {
    Activity { after, ..log_entry(actor, tid, incident_id, alert_id, kind, message, now) }
}

/// The system's activity row for a status the alerts decided.
fn status_rollup(
    tid: &str,
    now: DateTime<Utc>,
    incident_id: Uuid,
    from: IncidentStatus,
    why: &str,
) -> Activity {
    let to = IncidentStatus::Resolved;
    let message = format!("Status changed from {from} to {to}: {why}");
    Activity {
        field: Some("status".into()),
        before: Some(json!(from)),
        after: Some(json!(to)),
        ..row(tid, now, Some(incident_id), None, SYSTEM_ACTOR, kind::ROLLUP, message, None)
    }
}

fn new_incident(tid: &str, name: Option<&str>, actor: &str, now: DateTime<Utc>) -> Incident {
    Incident {
        // A generated name is filled in by `recompute` once the alerts are in.
        display_name: name.unwrap_or_default().to_string(),
        display_name_custom: name.is_some(),
        ..Incident::new(tid, Uuid::now_v7(), actor, now)
    }
}

/// `CONFLICT` unless the incident is open; `what` says what was being tried.
fn ensure_open(i: &Incident, what: &str) -> AppResult<()> {
    match i.status {
        IncidentStatus::Active | IncidentStatus::InProgress => Ok(()),
        IncidentStatus::Redirected => {
            let to =
                i.redirect_incident_id.map(|t| t.to_string()).unwrap_or_else(|| "another incident".into());
            Err(AppError::Conflict(format!(
                "incident {} was merged into {to} (status REDIRECTED) and cannot take part any more; \
                 use {to} instead; nothing was changed",
                i.id
            )))
        }
        IncidentStatus::Resolved => Err(AppError::Conflict(format!(
            "incident {} is RESOLVED: reopen it (status ACTIVE) to {what}; nothing was changed",
            i.id
        ))),
    }
}

/// Why `mergeable(a, b)` said no, for the client.
fn why_not_mergeable(a: &Incident, b: &Incident) -> String {
    let rule = "owner, classification and determination must be equal or empty; nothing was changed";
    let (x, y) = (a.id, b.id);
    if let (Some(p), Some(q)) = (&a.assigned_to, &b.assigned_to) {
        if !p.eq_ignore_ascii_case(q) {
            return format!(
                "incidents {x} and {y} cannot be merged: they are assigned to {p} and {q}; {rule}"
            );
        }
    }
    if a.classification != b.classification
        && a.classification != Classification::Unknown
        && b.classification != Classification::Unknown
    {
        return format!(
            "incidents {x} and {y} cannot be merged: they are classified {} and {}; {rule}",
            a.classification, b.classification
        );
    }
    format!(
        "incidents {x} and {y} cannot be merged: their determinations are {} and {}; {rule}",
        a.determination, b.determination
    )
}

fn incident_not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("incident {id} not found; nothing was changed"))
}

/// The ids once each, in the order given.
fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// The alert ids once each: at least one, at most `MAX_ALERTS`.
fn alert_list(ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    let ids = distinct(ids);
    if ids.is_empty() {
        return Err(AppError::bad("alertIds must name at least one alert"));
    }
    if ids.len() > MAX_ALERTS {
        return Err(AppError::bad(format!("at most {MAX_ALERTS} alerts at once ({} given)", ids.len())));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(distinct(&[a, b, a]), vec![a, b]);
        assert!(alert_list(&[]).is_err());
    }
}
