//! Per-request loaders of the read side, so nested fields cost one statement per level and never one
//! per parent (no N+1).
//!
//! Two layers:
//! - `QueueLoader` is an async-graphql `DataLoader`: one `Loader` impl per key type, each batch queried
//!   per tenant. Every key carries the tenant id, so a loader never crosses tenants.
//! - Sibling sets make the batching deterministic. A DataLoader batches what arrives within a short
//!   time window, so a large page resolved slowly (a busy machine, a debug build) splits into many
//!   batches. Instead, when a list resolver produces a page (incidents, alerts, the alerts of a page of
//!   incidents), it registers the page's ids as a sibling set; the first sibling that asks for a nested
//!   field loads it for all siblings in one `load_many`, and the others await that same result. Objects
//!   that belong to no registered page (a mutation's result, say) fall back to plain DataLoader batching.
//!
//! `PerRequestLoaders`, a schema extension, gives every request its own `Loaders`, so the transports need
//! not know about them.

use crate::db::models;
use crate::db::queries::queue::{Parent, ParentKind, TimeKeyset};
use crate::db::queries::{activity_log, alerts, comments, evidence, incidents};
use crate::db::{Pool, PooledConn};
use crate::domain::enums::{AlertStatus, Severity};
use crate::error::AppError;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::{Context, Request, ServerResult};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// The batch loader: one value implementing `Loader` for every key type below.
pub struct QueueLoader {
    pool: Pool,
}

/// The kind of object a sibling set groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// Incidents.
    Incident,
    /// Alerts.
    Alert,
}

/// What a sibling set has loaded for all its members (one entry per nested field and arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Memo {
    /// First page (of this size) of each incident's alerts.
    AlertPages(i64),
    /// Alert count of each incident.
    AlertCount,
    /// Alert roll-up of each incident.
    Rollup,
    /// Impacted mailboxes of each incident.
    Mailboxes,
    /// Merged evidence rows of each incident.
    IncidentEvidence,
    /// Evidence of each alert.
    AlertEvidence,
    /// First page (of this size) of each parent's comments.
    Comments(i64),
    /// Comment count of each parent.
    CommentCount,
    /// First page (of this size) of each parent's activity.
    Activity(i64),
    /// Activity count of each parent.
    ActivityCount,
    /// Incident of each alert.
    AlertIncident,
    /// Redirect target of each incident.
    RedirectIncident,
}

type Shared = Arc<dyn Any + Send + Sync>;

/// A member of a sibling set: its id, and the one object it points at that nested fields load (an
/// alert's incident, an incident's redirect target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The object's id.
    pub id: Uuid,
    /// The object it points at, if any.
    pub link: Option<Uuid>,
}

impl Member {
    /// An incident as a member (linking to its redirect target).
    pub fn incident(row: &models::Incident) -> Self {
        Self { id: row.id, link: row.redirect_incident_id }
    }

    /// An alert as a member (linking to its incident).
    pub fn alert(row: &models::Alert) -> Self {
        Self { id: row.id, link: Some(row.incident_id) }
    }
}

/// Objects listed together (one page), which load their nested fields together.
pub struct SiblingSet {
    tenant: String,
    members: Vec<Member>,
    memo: Mutex<HashMap<Memo, Arc<OnceCell<Shared>>>>,
}

impl SiblingSet {
    fn new(tenant: &str, members: Vec<Member>) -> Self {
        Self { tenant: tenant.to_string(), members, memo: Mutex::default() }
    }
}

/// A request's loaders: the DataLoader and the registered sibling sets.
///
/// The registry holds sets weakly: whoever lists the objects (a connection, or the memo of the parent
/// set whose nested field produced them) owns the set, so it lives exactly as long as the objects are
/// being resolved. A long-lived request (a subscription resolving one payload per event) therefore
/// never serves one event's nested data to the next.
pub struct Loaders {
    data: DataLoader<QueueLoader>,
    sets: Mutex<HashMap<(String, SetKind, Uuid), Weak<SiblingSet>>>,
}

/// A sibling set's handle; keep it alive while its members resolve.
pub type SetHandle = Arc<SiblingSet>;

/// What a set memoises for one nested field: every member's value, and the set of the objects those
/// values list (kept alive with them).
struct Memoized<K, V> {
    values: HashMap<K, V>,
    child: Option<SetHandle>,
}

fn poisoned() -> AppError {
    AppError::Internal("loader registry lock poisoned".into())
}

impl Loaders {
    /// The DataLoader, for keys that no sibling set covers (a page after a cursor, say).
    pub fn data(&self) -> &DataLoader<QueueLoader> {
        &self.data
    }

    /// Registers `members` (of `tenant`) as one sibling set and returns its handle, which the caller
    /// keeps while the members resolve. Members already in a live set keep theirs.
    pub fn register(
        &self,
        kind: SetKind,
        tenant: &str,
        members: impl IntoIterator<Item = Member>,
    ) -> SetHandle {
        let members: Vec<Member> = members.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        let set = Arc::new(SiblingSet::new(tenant, members));
        if let Ok(mut sets) = self.sets.lock() {
            sets.retain(|_, w| w.strong_count() > 0);
            for m in &set.members {
                let slot = sets.entry((tenant.to_string(), kind, m.id)).or_default();
                if slot.strong_count() == 0 {
                    *slot = Arc::downgrade(&set);
                }
            }
        }
        set
    }

