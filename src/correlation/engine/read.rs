//! The read step of a round, under the batch's key locks: the alerts it re-sends, the stored alerts
//! carrying its keys (brought up to date when read before the locks), and the incidents involved,
//! locked in id order and settled, so that no carrier moves while the round decides.

use super::{Carrier, Round, Staged};
use crate::correlation::keys::is_ignored;
use crate::db::models::{Alert, Incident, Tenant};
use crate::db::queries::{alerts as alert_q, correlation as q, incidents as incident_q};
use crate::domain::alert::PreparedAlert;
use crate::domain::enums::KeyKind;
use crate::domain::keys::Key;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// What a round knows once it holds its locks; the decide step needs nothing else.
pub(super) struct Snapshot {
    /// Each item's stored alert: `Some` for a re-send, `None` for a staged (new) item.
    pub(super) prior: Vec<Option<Alert>>,
    /// The incidents involved, locked, as they are now.
    pub(super) incidents: BTreeMap<Uuid, Incident>,
    /// The stored carriers of each of the round's keys.
    pub(super) carriers: HashMap<Key, Vec<Carrier>>,
    /// Keys carried by more stored alerts than the tenant's prevalence limit (their read stopped there).
    pub(super) truncated: BTreeSet<Key>,
}

/// Reads what the round needs and locks the incidents involved. A re-sent alert moved by a person
/// meanwhile, or carriers that keep moving, are `Transient`: the batch starts over.
pub(super) async fn read(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    round: Round<'_, '_>,
    now: DateTime<Utc>,
) -> AppResult<Snapshot> {
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

    let (carriers, truncated) = index_carriers(stored.rows, max);
    let prior: Vec<Option<Alert>> = prior.into_iter().map(Option::<&Alert>::cloned).collect();
    Ok(Snapshot { prior, incidents, carriers, truncated })
}

/// The stored carriers by key, and the keys whose read reached the cap (more than `max` carriers):
/// those are too prevalent to correlate, however many of their carriers fall in an alert's window.
fn index_carriers(rows: Vec<q::CarrierRow>, max: i64) -> (HashMap<Key, Vec<Carrier>>, BTreeSet<Key>) {
    let mut carriers: HashMap<Key, Vec<Carrier>> = HashMap::new();
    let mut truncated: HashMap<Key, usize> = HashMap::new();
    for r in rows {
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
    (carriers, truncated)
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
pub(super) fn window(tenant: &Tenant, kind: KeyKind) -> chrono::Duration {
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
