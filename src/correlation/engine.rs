//! Placing one validated alert: key hygiene, candidate incidents, then create, join or merge. Runs inside
//! the batch's transaction after the batch's key locks are held, so two alerts that share a key never
//! decide at the same time.

use super::keys::{is_ignored, Key};
use crate::db::models::{Activity, Alert, AlertKey, Evidence, Incident, Tenant};
use crate::db::queries::{activity, alerts as alert_q, correlation as q};
use crate::domain::enums::*;
use crate::error::AppResult;
use crate::events::NewEvent;
use crate::incidents::{self, CORRELATION_ACTOR};
use crate::ingest::validate::PreparedAlert;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A key skipped by hygiene, as stored in `alerts.correlation_skipped`.
#[derive(Debug, Clone, Serialize)]
struct Skipped {
    kind: KeyKind,
    value: String,
    reason: SkipReason,
}

/// What happened to one alert.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The alert.
    pub alert_id: Uuid,
    /// Its incident when it was placed (see `Batch::resolve` for where it ended the batch).
    pub incident_id: Uuid,
    /// Whether the alert was new.
    pub created: bool,
    /// How it got into its incident.
    pub kind: CorrelationKind,
    /// Keys that matched.
    pub matched: Vec<Key>,
    /// Incidents merged into `incident_id` while placing it.
    pub merged: Vec<Uuid>,
}

/// What a batch writes once, at its end: evidence, the activity log, the recomputed incidents and the
/// events. Incidents are recomputed once per batch, not once per alert, so a campaign of thousands of
/// alerts does not re-aggregate its incident for each one.
#[derive(Default)]
pub struct Batch {
    evidence: Vec<Evidence>,
    log: Vec<Activity>,
    events: Vec<NewEvent>,
    /// Incidents the batch touched, as first seen in it, and whether alerts joined or left them.
    touched: BTreeMap<Uuid, (Incident, bool)>,
    /// Incidents merged away in this batch, and where to.
    redirects: BTreeMap<Uuid, Uuid>,
}

impl Batch {
    fn touch(&mut self, incident: &Incident, alerts_moved: bool) {
        let entry = self.touched.entry(incident.id).or_insert_with(|| (incident.clone(), false));
        entry.1 |= alerts_moved;
    }

    /// Where an incident of this batch ended up (following merges made in the batch).
    pub fn resolve(&self, mut id: Uuid) -> Uuid {
        for _ in 0..self.redirects.len() {
            match self.redirects.get(&id) {
                Some(next) => id = *next,
                None => break,
            }
        }
        id
    }

    /// Writes the evidence, recomputes every incident the batch touched (in id order: the batch holds
    /// their row locks already), and writes the activity log and the events, events last.
    pub async fn finish(mut self, conn: &mut crate::db::Conn, tenant_id: &str) -> AppResult<()> {
        if !self.evidence.is_empty() {
            q::insert_evidence(conn, &self.evidence).await?;
        }
        let ids: Vec<Uuid> = self.touched.keys().copied().collect();
        for current in q::lock_incidents(conn, tenant_id, &ids).await? {
            if current.status == IncidentStatus::Redirected {
                continue;
            }
            let Some((before, alerts_moved)) = self.touched.get(&current.id) else { continue };
            let after = incidents::recompute(conn, current, CORRELATION_ACTOR).await?;
            let mut changed = incident_changes(before, &after);
            if *alerts_moved {
                changed.insert(0, "alerts");
            }
            if !changed.is_empty() {
                self.events.push(NewEvent::incident_changed(after.id, CORRELATION_ACTOR, &changed));
            }
        }
        activity::insert(conn, &self.log).await?;
        crate::events::record(conn, tenant_id, &self.events).await?;
        Ok(())
    }
}

