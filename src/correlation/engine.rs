//! Placing validated alerts: key hygiene, candidate incidents, then create, join or merge. A batch's new
//! alerts are written first (`stage`) and the stored alerts sharing their keys read (`preread`), both
//! before the batch's key locks; deciding and recording where each alert goes runs under the locks, so
//! two alerts that share a key never decide at the same time.

use super::keys::is_ignored;
use crate::db::models::{Activity, Alert, AlertKey, Evidence, Incident, Tenant};
use crate::db::queries::{activity, alerts as alert_q, correlation as q, incidents as incident_q};
use crate::domain::activity::{kind, CORRELATION_ACTOR};
use crate::domain::alert::PreparedAlert;
use crate::domain::enums::*;
use crate::domain::fingerprint::fingerprint;
use crate::domain::keys::Key;
use crate::error::{AppError, AppResult};
use crate::events::NewEvent;
use crate::incidents;
use crate::incidents::merge::{absorb, incident_changes, merge_into, mergeable};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
        // As they are now (a merge target took fields from the others), beside how the batch first saw
        // them, which decides whether the version moves.
        let live: Vec<(Incident, Incident)> = incident_q::lock_incidents(conn, tenant_id, &ids)
            .await?
            .into_iter()
            .filter(|i| i.status != IncidentStatus::Redirected)
            .filter_map(|i| self.touched.get(&i.id).map(|(before, _)| (before.clone(), i)))
            .collect();
        for after in incidents::recompute_many(conn, live, CORRELATION_ACTOR).await? {
            let Some((before, alerts_moved)) = self.touched.get(&after.id) else { continue };
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

/// A new alert written before the batch took its key locks: its id, and the id of the incident it creates
/// if nothing correlates (until correlation decides, the row points there).
#[derive(Debug, Clone, Copy)]
pub struct Staged {
    alert_id: Uuid,
    incident_id: Uuid,
}

/// Writes the batch's new alerts, with their evidence and keys, before the batch takes its key locks, so
/// the locked part of ingestion only decides and records where they go. An item is new when it is the
/// first of its providerAlertId in the batch and none is stored; returns, per item, what was staged
/// (`None` for re-sends, which are updated under the locks). Nothing staged is visible to other
/// transactions before commit, and correlation queries skip staged alerts until they are placed.
pub async fn stage(
    conn: &mut crate::db::Conn,
    tenant_id: &str,
    items: &[&PreparedAlert],
    now: DateTime<Utc>,
) -> AppResult<Vec<Option<Staged>>> {
    let mut seen = BTreeSet::new();
    let mut rows = vec![];
    let mut planned: Vec<Option<Staged>> = Vec::with_capacity(items.len());
    for p in items {
        if !seen.insert((&p.service_source, &p.provider_alert_id)) {
            planned.push(None);
            continue;
        }
        let s = Staged { alert_id: Uuid::now_v7(), incident_id: Uuid::now_v7() };
        let kind = CorrelationKind::NewIncident;
        rows.push(alert_row(
            tenant_id,
            s.alert_id,
            s.incident_id,
            p,
            p.activity_at(now),
            now,
            kind,
            &[],
            &[],
            None,
            fingerprint(p),
        )?);
        planned.push(Some(s));
    }
    let inserted: HashSet<Uuid> = alert_q::insert_new(conn, &mut rows).await?.into_iter().collect();
    let mut evidence = vec![];
    let mut keys = vec![];
    let staged: Vec<Option<Staged>> =
        planned.into_iter().map(|s| s.filter(|s| inserted.contains(&s.alert_id))).collect();
    for (p, s) in items.iter().zip(&staged) {
        if let Some(s) = s {
            let (ev, ks) = evidence_rows(tenant_id, s.alert_id, p, p.activity_at(now), now);
            evidence.extend(ev);
            keys.extend(ks);
        }
    }
    q::insert_evidence(conn, &evidence).await?;
    q::insert_keys(conn, &keys).await?;
    Ok(staged)
}

/// Places a batch's alerts (new or re-sent) set-based: one query finds the alerts sent before, one the
/// stored alerts that share any of the batch's keys, one locks the incidents involved; the alerts are then
/// correlated in memory, in order (each one sees the ones before it), and their placement written with one
/// statement per table. `staged` is what `stage` wrote. Items that repeat a providerAlertId start a new
/// round, so a repeat updates what came before.
pub async fn place_all(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    items: &[&PreparedAlert],
    staged: &[Option<Staged>],
    mut preread: Option<Carriers>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Vec<Placement>> {
    let mut out = Vec::with_capacity(items.len());
    let mut start = 0;
    while start < items.len() {
        let mut seen = BTreeSet::new();
        let mut end = start;
        while end < items.len() && seen.insert((&items[end].service_source, &items[end].provider_alert_id)) {
            end += 1;
        }
        // Staged alerts not placed yet (this round's and later ones') are no carriers to correlate with.
        let pending: HashSet<Uuid> = staged[start..].iter().flatten().map(|s| s.alert_id).collect();
        // A pre-read covers the whole batch, which is then a single round.
        let pre = if start == 0 && end == items.len() { preread.take() } else { None };
        let round =
            Round { items: &items[start..end], staged: &staged[start..end], pending: &pending, preread: pre };
        out.extend(place_round(conn, tenant, round, now, batch).await?);
        start = end;
    }
    Ok(out)
}

/// The items of one round, what `stage` wrote for them, the staged alerts not placed yet, and the
/// carriers read before the key locks (for the first round of a batch of new alerts only).
struct Round<'a, 'b> {
    items: &'b [&'a PreparedAlert],
    staged: &'b [Option<Staged>],
    pending: &'b HashSet<Uuid>,
    preread: Option<Carriers>,
}

/// The stored carriers of a round's keys as of one snapshot: the probes that read them, the alerts they
/// leave out (the round's re-sent ones), and the newest event of that snapshot.
pub struct Carriers {
    probes: Vec<q::SpanProbe>,
    exclude: Vec<Uuid>,
    rows: Vec<q::CarrierRow>,
    seq: i64,
}

impl Carriers {
    async fn read(
        conn: &mut crate::db::Conn,
        tenant_id: &str,
        probes: Vec<q::SpanProbe>,
        exclude: Vec<Uuid>,
        cap: i64,
    ) -> AppResult<Self> {
        let (rows, seq) = q::key_carriers(conn, tenant_id, &probes, &exclude, cap).await?;
        Ok(Self { probes, exclude, rows, seq })
    }

    /// Brings the rows up to date. Every change to a carrier that committed since the snapshot (an alert
    /// placed, moved or re-sent) wrote an event naming the alert after the snapshot's newest event, since
    /// events are numbered in commit order; those alerts are read again. Returns whether any was.
    async fn catch_up(&mut self, conn: &mut crate::db::Conn, tenant_id: &str, cap: i64) -> AppResult<bool> {
        let Some((changed, seq)) = q::alerts_named_since(conn, tenant_id, self.seq).await? else {
            // Retention pruned events of the gap (only with a tiny window): read everything again.
            (self.rows, self.seq) =
                q::key_carriers(conn, tenant_id, &self.probes, &self.exclude, cap).await?;
            return Ok(true);
        };
        self.seq = seq;
        let exclude: HashSet<Uuid> = self.exclude.iter().copied().collect();
        let changed: Vec<Uuid> = changed.into_iter().filter(|id| !exclude.contains(id)).collect();
        if changed.is_empty() {
            return Ok(false);
        }
        let changed_set: HashSet<Uuid> = changed.iter().copied().collect();
        self.rows.retain(|r| !changed_set.contains(&r.alert_id));
        self.rows.extend(q::key_carriers_among(conn, tenant_id, &self.probes, &changed).await?);
        Ok(true)
    }
}

/// One probe per key of `items` outside the ignore list, spanning the union of the items' windows
/// (`at(i)`: the activity time of item `i`).
fn span_probes(
    tenant: &Tenant,
    items: &[&PreparedAlert],
    at: impl Fn(usize) -> DateTime<Utc>,
) -> Vec<q::SpanProbe> {
    let mut spans: BTreeMap<&Key, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for (i, p) in items.iter().enumerate() {
        let at = at(i);
        for k in &p.keys {
            if is_ignored(k, &tenant.correlation_ignore) {
                continue;
            }
            let w = window(tenant, k.kind);
            let e = spans.entry(k).or_insert((at - w, at + w));
            e.0 = e.0.min(at - w);
            e.1 = e.1.max(at + w);
        }
    }
    spans
        .into_iter()
        .map(|(k, (lo, hi))| q::SpanProbe { kind: k.kind, value: k.value.clone(), lo, hi })
        .collect()
}

/// How far apart two alerts sharing a key of this kind may be and still correlate.
fn window(tenant: &Tenant, kind: KeyKind) -> chrono::Duration {
    let hours = if kind.is_strong() { tenant.strong_key_window_hours } else { tenant.weak_key_window_hours };
    chrono::Duration::hours(i64::from(hours))
}

/// Batches smaller than this read their carriers under the key locks only.
const PREREAD_MIN_ITEMS: usize = 10;

/// Reads, before the batch takes its key locks, the stored carriers of its keys, so that under the locks
/// only what changed since needs reading. Only for a batch of at least `PREREAD_MIN_ITEMS` whose every
/// item was staged (new, one round); `None` otherwise, and such batches read everything under the locks.
pub async fn preread(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    items: &[&PreparedAlert],
    staged: &[Option<Staged>],
    now: DateTime<Utc>,
) -> AppResult<Option<Carriers>> {
    // A small batch holds its locks briefly anyway; reading twice would only add round trips to it.
    if items.len() < PREREAD_MIN_ITEMS || staged.iter().any(Option::is_none) {
        return Ok(None);
    }
    let probes = span_probes(tenant, items, |i| items[i].activity_at(now));
    let cap = i64::from(tenant.max_key_prevalence) + 1 + i64::try_from(staged.len()).unwrap_or(i64::MAX);
    Ok(Some(Carriers::read(conn, &tenant.id, probes, vec![], cap).await?))
}

/// How often `settle` may find carriers that moved before the round gives up and starts over.
const SETTLE_ROUNDS: usize = 8;

/// Makes sure, once the round holds its incident locks, that every carrier is where the round believes.
/// Manual operations and other batches' merges move alerts between incidents without this round's key
/// locks, so a carrier may have left an incident between being read and the incident being locked; the
/// round would then join the incident on a key it no longer holds. Re-reads the carriers that events
/// committed since the read name, and locks the incidents they moved to, until nothing moved: then
/// nothing can, since every incident holding a carrier is locked, and new carriers need the key locks.
async fn settle(
    conn: &mut crate::db::Conn,
    tid: &str,
    carriers: &mut Carriers,
    incidents: &mut BTreeMap<Uuid, Incident>,
    pending: &HashSet<Uuid>,
    cap: i64,
) -> AppResult<()> {
    if carriers.rows.is_empty() {
        // No stored alert carries a key of the round: none can have moved, and none can appear while the
        // round holds its key locks.
        return Ok(());
    }
    for _ in 0..SETTLE_ROUNDS {
        if !carriers.catch_up(conn, tid, cap).await? {
            return Ok(());
        }
        carriers.rows.retain(|r| !pending.contains(&r.alert_id));
        let mut missing: Vec<Uuid> =
            carriers.rows.iter().map(|r| r.incident_id).filter(|id| !incidents.contains_key(id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        missing.dedup();
        // These locks come after others, out of id order: a deadlock that makes is detected by
        // PostgreSQL and the batch retried.
        incidents
            .extend(incident_q::lock_incidents(conn, tid, &missing).await?.into_iter().map(|i| (i.id, i)));
    }
    Err(AppError::Transient("correlation carriers kept moving while their incidents were locked".into()))
}

/// One stored or in-batch alert carrying a key.
#[derive(Clone)]
struct Carrier {
    alert_id: Uuid,
    at: DateTime<Utc>,
    incident_id: Uuid,
    policy: Option<String>,
}

/// Records `c` as a carrier of every key of `p`, for the alerts after it in the round.
fn carry(carriers: &mut HashMap<Key, Vec<Carrier>>, p: &PreparedAlert, c: Carrier) {
    for k in &p.keys {
        carriers.entry(k.clone()).or_default().push(c.clone());
    }
}

/// A merge decided in memory, written after the new incidents exist.
struct MergeOp {
    source: Incident,
    target: Uuid,
    shared: Vec<Key>,
}

/// An alert decided in memory, written at the end of the round.
struct Decided<'a> {
    /// The item's place in the round.
    index: usize,
    p: &'a PreparedAlert,
    existing: Option<Alert>,
    staged: Option<Staged>,
    alert_id: Uuid,
    at: DateTime<Utc>,
    incident_id: Uuid,
    kind: CorrelationKind,
    matched: Vec<Key>,
    skipped: Vec<Skipped>,
}

async fn place_round(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    round: Round<'_, '_>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Vec<Placement>> {
    let Round { items, staged, pending, preread } = round;
    let tid = tenant.id.as_str();
    let max = i64::from(tenant.max_key_prevalence);

    // Alerts sent before (staged items are new).
    let resent: Vec<&PreparedAlert> =
        items.iter().zip(staged).filter(|(_, s)| s.is_none()).map(|(p, _)| *p).collect();
    let providers: Vec<&str> = resent.iter().map(|p| p.provider_alert_id.as_str()).collect();
    let mut services: Vec<&str> = resent.iter().map(|p| p.service_source.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let mut existing: BTreeMap<(String, String), Alert> = BTreeMap::new();
    for a in alert_q::find_by_providers(conn, tid, &services, &providers).await? {
        existing.insert((a.service_source.clone(), a.provider_alert_id.clone()), a);
    }
    // Each item's stored alert (staged items are new).
    let prior: Vec<Option<&Alert>> = items
        .iter()
        .zip(staged)
        .map(|(p, s)| match s {
            Some(_) => None,
            None => existing.get(&(p.service_source.clone(), p.provider_alert_id.clone())),
        })
        .collect();

    // Stored alerts sharing a key, inside the union of the round's windows; at most max + 1 per key,
    // since a key carried more often than that is too prevalent to correlate anyway.
    let cap = max + 1 + i64::try_from(pending.len()).unwrap_or(i64::MAX);
    let mut stored = match preread {
        // Read for the same items at the same instant: its probes are this round's.
        Some(mut pre) => {
            pre.catch_up(conn, tid, cap).await?;
            pre
        }
        None => {
            let at = |i: usize| items[i].activity_at(prior[i].map_or(now, |a| a.created_at));
            let probes = span_probes(tenant, items, at);
            let exclude: Vec<Uuid> = existing.values().map(|a| a.id).collect();
            Carriers::read(conn, tid, probes, exclude, cap).await?
        }
    };
    stored.rows.retain(|r| !pending.contains(&r.alert_id));

    // Lock every incident involved, in id order, and see them as they are now.
    let mut lock_ids: Vec<Uuid> = stored.rows.iter().map(|r| r.incident_id).collect();
    lock_ids.extend(existing.values().map(|a| a.incident_id));
    lock_ids.sort();
    lock_ids.dedup();
    let mut incidents: BTreeMap<Uuid, Incident> =
        incident_q::lock_incidents(conn, tid, &lock_ids).await?.into_iter().map(|i| (i.id, i)).collect();
    settle(conn, tid, &mut stored, &mut incidents, pending, cap).await?;
    if !existing.is_empty() {
        // A person may have moved a re-sent alert (manual operations take no key locks) between reading
        // it and locking its incident: then start the batch over rather than update the wrong incident.
        let ids: Vec<Uuid> = existing.values().map(|a| a.id).collect();
        let now_in: BTreeMap<Uuid, Uuid> =
            alert_q::incidents_of(conn, tid, &ids).await?.into_iter().collect();
        if existing.values().any(|a| now_in.get(&a.id) != Some(&a.incident_id)) {
            return Err(AppError::Transient("a re-sent alert moved meanwhile".into()));
        }
    }

    let mut carriers: HashMap<Key, Vec<Carrier>> = HashMap::new();
    let mut truncated: HashMap<Key, usize> = HashMap::new();
    for r in stored.rows {
        let Ok(kind) = r.kind.parse::<KeyKind>() else { continue };
        let key = Key::new(kind, r.value);
        *truncated.entry(key.clone()).or_default() += 1;
        carriers.entry(key).or_default().push(Carrier {
            alert_id: r.alert_id,
            at: r.activity_at,
            incident_id: r.incident_id,
            policy: r.alert_policy,
        });
    }
    let truncated: BTreeSet<Key> = truncated
        .into_iter()
        .filter(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX) > max)
        .map(|(k, _)| k)
        .collect();

    // Decide, in order.
    // Fingerprints of the re-sends, to recognise the ones that change nothing.
    let hashes: Vec<Option<String>> =
        items.iter().zip(&prior).map(|(p, e)| e.and_then(|_| fingerprint(p))).collect();
    let mut unchanged: Vec<(usize, Placement)> = vec![];
    let mut created: Vec<Uuid> = vec![];
    let mut merges: Vec<MergeOp> = vec![];
    let mut decided: Vec<Decided> = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let existing = prior[i].cloned();
        let alert_id = match (&existing, staged[i]) {
            (Some(e), _) => e.id,
            (None, Some(s)) => s.alert_id,
            // Not staged, yet not found: the row that blocked staging is gone; start over.
            (None, None) => return Err(AppError::Transient("a re-sent alert vanished".into())),
        };
        let at = p.activity_at(existing.as_ref().map(|a| a.created_at).unwrap_or(now));
        if let Some(e) = existing.as_ref().filter(|e| e.source_hash.is_some() && e.source_hash == hashes[i]) {
            // A re-send that changes nothing (a source retrying) changes nothing: no write, no event, no
            // roll-up, no merge. Later alerts of the round still correlate with it where it is.
            let incident_id = batch.resolve(e.incident_id);
            carry(&mut carriers, p, Carrier { alert_id, at, incident_id, policy: p.alert_policy.clone() });
            unchanged.push((
                i,
                Placement {
                    alert_id,
                    incident_id,
                    created: false,
                    kind: e.correlation_kind,
                    matched: vec![],
                },
            ));
            continue;
        }
        let mut skipped = vec![];
        let mut rows = vec![];
        for k in &p.keys {
            if is_ignored(k, &tenant.correlation_ignore) {
                skipped.push(Skipped {
                    kind: k.kind,
                    value: k.value.clone(),
                    reason: SkipReason::IgnoreList,
                });
                continue;
            }
            let w = window(tenant, k.kind);
            let near: Vec<&Carrier> = carriers
                .get(k)
                .map(|cs| cs.iter().filter(|c| c.alert_id != alert_id && (c.at - at).abs() <= w).collect())
                .unwrap_or_default();
            if truncated.contains(k) || i64::try_from(near.len()).unwrap_or(i64::MAX) > max {
                skipped.push(Skipped {
                    kind: k.kind,
                    value: k.value.clone(),
                    reason: SkipReason::TooPrevalent,
                });
                continue;
            }
            for c in near {
                let incident_id = batch.resolve(c.incident_id);
                if incidents.get(&incident_id).is_some_and(Incident::is_open) {
                    let same_policy =
                        matches!((&c.policy, &p.alert_policy), (Some(a), Some(b)) if !a.is_empty() && a == b);
                    rows.push(MatchRow { incident_id, key: k.clone(), same_policy });
                }
            }
        }
        let candidates = qualify(rows);
        let open: Vec<&Incident> = candidates.keys().filter_map(|id| incidents.get(id)).collect();

        let (mut target, kind, matched) = match &existing {
            Some(e) => {
                let id = batch.resolve(e.incident_id);
                let inc = incidents.get(&id).cloned().ok_or_else(|| {
                    AppError::Internal(format!("incident {id} of alert {} is missing", e.id))
                })?;
                (inc, e.correlation_kind, vec![])
            }
            None => match best(&open, &candidates) {
                Some(best) => {
                    let keys = candidates.get(&best.id).cloned().unwrap_or_default();
                    ((*best).clone(), CorrelationKind::Joined, keys)
                }
                None => {
                    let id = staged[i].map_or_else(Uuid::now_v7, |s| s.incident_id);
                    let inc = new_incident(tid, id, p, now);
                    batch.touch(&inc, true);
                    created.push(inc.id);
                    (inc, CorrelationKind::NewIncident, vec![])
                }
            },
        };
        batch.touch(&target, existing.is_none());

        // Merge the other open candidates the rules allow (only while the target is open: a re-sent
        // alert of a resolved incident updates in place and never splits or reopens anything).
        let mut merged = false;
        if target.is_open() {
            let mut others: Vec<Incident> =
                open.iter().filter(|i| i.id != target.id).map(|i| (*i).clone()).collect();
            others.sort_by_key(|i| (i.created_at, i.id));
            for other in others {
                if !mergeable(&target, &other) {
                    continue;
                }
                batch.touch(&other, true);
                absorb(&mut target, &other);
                let shared = candidates.get(&other.id).cloned().unwrap_or_default();
                if let Some(o) = incidents.get_mut(&other.id) {
                    o.status = IncidentStatus::Redirected;
                }
                batch.redirects.insert(other.id, target.id);
                merges.push(MergeOp { source: other.clone(), target: target.id, shared });
                merged = true;
            }
            if merged {
                batch.touch(&target, true);
            }
        }
        incidents.insert(target.id, target.clone());

        // Later alerts of the round correlate against this one.
        let incident_id = target.id;
        carry(&mut carriers, p, Carrier { alert_id, at, incident_id, policy: p.alert_policy.clone() });
        decided.push(Decided {
            index: i,
            p,
            existing,
            staged: staged[i],
            alert_id,
            at,
            incident_id: target.id,
            kind,
            matched,
            skipped,
        });
    }

    // Write: new incidents; where the staged alerts went (before the merges, which move only alerts stored
    // before this round, as each alert of the round records its own placement); the merges; then re-sends.
    let new_rows: Vec<Incident> = created
        .iter()
        .filter_map(|id| incidents.get(id))
        .map(|i| Incident { status: IncidentStatus::Active, ..i.clone() })
        .collect();
    q::insert_incidents(conn, &new_rows).await?;
    let mut rows = Vec::with_capacity(decided.len());
    for d in &decided {
        let final_incident = batch.resolve(d.incident_id);
        let kind = if final_incident != d.incident_id && d.existing.is_none() {
            CorrelationKind::Merged
        } else {
            d.kind
        };
        rows.push(alert_row(
            tid,
            d.alert_id,
            final_incident,
            d.p,
            d.at,
            now,
            kind,
            &d.matched,
            &d.skipped,
            d.existing.as_ref(),
            // Written for re-sends only (a staged alert's row has it already).
            hashes[d.index].clone(),
        )?);
    }
    let placed: Vec<&Alert> = decided
        .iter()
        .zip(&rows)
        .filter(|(d, row)| d.staged.is_some_and(|s| !as_staged(s, d, row)))
        .map(|(_, row)| row)
        .collect();
    alert_q::set_correlation_many(conn, tid, &placed).await?;
    let mut targets = BTreeSet::new();
    for m in &merges {
        let mut scratch = incidents.get(&m.target).cloned().unwrap_or_else(|| m.source.clone());
        merge_into(
            conn,
            &mut scratch,
            &m.source,
            &m.shared,
            CORRELATION_ACTOR,
            now,
            &mut batch.log,
            &mut batch.events,
        )
        .await?;
        targets.insert(batch.resolve(m.target));
    }
    for id in targets {
        if let Some(t) = incidents.get(&id) {
            // The owner, classification, determination and tags the target took from the others.
            q::save_merged_fields(conn, t).await?;
        }
    }

    let mut keys = vec![];
    let mut placements: Vec<Option<Placement>> = vec![None; items.len()];
    for (i, p) in unchanged {
        placements[i] = Some(p);
    }
    for (d, row) in decided.into_iter().zip(rows) {
        let final_incident = row.incident_id;
        let kind = row.correlation_kind;
        match &d.existing {
            Some(e) => {
                alert_q::update_from_source(conn, &row).await?;
                q::delete_evidence_and_keys(conn, tid, d.alert_id).await?;
                let changed = alert_changes(e, &row);
                batch.events.push(NewEvent::alert_changed(
                    final_incident,
                    d.alert_id,
                    CORRELATION_ACTOR,
                    &changed,
                ));
                let (ev, ks) = evidence_rows(tid, d.alert_id, d.p, d.at, now);
                batch.evidence.extend(ev);
                keys.extend(ks);
            }
            None => {
                let how = match d.kind {
                    CorrelationKind::NewIncident => "created this incident",
                    _ => "joined",
                };
                let mut message = format!("Alert \"{}\" {how}", d.p.title);
                if !d.matched.is_empty() {
                    let ks: Vec<String> =
                        d.matched.iter().map(|k| format!("{} {}", k.kind, k.value)).collect();
                    message.push_str(&format!(" (shared keys: {})", ks.join(", ")));
                }
                batch.log.push(entry(
                    tid,
                    Some(final_incident),
                    Some(d.alert_id),
                    kind::ALERT_CORRELATED,
                    message,
                    now,
                ));
                batch.events.push(NewEvent::alert_correlated(
                    final_incident,
                    d.alert_id,
                    CORRELATION_ACTOR,
                    kind,
                    &d.matched,
                ));
            }
        }
        placements[d.index] = Some(Placement {
            alert_id: d.alert_id,
            incident_id: d.incident_id,
            created: d.existing.is_none(),
            kind,
            matched: d.matched,
        });
    }
    q::insert_keys(conn, &keys).await?;
    // Every item was decided or found unchanged.
    Ok(placements.into_iter().flatten().collect())
}

/// Whether a staged alert ended where `stage` put it: in the incident it created, nothing matched or skipped.
fn as_staged(s: Staged, d: &Decided, row: &Alert) -> bool {
    row.incident_id == s.incident_id
        && row.correlation_kind == CorrelationKind::NewIncident
        && d.matched.is_empty()
        && d.skipped.is_empty()
}

/// A key an open incident shares with the alert being placed.
struct MatchRow {
    incident_id: Uuid,
    key: Key,
    /// Whether the incident's alert carrying the key names the same, non-empty alert policy.
    same_policy: bool,
}

/// Groups match rows per incident and keeps the incidents that qualify: a strong key, or a weak key
/// whose alert names the same non-empty policy. Weak keys count as matched once the incident qualifies.
fn qualify(rows: Vec<MatchRow>) -> BTreeMap<Uuid, Vec<Key>> {
    #[derive(Default)]
    struct Acc {
        strong: BTreeSet<Key>,
        weak_same: BTreeSet<Key>,
        weak_other: BTreeSet<Key>,
    }
    let mut per: BTreeMap<Uuid, Acc> = BTreeMap::new();
    for r in rows {
        let key = r.key;
        let acc = per.entry(r.incident_id).or_default();
        if key.kind.is_strong() {
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

fn new_incident(tid: &str, id: Uuid, p: &PreparedAlert, now: DateTime<Utc>) -> Incident {
    Incident {
        display_name: p.title.clone(),
        severity: p.severity,
        ..Incident::new(tid, id, CORRELATION_ACTOR, now)
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
    source_hash: Option<String>,
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
        mailboxes: p.mailboxes(),
        malicious_evidence: p.malicious_evidence(),
        source_hash,
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
    incidents::log_entry(CORRELATION_ACTOR, tid, incident_id, alert_id, kind, message, now)
}
