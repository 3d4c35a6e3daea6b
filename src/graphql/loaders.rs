//! Per-request DataLoaders of the read side, so nested fields cost one statement per level and never one
//! per parent (no N+1). Every key carries the tenant id and every batch is queried per tenant, so a
//! loader can never cross tenants. The loaders are created for each request by `PerRequestLoaders`, a
//! schema extension, so the HTTP and WebSocket transports need not know about them.

use crate::db::models;
use crate::db::queries::queue::{Parent, ParentKind, TimeKeyset};
use crate::db::queries::{activity_log, alerts, comments, evidence, incidents};
use crate::db::{Pool, PooledConn};
use crate::domain::enums::{AlertStatus, Severity};
use crate::error::AppError;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::{Context, Request, ServerResult};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use uuid::Uuid;

/// The batch loader: one value implementing `Loader` for every key type below.
pub struct QueueLoader {
    pool: Pool,
}

/// The request's loaders (one `DataLoader` serves every key type; batches are per key type).
pub type Loaders = DataLoader<QueueLoader>;

/// New loaders over `pool`. Deliberately without a cache: a mutation's result read later in the same
/// request must not see rows cached before the change; keys repeated within one batch are still loaded
/// once.
pub fn new_loaders(pool: Pool) -> Arc<Loaders> {
    Arc::new(DataLoader::new(QueueLoader { pool }, tokio::spawn))
}

/// The request's loaders; when the schema was built without `PerRequestLoaders` (a bare test schema),
/// fresh ones that still batch within the resolver that asked.
pub fn loaders(ctx: &Context<'_>) -> Arc<Loaders> {
    match ctx.data_opt::<Arc<Loaders>>() {
        Some(l) => l.clone(),
        None => new_loaders(crate::graphql::state(ctx).pool.clone()),
    }
}

/// Schema extension that gives each request its own loaders.
pub struct PerRequestLoaders {
    pool: Pool,
}

impl PerRequestLoaders {
    /// Loaders over `pool` for every request.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl ExtensionFactory for PerRequestLoaders {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequestLoadersExt { pool: self.pool.clone() })
    }
}

struct PerRequestLoadersExt {
    pool: Pool,
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequestLoadersExt {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        next.run(ctx, request.data(new_loaders(self.pool.clone()))).await
    }
}

impl<T> Default for ChildPage<T> {
    fn default() -> Self {
        Self { rows: vec![], has_next: false }
    }
}

impl QueueLoader {
    async fn conn(&self) -> Result<PooledConn, AppError> {
        Ok(self.pool.get().await?)
    }
}

/// One page of a parent's children, and whether more follow.
#[derive(Debug, Clone)]
pub struct ChildPage<T> {
    /// The rows of the page, in the list's order.
    pub rows: Vec<T>,
    /// Whether rows follow the page.
    pub has_next: bool,
}

/// Groups keys by a part they share (tenant, page size, cursor), keeping each group's keys.
fn group<K: Clone, G: Ord>(keys: &[K], by: impl Fn(&K) -> G) -> BTreeMap<G, Vec<K>> {
    let mut out: BTreeMap<G, Vec<K>> = BTreeMap::new();
    for k in keys {
        out.entry(by(k)).or_default().push(k.clone());
    }
    out
}

