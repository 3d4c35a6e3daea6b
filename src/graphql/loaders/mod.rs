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
//!
//! The typed loads and their keys live in one submodule per entity (incidents, alerts, evidence,
//! comments, activity); this module holds the machinery they share.

mod actions;
mod activity;
mod alerts;
mod comments;
mod emails;
mod evidence;
mod incidents;

pub use actions::{
    mask, ActionTargetsKey, EmailActionsKey, IncidentActionsKey, PendingActionCountKey, EMAIL_ACTIONS_CAP,
};
pub use activity::{ActivityCountKey, ActivityPageKey};
pub use alerts::{AlertCountKey, AlertPageKey, MailboxCountKey, Rollup, RollupKey};
pub use comments::{CommentCountKey, CommentPageKey};
pub use emails::{
    AllowBlockEntryKey, EmailAlertsKey, EmailByIdKey, EmailCopyKey, EmailTimelineKey, EMAIL_ALERTS_CAP,
    TIMELINE_CAP,
};
pub use evidence::{
    kind_mask, AlertEvidenceKey, Entity, EntityPage, IncidentEntityCountKey, IncidentEntityPageKey,
};
pub use incidents::IncidentKey;

use crate::db::models;
use crate::db::queries::queue::{Parent, ParentKind, TimeKeyset};
use crate::db::{Pool, PooledConn};
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
    /// Remediation actions, each linking to its incident.
    Action,
    /// Submissions, each linking to the copy it reports.
    SubmissionEmail,
    /// Submissions, each linking to the allow/block entry it created.
    SubmissionEntry,
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
    /// First page (of this size, of these kinds) of each incident's entities.
    IncidentEntities(i64, u64),
    /// Entity count (of these kinds) of each incident.
    IncidentEntityCount(u64),
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
    /// The copy each submission reports.
    SubmissionEmail,
    /// The allow/block entry each submission created.
    SubmissionEntry,
    /// Pending-action count of each incident.
    PendingActions,
    /// Incident of each action.
    ActionIncident,
    /// First page (of this size, of these outcomes as a bit mask) of each action's targets.
    ActionTargets(i64, u32),
    /// First page (of this size, of these statuses as a bit mask) of each incident's actions.
    IncidentActions(i64, u32),
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

    /// An action as a member (linking to its incident).
    pub fn action(row: &models::Action) -> Self {
        Self { id: row.id, link: row.incident_id }
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

    /// Registers a page of submissions as two sibling sets: one linking each to its copy, one to its
    /// entry (a member links to one object).
    pub fn register_submissions(&self, tenant: &str, rows: &[models::Submission]) -> Vec<SetHandle> {
        let by = |link: fn(&models::Submission) -> Option<Uuid>| {
            rows.iter().map(move |r| Member { id: r.id, link: link(r) })
        };
        vec![
            self.register(SetKind::SubmissionEmail, tenant, by(|r| r.email_id)),
            self.register(SetKind::SubmissionEntry, tenant, by(|r| r.allow_block_entry_id)),
        ]
    }

    /// Registers a page of actions as one sibling set.
    pub fn register_actions<'a>(
        &self,
        tenant: &str,
        rows: impl IntoIterator<Item = &'a models::Action>,
    ) -> SetHandle {
        self.register(SetKind::Action, tenant, rows.into_iter().map(Member::action))
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

/// Pages and counts of a parent's children, batched over the parent's siblings.
impl Loaders {
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