    /// Registers a page of incidents as one sibling set.
    pub fn register_incidents<'a>(
        &self,
        tenant: &str,
        rows: impl IntoIterator<Item = &'a models::Incident>,
    ) -> SetHandle {
        self.register(SetKind::Incident, tenant, rows.into_iter().map(Member::incident))
    }

    /// Registers a page of alerts as one sibling set.
    pub fn register_alerts<'a>(
        &self,
        tenant: &str,
        rows: impl IntoIterator<Item = &'a models::Alert>,
    ) -> SetHandle {
        self.register(SetKind::Alert, tenant, rows.into_iter().map(Member::alert))
    }

    /// The live set holding `me`, or a set of `me` alone.
    fn set_of(&self, kind: SetKind, tenant: &str, me: Member) -> Result<SetHandle, AppError> {
        let sets = self.sets.lock().map_err(|_| poisoned())?;
        Ok(match sets.get(&(tenant.to_string(), kind, me.id)).and_then(Weak::upgrade) {
            Some(s) => s,
            None => Arc::new(SiblingSet::new(tenant, vec![me])),
        })
    }

    /// The value for `me` under `key_of`, loaded together with the same key of every sibling of `me`:
    /// the first sibling to ask runs one `load_many` (and `after_load`, which may register the objects
    /// the values list as a set of their own); the others share the result. `key_of` gives no key for a
    /// member with nothing to load (an incident without redirect target). Also returns the set
    /// `after_load` registered, for the caller to keep.
    pub async fn load_with_siblings<K, V>(
        &self,
        kind: SetKind,
        tenant: &str,
        me: Member,
        memo: Memo,
        key_of: impl Fn(&str, Member) -> Option<K>,
        after_load: impl FnOnce(&Self, &HashMap<K, V>) -> Option<SetHandle>,
    ) -> Result<(Option<V>, Option<SetHandle>), AppError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        V: Send + Sync + Clone + 'static,
        QueueLoader: Loader<K, Value = V, Error = AppError>,
    {
        let Some(own) = key_of(tenant, me) else { return Ok((None, None)) };
        let set = self.set_of(kind, tenant, me)?;
        let cell = {
            let mut cells = set.memo.lock().map_err(|_| poisoned())?;
            cells.entry(memo).or_default().clone()
        };
        let shared = cell
            .get_or_try_init(|| async {
                let keys = set.members.iter().filter_map(|m| key_of(&set.tenant, *m));
                let values = self.data.load_many(keys).await?;
                let child = after_load(self, &values);
                Ok::<Shared, AppError>(Arc::new(Memoized { values, child }))
            })
            .await?;
        let memoized = shared
            .clone()
            .downcast::<Memoized<K, V>>()
            .map_err(|_| AppError::Internal("loader memo holds another type".into()))?;
        Ok((memoized.values.get(&own).cloned(), memoized.child.clone()))
    }
}

fn set_kind(p: ParentKind) -> SetKind {
    match p {
        ParentKind::Incident => SetKind::Incident,
        ParentKind::Alert => SetKind::Alert,
    }
}

fn lookup(id: Uuid) -> Member {
    Member { id, link: None }
}

fn register_alert_pages<K>(
    l: &Loaders,
    tenant: &str,
    pages: &HashMap<K, Arc<ChildPage<models::Alert>>>,
) -> Option<SetHandle> {
    Some(l.register_alerts(tenant, pages.values().flat_map(|p| p.rows.iter())))
}

/// Typed loads the GraphQL types use: each batches over the caller's siblings.
impl Loaders {
    /// The incident of alert `a`.
    pub async fn incident_of_alert(&self, a: &models::Alert) -> Result<Option<models::Incident>, AppError> {
        let tenant = a.tenant_id.as_str();
        self.load_with_siblings(
            SetKind::Alert,
            tenant,
            Member::alert(a),
            Memo::AlertIncident,
            |t, m| m.link.map(|id| IncidentKey { tenant: t.to_string(), id }),
            |l, found: &HashMap<IncidentKey, models::Incident>| {
                Some(l.register_incidents(tenant, found.values()))
            },
        )
        .await
        .map(|(incident, _)| incident)
    }

    /// The incident that incident `i` was merged into, if any.
    pub async fn redirect_target(&self, i: &models::Incident) -> Result<Option<models::Incident>, AppError> {
        let tenant = i.tenant_id.as_str();
        self.load_with_siblings(
            SetKind::Incident,
            tenant,
            Member::incident(i),
            Memo::RedirectIncident,
            |t, m| m.link.map(|id| IncidentKey { tenant: t.to_string(), id }),
            |l, found: &HashMap<IncidentKey, models::Incident>| {
                Some(l.register_incidents(tenant, found.values()))
            },
        )
        .await
        .map(|(incident, _)| incident)
    }