fn distinct_ids<K>(keys: &[K], id: impl Fn(&K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(id).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Splits `rows` (already in list order) per parent and cuts each to `first`, noting whether more follow.
fn pages<T: Clone, K: Hash + Eq + Clone>(
    keys: &[K],
    key_parent: impl Fn(&K) -> Uuid,
    first: i64,
    rows: Vec<T>,
    row_parent: impl Fn(&T) -> Option<Uuid>,
) -> HashMap<K, Arc<ChildPage<T>>> {
    let mut by_parent: HashMap<Uuid, Vec<T>> = HashMap::new();
    for r in rows {
        if let Some(p) = row_parent(&r) {
            by_parent.entry(p).or_default().push(r);
        }
    }
    let first = usize::try_from(first).unwrap_or(0);
    keys.iter()
        .map(|k| {
            let mut rows = by_parent.get(&key_parent(k)).cloned().unwrap_or_default();
            let has_next = rows.len() > first;
            rows.truncate(first);
            (k.clone(), Arc::new(ChildPage { rows, has_next }))
        })
        .collect()
}

/// Counts per parent, with 0 for parents the query did not return.
fn counts<K: Hash + Eq + Clone>(
    keys: &[K],
    id: impl Fn(&K) -> Uuid,
    rows: Vec<(Uuid, i64)>,
) -> HashMap<K, i64> {
    let found: HashMap<Uuid, i64> = rows.into_iter().collect();
    keys.iter().map(|k| (k.clone(), found.get(&id(k)).copied().unwrap_or(0))).collect()
}

// ---------------------------------------------------------------------------------------------------
// Incident by id.

/// An incident by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub id: Uuid,
}

impl Loader<IncidentKey> for QueueLoader {
    type Value = models::Incident;
    type Error = AppError;

    async fn load(&self, keys: &[IncidentKey]) -> Result<HashMap<IncidentKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows = incidents::find_many(&mut conn, &tenant, &distinct_ids(&ks, |k| k.id)).await?;
            for r in rows {
                out.insert(IncidentKey { tenant: tenant.clone(), id: r.id }, r);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------------
// Alerts of an incident: a page, the count, the roll-ups and the impacted mailboxes.

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

// ---------------------------------------------------------------------------------------------------
// Evidence.

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

/// The evidence of every alert of an incident (rows as stored; the type layer merges them by entity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentEvidenceKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub incident: Uuid,
}

impl Loader<IncidentEvidenceKey> for QueueLoader {
    type Value = Arc<Vec<models::Evidence>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[IncidentEvidenceKey],
    ) -> Result<HashMap<IncidentEvidenceKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows = evidence::by_incidents(&mut conn, &tenant, &distinct_ids(&ks, |k| k.incident)).await?;
            let mut per: HashMap<Uuid, Vec<models::Evidence>> = HashMap::new();
            for (incident, r) in rows {
                per.entry(incident).or_default().push(r);
            }
            for k in ks {
                let rows = per.get(&k.incident).cloned().unwrap_or_default();
                out.insert(k, Arc::new(rows));
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------------
// Comments and activity of incidents and alerts.

/// A page of a parent's comments (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentPageKey {
    /// Tenant.
    pub tenant: String,
    /// Incident or alert.
    pub parent: Parent,
    /// Page size.
    pub first: i64,
    /// Continue after this comment.
    pub after: Option<TimeKeyset>,
}

fn comment_parent(kind: ParentKind, c: &models::Comment) -> Option<Uuid> {
    match kind {
        ParentKind::Incident => c.incident_id,
        ParentKind::Alert => c.alert_id,
    }
}

fn activity_parent(kind: ParentKind, a: &models::Activity) -> Option<Uuid> {
    match kind {
        ParentKind::Incident => a.incident_id,
        ParentKind::Alert => a.alert_id,
    }
}

impl Loader<CommentPageKey> for QueueLoader {
    type Value = Arc<ChildPage<models::Comment>>;
    type Error = AppError;

    async fn load(&self, keys: &[CommentPageKey]) -> Result<HashMap<CommentPageKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        let groups = group(keys, |k| (k.tenant.clone(), k.parent.kind, k.first, k.after));
        for ((tenant, kind, first, after), ks) in groups {
            let ids = distinct_ids(&ks, |k| k.parent.id);
            let rows = comments::page_by_parents(&mut conn, &tenant, kind, &ids, after, first + 1).await?;
            out.extend(pages(&ks, |k| k.parent.id, first, rows, |c| comment_parent(kind, c)));
        }
        Ok(out)
    }
}

/// The number of a parent's comments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident or alert.
    pub parent: Parent,
}

impl Loader<CommentCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[CommentCountKey]) -> Result<HashMap<CommentCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, kind), ks) in group(keys, |k| (k.tenant.clone(), k.parent.kind)) {
            let ids = distinct_ids(&ks, |k| k.parent.id);
            let rows = comments::count_by_parents(&mut conn, &tenant, kind, &ids).await?;
            out.extend(counts(&ks, |k| k.parent.id, rows));
        }
        Ok(out)
    }
}

/// A page of a parent's activity log (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivityPageKey {
    /// Tenant.
    pub tenant: String,
    /// Incident or alert.
    pub parent: Parent,
    /// Page size.
    pub first: i64,
    /// Continue after (i.e. before in time) this entry.
    pub after: Option<TimeKeyset>,
}

impl Loader<ActivityPageKey> for QueueLoader {
    type Value = Arc<ChildPage<models::Activity>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ActivityPageKey],
    ) -> Result<HashMap<ActivityPageKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        let groups = group(keys, |k| (k.tenant.clone(), k.parent.kind, k.first, k.after));
        for ((tenant, kind, first, after), ks) in groups {
            let ids = distinct_ids(&ks, |k| k.parent.id);
            let rows =
                activity_log::page_by_parents(&mut conn, &tenant, kind, &ids, after, first + 1).await?;
            out.extend(pages(&ks, |k| k.parent.id, first, rows, |a| activity_parent(kind, a)));
        }
        Ok(out)
    }
}

/// The number of a parent's activity entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivityCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident or alert.
    pub parent: Parent,
}

impl Loader<ActivityCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[ActivityCountKey]) -> Result<HashMap<ActivityCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, kind), ks) in group(keys, |k| (k.tenant.clone(), k.parent.kind)) {
            let ids = distinct_ids(&ks, |k| k.parent.id);
            let rows = activity_log::count_by_parents(&mut conn, &tenant, kind, &ids).await?;
            out.extend(counts(&ks, |k| k.parent.id, rows));
        }
        Ok(out)
    }
}