/// Places `p` (new or re-sent): writes the alert and its keys now (later alerts of the batch correlate
/// against them) and leaves the rest to `batch`.
pub async fn place(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    p: &PreparedAlert,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Placement> {
    let tid = tenant.id.as_str();
    let existing = alert_q::find_by_provider(conn, tid, &p.service_source, &p.provider_alert_id).await?;
    let alert_id = existing.as_ref().map(|a| a.id).unwrap_or_else(Uuid::now_v7);
    let at = p.activity_at(existing.as_ref().map(|a| a.created_at).unwrap_or(now));

    // Key hygiene: the ignore list, then prevalence inside each key's window.
    let mut skipped = vec![];
    let mut probes = vec![];
    for k in &p.keys {
        if is_ignored(k, &tenant.correlation_ignore) {
            skipped.push(Skipped { kind: k.kind, value: k.value.clone(), reason: SkipReason::IgnoreList });
        } else {
            let hours = if k.kind.is_strong() {
                tenant.strong_key_window_hours
            } else {
                tenant.weak_key_window_hours
            };
            probes.push(q::KeyProbe { kind: k.kind, value: k.value.clone(), hours });
        }
    }
    let max = i64::from(tenant.max_key_prevalence);
    let prevalence = q::key_prevalence(conn, tid, &probes, at, alert_id, max + 1).await?;
    let too_common: BTreeSet<(KeyKind, String)> =
        prevalence.into_iter().filter(|(_, _, n)| *n > max).map(|(k, v, _)| (k, v)).collect();
    probes.retain(|pr| {
        let hit = too_common.contains(&(pr.kind, pr.value.clone()));
        if hit {
            skipped.push(Skipped {
                kind: pr.kind,
                value: pr.value.clone(),
                reason: SkipReason::TooPrevalent,
            });
        }
        !hit
    });

    // Candidate incidents and the keys each shares.
    let rows = q::candidate_matches(conn, tid, &probes, at, alert_id, p.alert_policy.as_deref()).await?;
    let candidates = qualify(rows);

    let mut lock_ids: Vec<Uuid> = candidates.keys().copied().collect();
    if let Some(e) = &existing {
        lock_ids.push(e.incident_id);
    }
    lock_ids.sort();
    lock_ids.dedup();
    let locked: BTreeMap<Uuid, Incident> =
        q::lock_incidents(conn, tid, &lock_ids).await?.into_iter().map(|i| (i.id, i)).collect();
    if let Some(e) = &existing {
        // A person may have moved the alert (manual operations take no key locks) between reading it
        // and locking its incident: then start the batch over rather than update the wrong incident.
        let now_in = alert_q::find(conn, tid, e.id).await?.map(|a| a.incident_id);
        if now_in != Some(e.incident_id) {
            return Err(crate::error::AppError::Transient(format!(
                "alert {} moved while being re-sent",
                e.id
            )));
        }
    }
    let open: Vec<&Incident> =
        candidates.keys().filter_map(|id| locked.get(id)).filter(|i| i.is_open()).collect();

    // Choose the incident the alert lives in.
    let (mut target, kind, matched, created_incident) = match &existing {
        Some(e) => {
            let inc = locked.get(&e.incident_id).cloned().ok_or_else(|| {
                crate::error::AppError::Internal(format!(
                    "incident {} of alert {} is missing",
                    e.incident_id, e.id
                ))
            })?;
            (inc, e.correlation_kind, vec![], false)
        }
        None => match best(&open, &candidates) {
            Some(best) => {
                let keys = candidates.get(&best.id).cloned().unwrap_or_default();
                ((*best).clone(), CorrelationKind::Joined, keys, false)
            }
            None => (new_incident(tid, p, now), CorrelationKind::NewIncident, vec![], true),
        },
    };
    if created_incident {
        q::insert_incident(conn, &target).await?;
    }
    batch.touch(&target, existing.is_none());

    // Write the alert and its keys; its evidence goes in with the batch.
    let row = alert_row(tid, alert_id, target.id, p, at, now, kind, &matched, &skipped, existing.as_ref())?;
    match &existing {
        Some(_) => {
            alert_q::update_from_source(conn, &row).await?;
            q::delete_evidence_and_keys(conn, tid, alert_id).await?;
        }
        None => alert_q::insert(conn, &row).await?,
    }
    let (ev, keys) = evidence_rows(tid, alert_id, p, at, now);
    q::insert_keys(conn, &keys).await?;
    batch.evidence.extend(ev);

    // Merge the other open candidates the rules allow into the target (only while it is open: a re-sent
    // alert of a resolved incident updates in place and never splits or reopens anything).
    let mut merged = vec![];
    if target.is_open() {
        let mut others: Vec<&Incident> = open.iter().copied().filter(|i| i.id != target.id).collect();
        others.sort_by_key(|i| (i.created_at, i.id));
        for other in others {
            if !mergeable(&target, other) {
                continue;
            }
            batch.touch(other, true);
            let shared = candidates.get(&other.id).cloned().unwrap_or_default();
            merge_into(
                conn,
                &mut target,
                other,
                &shared,
                CORRELATION_ACTOR,
                now,
                &mut batch.log,
                &mut batch.events,
            )
            .await?;
            batch.redirects.insert(other.id, target.id);
            merged.push(other.id);
        }
        if !merged.is_empty() {
            batch.touch(&target, true);
            // The owner, classification, determination and tags the target took from the others.
            q::save_merged_fields(conn, &target).await?;
        }
    }

    match &existing {
        None => {
            let how = if created_incident { "created this incident" } else { "joined" };
            let mut message = format!("Alert \"{}\" {how}", p.title);
            if !matched.is_empty() {
                let keys: Vec<String> = matched.iter().map(|k| format!("{} {}", k.kind, k.value)).collect();
                message.push_str(&format!(" (shared keys: {})", keys.join(", ")));
            }
            batch.log.push(entry(tid, Some(target.id), Some(alert_id), "ALERT_CORRELATED", message, now));
            batch.events.push(NewEvent::alert_correlated(
                target.id,
                alert_id,
                CORRELATION_ACTOR,
                kind,
                &matched,
            ));
        }
        Some(e) => {
            let changed = alert_changes(e, &row);
            batch.events.push(NewEvent::alert_changed(target.id, alert_id, CORRELATION_ACTOR, &changed));
        }
    }

    Ok(Placement { alert_id, incident_id: target.id, created: existing.is_none(), kind, matched, merged })
}

/// Groups match rows per incident and keeps the incidents that qualify: a strong key, or a weak key
/// whose alert names the same non-empty policy. Weak keys count as matched once the incident qualifies.
fn qualify(rows: Vec<q::MatchRow>) -> BTreeMap<Uuid, Vec<Key>> {
    #[derive(Default)]
    struct Acc {
        strong: BTreeSet<Key>,
        weak_same: BTreeSet<Key>,
        weak_other: BTreeSet<Key>,
    }
    let mut per: BTreeMap<Uuid, Acc> = BTreeMap::new();
    for r in rows {
        let Ok(kind) = r.kind.parse::<KeyKind>() else { continue };
        let key = Key::new(kind, r.value);
        let acc = per.entry(r.incident_id).or_default();
        if kind.is_strong() {
            acc.strong.insert(key);
        } else if r.same_policy {
            acc.weak_same.insert(key);
        } else {
            acc.weak_other.insert(key);
        }
    }
    per.into_iter()
        .filter(|(_, a)| !a.strong.is_empty() || !a.weak_same.is_empty())
        .map(|(id, a)| {
            let mut keys: BTreeSet<Key> = a.strong;
            keys.extend(a.weak_same);
            if keys.iter().any(|k| k.kind.is_strong()) {
                keys.extend(a.weak_other);
            }
            (id, keys.into_iter().collect())
        })
        .collect()
}

/// The best open candidate: most shared keys, then oldest.
fn best<'a>(open: &[&'a Incident], candidates: &BTreeMap<Uuid, Vec<Key>>) -> Option<&'a Incident> {
    open.iter()
        .copied()
        .min_by_key(|i| (std::cmp::Reverse(candidates.get(&i.id).map_or(0, Vec::len)), i.created_at, i.id))
}

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
    conn: &mut crate::db::Conn,
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
    for a in &moved_ids {
        events.push(NewEvent::alert_correlated(target.id, *a, actor, CorrelationKind::Merged, shared));
    }
    events.push(NewEvent::incident_changed(source.id, actor, &["status", "redirectIncidentId", "alerts"]));
    let moved = moved_ids.len();
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
    let keys: Vec<String> = shared.iter().map(|k| format!("{} {}", k.kind, k.value)).collect();
    log.push(entry_by(
        actor,
        &tid,
        Some(target.id),
        None,
        "MERGED",
        format!(
            "Incident {} merged into this incident ({moved} alerts; shared keys: {})",
            source.id,
            keys.join(", ")
        ),
        now,
    ));
    log.push(entry_by(
        actor,
        &tid,
        Some(source.id),
        None,
        "REDIRECTED",
        format!("Merged into incident {} ({moved} alerts moved)", target.id),
        now,
    ));
    Ok(())
}

