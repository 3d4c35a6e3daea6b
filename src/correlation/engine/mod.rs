//! Placing validated alerts: key hygiene, candidate incidents, then create, join or merge. A batch's new
//! alerts are written first (`stage`) and the stored alerts sharing their keys read (`preread`), both
//! before the batch's key locks; deciding and recording where each alert goes runs under the locks, so
//! two alerts that share a key never decide at the same time.
//!
//! A batch is placed in rounds (`place_all`); each round reads what it needs and locks its incidents
//! (`read`), decides in memory (`decide`), then writes (`write`).

mod decide;
mod read;
mod write;

pub use read::{preread, Carriers};

use crate::db::models::{Activity, Evidence, Incident, Tenant};
use crate::db::queries::{activity, alerts as alert_q, correlation as q, incidents as incident_q};
use crate::domain::activity::CORRELATION_ACTOR;
use crate::domain::alert::PreparedAlert;
use crate::domain::enums::{CorrelationKind, IncidentStatus, KeyKind, SkipReason};
use crate::domain::fingerprint::fingerprint;
use crate::domain::keys::Key;
use crate::error::AppResult;
use crate::events::NewEvent;
use crate::incidents;
use crate::incidents::merge::incident_changes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;
use write::{alert_row, evidence_rows};

/// A key skipped by hygiene, as stored in `alerts.correlation_skipped`.
#[derive(Debug, Clone, Serialize)]
struct Skipped {
    kind: KeyKind,
    value: String,
    reason: SkipReason,
}

/// One stored or in-batch alert carrying a key.
#[derive(Clone)]
struct Carrier {
    alert_id: Uuid,
    at: DateTime<Utc>,
    incident_id: Uuid,
    policy: Option<String>,
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

/// Places one round: reads under its locks, decides in memory, writes.
async fn place_round(
    conn: &mut crate::db::Conn,
    tenant: &Tenant,
    round: Round<'_, '_>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Vec<Placement>> {
    let (items, staged) = (round.items, round.staged);
    let snapshot = read::read(conn, tenant, round, now).await?;
    let decision = decide::decide(tenant, items, staged, snapshot, now, batch)?;
    write::write(conn, &tenant.id, items.len(), decision, now, batch).await
}
