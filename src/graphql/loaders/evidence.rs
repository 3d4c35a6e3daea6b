//! Evidence: an alert's rows, and an incident's entities (its alerts' rows merged by entity) a page at a time.

use super::{counts, distinct_ids, group, lookup, Loaders, Memo, QueueLoader, SetKind};
use crate::db::models;
use crate::db::queries::evidence;
use crate::db::queries::queue::TimeKeyset;
use crate::domain::enums::EvidenceKind;
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

impl Loaders {
    /// A page of an incident's entities (its alerts' evidence merged by entity, in order of first
    /// appearance), of the kinds in `kinds` (a [`kind_mask`]; 0 for all). The first page batches over
    /// the incident's siblings; a page after a cursor loads alone.
    pub async fn entity_page(
        &self,
        tenant: &str,
        incident: Uuid,
        kinds: u64,
        first: i64,
        after: Option<TimeKeyset>,
    ) -> Result<Arc<EntityPage>, AppError> {
        let key = |t: &str, incident| IncidentEntityPageKey {
            tenant: t.to_string(),
            incident,
            kinds,
            first,
            after,
        };
        let page = match after {
            None => {
                self.load_with_siblings(
                    SetKind::Incident,
                    tenant,
                    lookup(incident),
                    Memo::IncidentEntities(first, kinds),
                    |t, m| Some(key(t, m.id)),
                    |_, _| None,
                )
                .await?
                .0
            }
            Some(_) => self.data().load_one(key(tenant, incident)).await?,
        };
        Ok(page.unwrap_or_default())
    }

    /// The number of an incident's entities of the kinds in `kinds` (0 for all).
    pub async fn entity_count(&self, tenant: &str, incident: Uuid, kinds: u64) -> Result<i64, AppError> {
        let (n, _) = self
            .load_with_siblings(
                SetKind::Incident,
                tenant,
                lookup(incident),
                Memo::IncidentEntityCount(kinds),
                |t, m| Some(IncidentEntityCountKey { tenant: t.to_string(), incident: m.id, kinds }),
                |_, _| None,
            )
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Evidence rows of an alert.
    pub async fn alert_evidence(
        &self,
        tenant: &str,
        alert: Uuid,
    ) -> Result<Arc<Vec<models::Evidence>>, AppError> {
        let (rows, _) = self
            .load_with_siblings(
                SetKind::Alert,
                tenant,
                lookup(alert),
                Memo::AlertEvidence,
                |t, m| Some(AlertEvidenceKey { tenant: t.to_string(), alert: m.id }),
                |_, _| None,
            )
            .await?;
        Ok(rows.unwrap_or_default())
    }
}

/// The evidence of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertEvidenceKey {
    /// Tenant.
    pub tenant: String,
    /// Alert id.
    pub alert: Uuid,
}

impl Loader<AlertEvidenceKey> for QueueLoader {
    type Value = Arc<Vec<models::Evidence>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[AlertEvidenceKey],
    ) -> Result<HashMap<AlertEvidenceKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows = evidence::by_alerts(&mut conn, &tenant, &distinct_ids(&ks, |k| k.alert)).await?;
            let mut per: HashMap<Uuid, Vec<models::Evidence>> = HashMap::new();
            for r in rows {
                per.entry(r.alert_id).or_default().push(r);
            }
            for k in ks {
                let rows = per.get(&k.alert).cloned().unwrap_or_default();
                out.insert(k, Arc::new(rows));
            }
        }
        Ok(out)
    }
}

/// Evidence kinds as a bit set (bit `i`: `EvidenceKind::ALL[i]`), so a page's kind filter can be part
/// of a copyable memo key; none given is 0, meaning every kind.
pub fn kind_mask(kinds: &[EvidenceKind]) -> u64 {
    EvidenceKind::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| kinds.contains(k))
        .fold(0, |mask, (i, _)| mask | (1u64 << i))
}

/// The stored spellings of the kinds in `mask` (empty for 0: every kind).
fn kinds_of(mask: u64) -> Vec<&'static str> {
    EvidenceKind::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, k)| k.as_str())
        .collect()
}

/// One entity of an incident: the sums over every row naming it, and its latest row.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Verdicts, roles and alerts of all its rows.
    pub summary: evidence::EntitySummary,
    /// Its latest row (data and remediation state).
    pub latest: models::Evidence,
}

/// A page of an incident's entities, and whether more follow.
#[derive(Debug, Clone, Default)]
pub struct EntityPage {
    /// The page, in order of first appearance.
    pub entities: Vec<Entity>,
    /// Whether entities follow the page.
    pub has_next: bool,
}

/// A page of an incident's entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentEntityPageKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
    /// Kinds ([`kind_mask`]; 0 for all).
    pub kinds: u64,
    /// Page size.
    pub first: i64,
    /// Continue after this entity (its first row's time and id).
    pub after: Option<TimeKeyset>,
}

impl Loader<IncidentEntityPageKey> for QueueLoader {
    type Value = Arc<EntityPage>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[IncidentEntityPageKey],
    ) -> Result<HashMap<IncidentEntityPageKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, kinds, first, after), ks) in
            group(keys, |k| (k.tenant.clone(), k.kinds, k.first, k.after))
        {
            let ids = distinct_ids(&ks, |k| k.incident);
            let summaries =
                evidence::entities_by_incidents(&mut conn, &tenant, &ids, &kinds_of(kinds), after, first + 1)
                    .await?;
            let wanted: Vec<(Uuid, String)> =
                summaries.iter().map(|s| (s.incident_id, s.entity_key.clone())).collect();
            let mut latest: HashMap<(Uuid, String), models::Evidence> =
                evidence::latest_of_entities(&mut conn, &tenant, &wanted)
                    .await?
                    .into_iter()
                    .map(|(incident, row)| ((incident, row.entity_key.clone()), row))
                    .collect();
            let mut per: HashMap<Uuid, Vec<Entity>> = HashMap::new();
            for summary in summaries {
                // A row deleted between the two reads leaves its entity out rather than half-filled.
                if let Some(row) = latest.remove(&(summary.incident_id, summary.entity_key.clone())) {
                    per.entry(summary.incident_id).or_default().push(Entity { summary, latest: row });
                }
            }
            let limit = usize::try_from(first).unwrap_or(0);
            for k in ks {
                let mut entities = per.remove(&k.incident).unwrap_or_default();
                let has_next = entities.len() > limit;
                entities.truncate(limit);
                out.insert(k, Arc::new(EntityPage { entities, has_next }));
            }
        }
        Ok(out)
    }
}

/// The number of an incident's entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentEntityCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
    /// Kinds ([`kind_mask`]; 0 for all).
    pub kinds: u64,
}

impl Loader<IncidentEntityCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[IncidentEntityCountKey],
    ) -> Result<HashMap<IncidentEntityCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, kinds), ks) in group(keys, |k| (k.tenant.clone(), k.kinds)) {
            let ids = distinct_ids(&ks, |k| k.incident);
            let rows =
                evidence::entity_counts_by_incidents(&mut conn, &tenant, &ids, &kinds_of(kinds)).await?;
            out.extend(counts(&ks, |k| k.incident, rows));
        }
        Ok(out)
    }
}