/// Names of the incident fields that differ, as GraphQL spells them.
pub(crate) fn incident_changes(a: &Incident, b: &Incident) -> Vec<&'static str> {
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

/// Names of the alert fields a re-send changed.
fn alert_changes(a: &Alert, b: &Alert) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 8] = [
        ("title", a.title != b.title),
        ("description", a.description != b.description),
        ("severity", a.severity != b.severity),
        ("category", a.category != b.category),
        ("mitreTechniques", a.mitre_techniques != b.mitre_techniques),
        ("alertPolicy", a.alert_policy != b.alert_policy),
        ("firstActivityAt", a.first_activity_at != b.first_activity_at),
        ("lastActivityAt", a.last_activity_at != b.last_activity_at),
    ];
    let mut out: Vec<&'static str> = pairs.iter().filter(|(_, d)| *d).map(|(n, _)| *n).collect();
    out.push("evidence");
    out
}

fn new_incident(tid: &str, p: &PreparedAlert, now: DateTime<Utc>) -> Incident {
    Incident {
        tenant_id: tid.to_string(),
        id: Uuid::now_v7(),
        display_name: p.title.clone(),
        display_name_custom: false,
        severity: p.severity,
        severity_custom: false,
        status: IncidentStatus::Active,
        classification: Classification::Unknown,
        determination: Determination::Unknown,
        assigned_to: None,
        custom_tags: vec![],
        system_tags: vec![],
        resolving_comment: None,
        priority_score: 0,
        priority_reasons: vec![],
        alert_count: 0,
        created_at: now,
        last_update_at: now,
        resolved_at: None,
        redirect_incident_id: None,
        last_modified_by: Some(CORRELATION_ACTOR.to_string()),
        version: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn alert_row(
    tid: &str,
    id: Uuid,
    incident_id: Uuid,
    p: &PreparedAlert,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    kind: CorrelationKind,
    matched: &[Key],
    skipped: &[Skipped],
    existing: Option<&Alert>,
) -> AppResult<Alert> {
    let base = Alert {
        tenant_id: tid.to_string(),
        id,
        incident_id,
        provider_alert_id: p.provider_alert_id.clone(),
        service_source: p.service_source.clone(),
        detection_source: p.detection_source.clone(),
        alert_policy: p.alert_policy.clone(),
        title: p.title.clone(),
        description: p.description.clone(),
        severity: p.severity,
        status: AlertStatus::New,
        classification: Classification::Unknown,
        determination: Determination::Unknown,
        assigned_to: None,
        category: p.category.clone(),
        mitre_techniques: p.mitre_techniques.clone(),
        investigation_state: None,
        first_activity_at: p.first_activity_at,
        last_activity_at: p.last_activity_at,
        activity_at: at,
        created_at: now,
        last_update_at: now,
        resolved_at: None,
        correlation_kind: kind,
        correlation_matched: serde_json::to_value(matched)?,
        correlation_skipped: serde_json::to_value(skipped)?,
        correlated_at: now,
    };
    Ok(match existing {
        None => base,
        Some(e) => Alert { created_at: e.created_at, ..base },
    })
}

fn evidence_rows(
    tid: &str,
    alert_id: Uuid,
    p: &PreparedAlert,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<Evidence>, Vec<AlertKey>) {
    let ev = p
        .evidence
        .iter()
        .map(|e| Evidence {
            tenant_id: tid.to_string(),
            id: Uuid::now_v7(),
            alert_id,
            kind: e.kind,
            entity_key: e.entity_key.clone(),
            verdict: e.verdict,
            remediation_status: e.remediation_status,
            roles: e.roles.clone(),
            data: e.data.clone(),
            created_at: now,
        })
        .collect();
    let keys = p
        .keys
        .iter()
        .map(|k| AlertKey {
            tenant_id: tid.to_string(),
            alert_id,
            kind: k.kind,
            value: k.value.clone(),
            activity_at: at,
        })
        .collect();
    (ev, keys)
}

/// An activity-log entry written by the correlation engine.
pub fn entry(
    tid: &str,
    incident_id: Option<Uuid>,
    alert_id: Option<Uuid>,
    kind: &str,
    message: String,
    now: DateTime<Utc>,
) -> Activity {
    entry_by(CORRELATION_ACTOR, tid, incident_id, alert_id, kind, message, now)
}

/// An activity-log entry in `actor`'s name.
pub fn entry_by(
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