    /// A page of an incident's alerts (oldest first), and the handle of the set its alerts resolve in
    /// (keep it with the page). The first page batches over the incident's siblings, and the alerts of
    /// all those pages form one set; a page after a cursor is the incident's own (through the
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

    /// Evidence rows of all of an incident's alerts.
    pub async fn incident_evidence(
        &self,
        tenant: &str,
        incident: Uuid,
    ) -> Result<Arc<Vec<models::Evidence>>, AppError> {
        let (rows, _) = self
            .load_with_siblings(
                SetKind::Incident,
                tenant,
                lookup(incident),
                Memo::IncidentEvidence,
                |t, m| Some(IncidentEvidenceKey { tenant: t.to_string(), incident: m.id }),
                |_, _| None,
            )
            .await?;
        Ok(rows.unwrap_or_default())
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

    /// A page of a parent's comments (oldest first); the first page batches over the parent's siblings.
    pub async fn comment_page(
        &self,
        tenant: &str,
        parent: Parent,
        first: i64,
        after: Option<TimeKeyset>,
    ) -> Result<Arc<ChildPage<models::Comment>>, AppError> {
        let key =
            |tenant: &str, parent, after| CommentPageKey { tenant: tenant.to_string(), parent, first, after };
        self.child_page(tenant, parent, after, Memo::Comments(first), key).await
    }

    /// The number of a parent's comments.
    pub async fn comment_count(&self, tenant: &str, parent: Parent) -> Result<i64, AppError> {
        let key = |tenant: &str, parent| CommentCountKey { tenant: tenant.to_string(), parent };
        self.child_count(tenant, parent, Memo::CommentCount, key).await
    }

    /// A page of a parent's activity (newest first); the first page batches over the parent's siblings.
    pub async fn activity_page(
        &self,
        tenant: &str,
        parent: Parent,
        first: i64,
        after: Option<TimeKeyset>,
    ) -> Result<Arc<ChildPage<models::Activity>>, AppError> {
        let key = |tenant: &str, parent, after| ActivityPageKey {
            tenant: tenant.to_string(),
            parent,
            first,
            after,
        };
        self.child_page(tenant, parent, after, Memo::Activity(first), key).await
    }

    /// The number of a parent's activity entries.
    pub async fn activity_count(&self, tenant: &str, parent: Parent) -> Result<i64, AppError> {
        let key = |tenant: &str, parent| ActivityCountKey { tenant: tenant.to_string(), parent };
        self.child_count(tenant, parent, Memo::ActivityCount, key).await
    }

    /// A page of a parent's children under `key`: the first page batches over the parent's siblings, a
    /// later one (after a cursor) loads alone.
    async fn child_page<K, T>(
        &self,
        tenant: &str,
        parent: Parent,
        after: Option<TimeKeyset>,
        memo: Memo,
        key: impl Fn(&str, Parent, Option<TimeKeyset>) -> K,
    ) -> Result<Arc<ChildPage<T>>, AppError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        T: Send + Sync + 'static,
        QueueLoader: Loader<K, Value = Arc<ChildPage<T>>, Error = AppError>,
        Arc<ChildPage<T>>: Default,
    {
        let page = match after {
            None => {
                let kind = parent.kind;
                let key_of = |t: &str, m: Member| Some(key(t, Parent { kind, id: m.id }, None));
                self.load_with_siblings(set_kind(kind), tenant, lookup(parent.id), memo, key_of, |_, _| None)
                    .await?
                    .0
            }
            Some(_) => self.data.load_one(key(tenant, parent, after)).await?,
        };
        Ok(page.unwrap_or_default())
    }

    /// The number of a parent's children under `key`, batched over the parent's siblings.
    async fn child_count<K>(
        &self,
        tenant: &str,
        parent: Parent,
        memo: Memo,
        key: impl Fn(&str, Parent) -> K,
    ) -> Result<i64, AppError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        QueueLoader: Loader<K, Value = i64, Error = AppError>,
    {
        let kind = parent.kind;
        let key_of = |t: &str, m: Member| Some(key(t, Parent { kind, id: m.id }));
        let (n, _) = self
            .load_with_siblings(set_kind(kind), tenant, lookup(parent.id), memo, key_of, |_, _| None)
            .await?;
        Ok(n.unwrap_or(0))
    }
}

/// New loaders over `pool`. The DataLoader has no cache on purpose: a mutation's result read later in
/// the same request must not see rows loaded before the change; keys repeated in one batch still load
/// once, and sibling sets share their results.
pub fn new_loaders(pool: Pool) -> Arc<Loaders> {
    Arc::new(Loaders { data: DataLoader::new(QueueLoader { pool }, tokio::spawn), sets: Mutex::default() })
}

/// The request's loaders; when the schema was built without `PerRequestLoaders`, fresh ones (which
/// then batch only within the resolver that asked).
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

/// One page of a parent's children, and whether more follow.
#[derive(Debug, Clone)]
pub struct ChildPage<T> {
    /// The rows of the page, in the list's order.
    pub rows: Vec<T>,
    /// Whether rows follow the page.
    pub has_next: bool,
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
