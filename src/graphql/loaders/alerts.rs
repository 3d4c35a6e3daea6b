//! Alerts of an incident: a page, the count, the roll-up and the impacted mailboxes.

use super::{
    counts, distinct_ids, group, lookup, pages, ChildPage, Loaders, Memo, QueueLoader, SetHandle, SetKind,
};
use crate::db::models;
use crate::db::queries::alerts;
use crate::db::queries::queue::TimeKeyset;
use crate::domain::enums::{AlertStatus, Severity};
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

fn register_alert_pages<K>(
    l: &Loaders,
    tenant: &str,
    pages: &HashMap<K, Arc<ChildPage<models::Alert>>>,
) -> Option<SetHandle> {
    Some(l.register_alerts(tenant, pages.values().flat_map(|p| p.rows.iter())))
}

impl Loaders {
    /// DataLoader).
    pub async fn alert_page(
        &self,
        tenant: &str,
        incident: Uuid,
        first: i64,
        after: Option<TimeKeyset>,
    ) -> Result<(Arc<ChildPage<models::Alert>>, Option<SetHandle>), AppError> {
        let (page, set) = match after {
            None => {
                self.load_with_siblings(
                    SetKind::Incident,
                    tenant,
                    lookup(incident),
                    Memo::AlertPages(first),
                    |t, m| Some(AlertPageKey { tenant: t.to_string(), incident: m.id, first, after: None }),
                    |l, pages| register_alert_pages(l, tenant, pages),
                )
                .await?
            }
            Some(_) => {
                let key = AlertPageKey { tenant: tenant.to_string(), incident, first, after };
                let page = self.data.load_one(key).await?;
                let set = page.as_ref().map(|p| self.register_alerts(tenant, p.rows.iter()));
                (page, set)
            }
        };
        Ok((page.unwrap_or_default(), set))
    }

    /// The number of alerts of an incident.
    pub async fn alert_count(&self, tenant: &str, incident: Uuid) -> Result<i64, AppError> {
        let (n, _) = self
            .load_with_siblings(
                SetKind::Incident,
                tenant,
                lookup(incident),
                Memo::AlertCount,
                |t, m| Some(AlertCountKey { tenant: t.to_string(), incident: m.id }),
                |_, _| None,
            )
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// The roll-up of an incident's alerts.
    pub async fn rollup(&self, tenant: &str, incident: Uuid) -> Result<Arc<Rollup>, AppError> {
        let (r, _) = self
            .load_with_siblings(
                SetKind::Incident,
                tenant,
                lookup(incident),
                Memo::Rollup,
                |t, m| Some(RollupKey { tenant: t.to_string(), incident: m.id }),
                |_, _| None,
            )
            .await?;
        Ok(r.unwrap_or_default())
    }

    /// Distinct mailboxes an incident's alerts name.
    pub async fn impacted_mailboxes(&self, tenant: &str, incident: Uuid) -> Result<i64, AppError> {
        let (n, _) = self
            .load_with_siblings(
                SetKind::Incident,
                tenant,
                lookup(incident),
                Memo::Mailboxes,
                |t, m| Some(MailboxCountKey { tenant: t.to_string(), incident: m.id }),
                |_, _| None,
            )
            .await?;
        Ok(n.unwrap_or(0))
    }
}

/// A page of an incident's alerts (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertPageKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
    /// Page size.
    pub first: i64,
    /// Continue after this alert.
    pub after: Option<TimeKeyset>,
}

impl Loader<AlertPageKey> for QueueLoader {
    type Value = Arc<ChildPage<models::Alert>>;
    type Error = AppError;

    async fn load(&self, keys: &[AlertPageKey]) -> Result<HashMap<AlertPageKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, first, after), ks) in group(keys, |k| (k.tenant.clone(), k.first, k.after)) {
            let ids = distinct_ids(&ks, |k| k.incident);
            let rows = alerts::page_by_incidents(&mut conn, &tenant, &ids, after, first + 1).await?;
            out.extend(pages(&ks, |k| k.incident, first, rows, |a| Some(a.incident_id)));
        }
        Ok(out)
    }
}

/// The number of alerts of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
}

impl Loader<AlertCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[AlertCountKey]) -> Result<HashMap<AlertCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows =
                alerts::count_by_incidents(&mut conn, &tenant, &distinct_ids(&ks, |k| k.incident)).await?;
            out.extend(counts(&ks, |k| k.incident, rows));
        }
        Ok(out)
    }
}

/// An incident's alerts counted by status and severity, and the sources they came from.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    /// Alerts per status.
    pub by_status: HashMap<AlertStatus, i64>,
    /// Alerts per severity.
    pub by_severity: HashMap<Severity, i64>,
    /// Distinct service sources, sorted.
    pub service_sources: Vec<String>,
    /// Distinct detection sources, sorted.
    pub detection_sources: Vec<String>,
}

/// The roll-up of an incident's alerts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollupKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
}

impl Loader<RollupKey> for QueueLoader {
    type Value = Arc<Rollup>;
    type Error = AppError;

    async fn load(&self, keys: &[RollupKey]) -> Result<HashMap<RollupKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows =
                alerts::rollup_by_incidents(&mut conn, &tenant, &distinct_ids(&ks, |k| k.incident)).await?;
            let mut per: HashMap<Uuid, (Rollup, BTreeSet<String>, BTreeSet<String>)> = HashMap::new();
            for r in rows {
                let e = per.entry(r.incident_id).or_default();
                *e.0.by_status.entry(r.status).or_default() += r.count;
                *e.0.by_severity.entry(r.severity).or_default() += r.count;
                e.1.insert(r.service_source);
                if let Some(d) = r.detection_source {
                    e.2.insert(d);
                }
            }
            for k in ks {
                let (mut rollup, svc, det) = per.remove(&k.incident).unwrap_or_default();
                rollup.service_sources = svc.into_iter().collect();
                rollup.detection_sources = det.into_iter().collect();
                out.insert(k, Arc::new(rollup));
            }
        }
        Ok(out)
    }
}

/// The number of distinct mailboxes (MAILBOX keys) an incident's alerts name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
}

impl Loader<MailboxCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[MailboxCountKey]) -> Result<HashMap<MailboxCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids = distinct_ids(&ks, |k| k.incident);
            let rows = alerts::impacted_mailboxes_by_incidents(&mut conn, &tenant, &ids).await?;
            out.extend(counts(&ks, |k| k.incident, rows));
        }
        Ok(out)
    }
}
