//! The decide step of a round, in memory: for each item in order, key hygiene, the open incidents that
//! qualify, the one it joins (or a new one) and the others it merges, each item seeing the ones before
//! it. Nothing is written here.

use super::read::{window, Snapshot};
use super::{Batch, Carrier, Placement, Skipped, Staged};
use crate::correlation::keys::is_ignored;
use crate::db::models::{Alert, Incident, Tenant};
use crate::domain::activity::CORRELATION_ACTOR;
use crate::domain::alert::PreparedAlert;
use crate::domain::enums::{CorrelationKind, IncidentStatus, SkipReason};
use crate::domain::fingerprint::fingerprint;
use crate::domain::keys::Key;
use crate::error::{AppError, AppResult};
use crate::incidents::merge::{absorb, mergeable};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// What the round decided, for the write step.
pub(super) struct Decision<'a> {
    /// Re-sends that change nothing, with their place in the round: nothing of them is written.
    pub(super) unchanged: Vec<(usize, Placement)>,
    /// The incidents the round creates.
    pub(super) created: Vec<Uuid>,
    /// The merges, written once the new incidents exist.
    pub(super) merges: Vec<MergeOp>,
    /// Every other item, decided.
    pub(super) decided: Vec<Decided<'a>>,
    /// Each item's fingerprint (re-sends only), stored with it.
    pub(super) hashes: Vec<Option<String>>,
    /// The incidents as decided: new ones, targets with what they absorbed, merged ones redirected.
    pub(super) incidents: BTreeMap<Uuid, Incident>,
}

/// A merge decided in memory, written after the new incidents exist.
pub(super) struct MergeOp {
    pub(super) source: Incident,
    pub(super) target: Uuid,
    pub(super) shared: Vec<Key>,
}

/// An alert decided in memory, written at the end of the round.
pub(super) struct Decided<'a> {
    /// The item's place in the round.
    pub(super) index: usize,
    pub(super) p: &'a PreparedAlert,
    pub(super) existing: Option<Alert>,
    pub(super) staged: Option<Staged>,
    pub(super) alert_id: Uuid,
    pub(super) at: DateTime<Utc>,
    pub(super) incident_id: Uuid,
    pub(super) kind: CorrelationKind,
    pub(super) matched: Vec<Key>,
    pub(super) skipped: Vec<Skipped>,
}

/// Decides where each item of the round goes, in order, from what the read step found.
pub(super) fn decide<'a>(
    tenant: &Tenant,
    items: &'a [&'a PreparedAlert],
    staged: &[Option<Staged>],
    snapshot: Snapshot,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Decision<'a>> {
    let Snapshot { prior, mut incidents, mut carriers, truncated } = snapshot;
    let tid = tenant.id.as_str();
    let max = i64::from(tenant.max_key_prevalence);

    // Fingerprints of the re-sends, to recognise the ones that change nothing.
    let hashes: Vec<Option<String>> =
        items.iter().zip(&prior).map(|(p, e)| e.as_ref().and_then(|_| fingerprint(p))).collect();
    let mut unchanged: Vec<(usize, Placement)> = vec![];
    let mut created: Vec<Uuid> = vec![];
    let mut merges: Vec<MergeOp> = vec![];
    let mut decided: Vec<Decided> = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let existing = prior[i].clone();
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
    Ok(Decision { unchanged, created, merges, decided, hashes, incidents })
}

/// Records `c` as a carrier of every key of `p`, for the alerts after it in the round.
fn carry(carriers: &mut HashMap<Key, Vec<Carrier>>, p: &PreparedAlert, c: Carrier) {
    for k in &p.keys {
        carriers.entry(k.clone()).or_default().push(c.clone());
    }
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

fn new_incident(tid: &str, id: Uuid, p: &PreparedAlert, now: DateTime<Utc>) -> Incident {
    Incident {
        display_name: p.title.clone(),
        severity: p.severity,
        ..Incident::new(tid, id, CORRELATION_ACTOR, now)
    }
}
