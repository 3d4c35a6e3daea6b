//! Relay connections (`edges { cursor node }`, `nodes`, `pageInfo`, `totalCount`) for the queues and the
//! nested lists, their opaque cursors, and the page-size rule.
//!
//! A cursor is base64url of a small JSON object naming the list and ordering it belongs to, the row's
//! sort key and its id, so keyset pagination stays stable while rows are added. A cursor from another
//! list or ordering, or one that does not decode, is `BAD_USER_INPUT`.

use crate::db::queries::queue::{Keyset, Parent, TimeKeyset};
use crate::db::queries::{alerts, incidents};
use crate::error::{AppError, AppResult, GqlResult};
use crate::graphql::loaders::{self, SetHandle};
use crate::graphql::types::allowblock::AllowBlockEntry;
use crate::graphql::types::audit::AuditEntry;
use crate::graphql::types::evidence::{from_entity, Evidence};
use crate::graphql::types::{activity::ActivityEntry, alert::Alert, comment::Comment, incident::Incident};
use async_graphql::connection::{CursorType, OpaqueCursor};
use async_graphql::{Context, Object, SimpleObject};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 100;
/// Page size of the queues when `first` is not given.
pub const DEFAULT_PAGE: i64 = 20;
/// Page size of nested lists (an incident's alerts, comments, activity) when `first` is not given.
pub const DEFAULT_NESTED_PAGE: i64 = 50;
/// Longest cursor accepted (real ones are far shorter).
const MAX_CURSOR_LEN: usize = 512;

/// The page size: `first`, else `default`; negative or above `MAX_PAGE` is `BAD_USER_INPUT` (not clamped).
pub fn page_size(first: Option<i32>, default: i64) -> AppResult<i64> {
    page_size_within(first, default, MAX_PAGE)
}

/// A list's item count: `first`, else `default`; negative or above `max` is `BAD_USER_INPUT` (not
/// clamped). [`page_size`] is this with the connections' cap.
pub fn page_size_within(first: Option<i32>, default: i64, max: i64) -> AppResult<i64> {
    match first.map(i64::from) {
        None => Ok(default),
        Some(n) if n < 0 => Err(AppError::bad(format!("first must not be negative, got {n}"))),
        Some(n) if n > max => Err(AppError::bad(format!("first may be at most {max}, got {n}"))),
        Some(n) => Ok(n),
    }
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// List and ordering the cursor belongs to.
    s: String,
    /// Sort key.
    k: i64,
    /// Row id.
    i: Uuid,
}

/// Encodes a cursor of list `scope` at the row with sort key `key` and id `id`.
pub fn encode_cursor(scope: &str, key: i64, id: Uuid) -> String {
    OpaqueCursor(CursorData { s: scope.to_string(), k: key, i: id }).encode_cursor()
}

/// Decodes a cursor of list `scope`.
pub fn decode_cursor(scope: &str, cursor: &str) -> AppResult<Keyset> {
    let bad = || AppError::bad("after is not a valid cursor of this list and ordering");
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let data = OpaqueCursor::<CursorData>::decode_cursor(cursor).map_err(|_| bad())?.0;
    if data.s != scope {
        return Err(bad());
    }
    Ok(Keyset { key: data.k, id: data.i })
}

/// The time a cursor of a time-ordered list holds. A cursor this server issued holds a stored row's time;
/// a forged one may hold any number, and one outside the dates PostgreSQL accepts would fail the query.
pub fn cursor_time(k: &Keyset) -> AppResult<chrono::DateTime<chrono::Utc>> {
    k.as_time()
        .filter(|t| crate::domain::time::in_range(*t))
        .ok_or_else(|| AppError::bad("after is not a valid cursor of this list and ordering"))
}

/// Decodes a cursor of a time-ordered list `scope`.
pub fn decode_time_cursor(scope: &str, cursor: &str) -> AppResult<TimeKeyset> {
    let k = decode_cursor(scope, cursor)?;
    Ok(TimeKeyset { at: cursor_time(&k)?, id: k.id })
}

/// Decodes an optional cursor of a time-ordered list.
pub fn decode_time_after(scope: &str, after: Option<&str>) -> AppResult<Option<TimeKeyset>> {
    after.map(|c| decode_time_cursor(scope, c)).transpose()
}

/// Relay page information.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct PageInfo {
    /// Whether rows follow this page.
    pub has_next_page: bool,
    /// Whether rows precede this page (true exactly when `after` was given: lists page forward only).
    pub has_previous_page: bool,
    /// Cursor of the first edge.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// How a connection counts its whole list; counted only when `totalCount` is asked for.
pub enum TotalCount {
    /// Incidents matching a queue filter.
    Incidents {
        /// Tenant.
        tenant: String,
        /// Filter.
        filter: Arc<incidents::IncidentFilter>,
    },
    /// Alerts matching a queue filter.
    Alerts {
        /// Tenant.
        tenant: String,
        /// Filter.
        filter: Arc<alerts::AlertFilter>,
    },
    /// Alerts of one incident (batched over its siblings).
    AlertsOfIncident {
        /// Tenant.
        tenant: String,
        /// Incident.
        incident: Uuid,
    },
    /// Comments of an incident or alert (batched over its siblings).
    Comments {
        /// Tenant.
        tenant: String,
        /// Incident or alert.
        parent: Parent,
    },
    /// Entities of an incident's evidence, of some kinds (batched over its siblings).
    IncidentEntities {
        /// Tenant.
        tenant: String,
        /// Incident.
        incident: Uuid,
        /// Kinds (a `loaders::kind_mask`; 0 for all).
        kinds: u64,
    },
    /// Activity entries of an incident or alert (batched over its siblings).
    Activity {
        /// Tenant.
        tenant: String,
        /// Incident or alert.
        parent: Parent,
    },
    /// Entries of the allow/block list matching a filter.
    AllowBlockEntries {
        /// Tenant.
        tenant: String,
        /// Filter.
        filter: Arc<crate::db::queries::allow_block::EntryFilter>,
    },
    /// Entries of the tenant audit log.
    AuditLog {
        /// Tenant.
        tenant: String,
    },
    /// Submissions matching a filter.
    Submissions {
        /// Tenant.
        tenant: String,
        /// Filter.
        filter: Arc<crate::db::queries::submissions::SubmissionFilter>,
    },
    /// Actions matching a filter.
    Actions {
        /// Tenant.
        tenant: String,
        /// Filter.
        filter: Arc<crate::db::queries::actions::ActionFilter>,
    },
    /// A count already known (an action's target count).
    Known(i64),
    /// Targets of an action with some outcomes (all when empty).
    ActionTargets {
        /// Tenant.
        tenant: String,
        /// Action.
        action: Uuid,
        /// Outcomes.
        outcomes: Arc<Vec<crate::domain::enums::ActionOutcome>>,
    },
}

impl TotalCount {
    async fn resolve(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let l = loaders::loaders(ctx);
        let n = match self {
            TotalCount::Incidents { tenant, filter } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                incidents::count_matching(&mut conn, tenant, filter).await.map_err(AppError::from)?
            }
            TotalCount::Alerts { tenant, filter } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                alerts::count_matching(&mut conn, tenant, filter).await.map_err(AppError::from)?
            }
            TotalCount::AlertsOfIncident { tenant, incident } => l.alert_count(tenant, *incident).await?,
            TotalCount::Comments { tenant, parent } => l.comment_count(tenant, *parent).await?,
            TotalCount::Activity { tenant, parent } => l.activity_count(tenant, *parent).await?,
            TotalCount::IncidentEntities { tenant, incident, kinds } => {
                l.entity_count(tenant, *incident, *kinds).await?
            }
            TotalCount::AllowBlockEntries { tenant, filter } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                crate::allowblock::entries::count(&mut conn, tenant, filter).await?
            }
            TotalCount::AuditLog { tenant } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                crate::db::queries::audit::count(&mut conn, tenant).await.map_err(AppError::from)?
            }
            TotalCount::Submissions { tenant, filter } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                crate::db::queries::submissions::count(&mut conn, tenant, filter)
                    .await
                    .map_err(AppError::from)?
            }
            TotalCount::Actions { tenant, filter } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                crate::db::queries::actions::count(&mut conn, tenant, filter).await.map_err(AppError::from)?
            }
            TotalCount::Known(n) => *n,
            TotalCount::ActionTargets { tenant, action, outcomes } => {
                let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
                crate::db::queries::actions::target_count(&mut conn, tenant, *action, outcomes)
                    .await
                    .map_err(AppError::from)?
            }
        };
        Ok(n)
    }
}

/// Defines a connection type and its edge type for one node type.
macro_rules! connection {
    ($(#[$doc:meta])* $conn:ident, $edge:ident, $node:ty) => {
        /// An edge: a node and its cursor.
        pub struct $edge {
            /// Cursor of the node.
            pub cursor: String,
            /// The node.
            pub node: $node,
        }

        #[Object]
        impl $edge {
            /// Opaque position of the node; pass it as `after` to continue after it.
            async fn cursor(&self) -> &str {
                &self.cursor
            }
            /// The node.
            async fn node(&self) -> &$node {
                &self.node
            }
        }

        $(#[$doc])*
        pub struct $conn {
            edges: Vec<$edge>,
            page_info: PageInfo,
            total: TotalCount,
            // The sibling set the nodes resolve their nested fields in, kept alive with them.
            siblings: Vec<SetHandle>,
        }

        #[Object]
        impl $conn {
            /// The page's nodes with their cursors.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }
            /// The page's nodes.
            async fn nodes(&self) -> Vec<&$node> {
                self.edges.iter().map(|e| &e.node).collect()
            }
            /// Where the page lies in the list.
            async fn page_info(&self) -> &PageInfo {
                &self.page_info
            }
            /// Size of the whole list (all pages), counted only when asked for.
            async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
                self.total.resolve(ctx).await
            }
        }

        impl $conn {
            /// A connection from a page of rows (`has_next`: rows follow; `has_previous`: `after` was given).
            pub fn new<T>(
                rows: Vec<T>,
                has_next: bool,
                has_previous: bool,
                cursor: impl Fn(&T) -> String,
                wrap: impl Fn(T) -> $node,
                total: TotalCount,
            ) -> Self {
                let edges: Vec<$edge> =
                    rows.into_iter().map(|r| $edge { cursor: cursor(&r), node: wrap(r) }).collect();
                let page_info = PageInfo {
                    has_next_page: has_next,
                    has_previous_page: has_previous,
                    start_cursor: edges.first().map(|e| e.cursor.clone()),
                    end_cursor: edges.last().map(|e| e.cursor.clone()),
                };
                Self { edges, page_info, total, siblings: Vec::new() }
            }

            /// Keeps the nodes' sibling sets alive as long as the connection.
            pub fn keeping(mut self, siblings: impl IntoIterator<Item = SetHandle>) -> Self {
                self.siblings.extend(siblings);
                self
            }
        }
    };
}

connection!(
    /// A page of incidents.
    IncidentConnection,
    IncidentEdge,
    Incident
);
connection!(
    /// A page of alerts.
    AlertConnection,
    AlertEdge,
    Alert
);
connection!(
    /// A page of comments (oldest first).
    CommentConnection,
    CommentEdge,
    Comment
);
connection!(
    /// A page of an incident's evidence, one entry per entity.
    EvidenceConnection,
    EvidenceEdge,
    Evidence
);
connection!(
    /// A page of activity-log entries (newest first).
    ActivityConnection,
    ActivityEdge,
    ActivityEntry
);

connection!(
    /// A page of the tenant allow/block list (newest first).
    AllowBlockEntryConnection,
    AllowBlockEntryEdge,
    AllowBlockEntry
);
connection!(
    /// A page of the tenant audit log (newest first).
    AuditEntryConnection,
    AuditEntryEdge,
    AuditEntry
);

connection!(
    /// A page of submissions (newest first).
    SubmissionConnection,
    SubmissionEdge,
    crate::graphql::types::submission::Submission
);

connection!(
    /// A page of remediation actions.
    ActionConnection,
    ActionEdge,
    crate::graphql::types::action::Action
);
connection!(
    /// A page of an action's targets (by copy id).
    ActionTargetConnection,
    ActionTargetEdge,
    crate::graphql::types::action::ActionTarget
);

/// Cursor scope of the action center, newest first.
pub const ACTIONS_DESC_SCOPE: &str = "actions";
/// Cursor scope of the action center, oldest first.
pub const ACTIONS_ASC_SCOPE: &str = "actions.asc";
/// Cursor scope of an incident's actions.
pub const INCIDENT_ACTIONS_SCOPE: &str = "incident.actions";

/// Cursor scope of submissions.
pub const SUBMISSIONS_SCOPE: &str = "submissions";
/// Cursor scope of the allow/block list.
pub const ALLOW_BLOCK_SCOPE: &str = "allowBlockEntries";
/// Cursor scope of the audit log.
pub const AUDIT_SCOPE: &str = "auditLog";
/// Cursor scope of an incident's alerts (oldest first).
pub const INCIDENT_ALERTS_SCOPE: &str = "incident.alerts";
/// Cursor scope of a parent's comments.
pub const COMMENTS_SCOPE: &str = "comments";
/// Cursor scope of a parent's activity log.
pub const ACTIVITY_SCOPE: &str = "activity";
/// Cursor scope of an incident's evidence entities.
pub const INCIDENT_EVIDENCE_SCOPE: &str = "incident.evidence";

/// The complexity of a list field: its page (`first`, else `default`) times what each
/// item asks for, so a query's cost is bounded by what it can make the server load.
pub fn complexity(first: Option<i32>, default: i64, child_complexity: usize) -> usize {
    complexity_within(first, default, MAX_PAGE, child_complexity)
}

/// [`complexity`] for a list capped at `max` items rather than at a connection's page.
pub fn complexity_within(first: Option<i32>, default: i64, max: i64, child_complexity: usize) -> usize {
    let page = first.map_or(default, |n| i64::from(n).clamp(0, max));
    usize::try_from(page).unwrap_or(0).saturating_mul(child_complexity).max(1)
}

/// Cuts rows fetched with `limit + 1` to `limit`; the flag says whether more follow.
pub fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_next = rows.len() > limit;
    rows.truncate(limit);
    (rows, has_next)
}

/// A page of an incident's alerts (oldest first), through the loaders.
pub async fn alerts_of_incident(
    ctx: &Context<'_>,
    tenant: &str,
    incident: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<AlertConnection> {
    let first = page_size(first, DEFAULT_NESTED_PAGE)?;
    let after_k = decode_time_after(INCIDENT_ALERTS_SCOPE, after.as_deref())?;
    let (page, siblings) = loaders::loaders(ctx).alert_page(tenant, incident, first, after_k).await?;
    Ok(AlertConnection::new(
        page.rows.clone(),
        page.has_next,
        after.is_some(),
        |a| encode_cursor(INCIDENT_ALERTS_SCOPE, a.created_at.timestamp_micros(), a.id),
        Alert,
        TotalCount::AlertsOfIncident { tenant: tenant.to_string(), incident },
    )
    .keeping(siblings))
}

/// A page of an incident's evidence entities (in order of first appearance), through the loaders.
pub async fn evidence_of_incident(
    ctx: &Context<'_>,
    tenant: &str,
    incident: Uuid,
    kinds: Vec<crate::domain::enums::EvidenceKind>,
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<EvidenceConnection> {
    let first = page_size(first, DEFAULT_NESTED_PAGE)?;
    let after_k = decode_time_after(INCIDENT_EVIDENCE_SCOPE, after.as_deref())?;
    let kinds = loaders::kind_mask(&kinds);
    let page = loaders::loaders(ctx).entity_page(tenant, incident, kinds, first, after_k).await?;
    Ok(EvidenceConnection::new(
        page.entities.clone(),
        page.has_next,
        after.is_some(),
        |e| encode_cursor(INCIDENT_EVIDENCE_SCOPE, e.summary.first_at.timestamp_micros(), e.summary.first_id),
        |e| from_entity(&e),
        TotalCount::IncidentEntities { tenant: tenant.to_string(), incident, kinds },
    ))
}

/// A page of an incident's or alert's comments (oldest first), through the loaders.
pub async fn comments_of(
    ctx: &Context<'_>,
    tenant: &str,
    parent: Parent,
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<CommentConnection> {
    let first = page_size(first, DEFAULT_NESTED_PAGE)?;
    let after_k = decode_time_after(COMMENTS_SCOPE, after.as_deref())?;
    let page = loaders::loaders(ctx).comment_page(tenant, parent, first, after_k).await?;
    Ok(CommentConnection::new(
        page.rows.clone(),
        page.has_next,
        after.is_some(),
        |c| encode_cursor(COMMENTS_SCOPE, c.created_at.timestamp_micros(), c.id),
        Comment,
        TotalCount::Comments { tenant: tenant.to_string(), parent },
    ))
}

/// A page of an incident's or alert's activity log (newest first), through the loaders.
pub async fn activity_of(
    ctx: &Context<'_>,
    tenant: &str,
    parent: Parent,
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<ActivityConnection> {
    let first = page_size(first, DEFAULT_NESTED_PAGE)?;
    let after_k = decode_time_after(ACTIVITY_SCOPE, after.as_deref())?;
    let page = loaders::loaders(ctx).activity_page(tenant, parent, first, after_k).await?;
    Ok(ActivityConnection::new(
        page.rows.clone(),
        page.has_next,
        after.is_some(),
        |a| encode_cursor(ACTIVITY_SCOPE, a.created_at.timestamp_micros(), a.id),
        ActivityEntry,
        TotalCount::Activity { tenant: tenant.to_string(), parent },
    ))
}

/// A page of an incident's actions (newest first): the first page through the loaders, batched over
/// the incident's siblings; a later one on its own.
pub async fn actions_of_incident(
    ctx: &Context<'_>,
    incident: &crate::db::models::Incident,
    mut statuses: Vec<crate::domain::enums::ActionStatus>,
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<ActionConnection> {
    use crate::graphql::types::action::Action;
    let first = page_size(first, DEFAULT_NESTED_PAGE)?;
    statuses.sort_unstable();
    statuses.dedup();
    let tenant = incident.tenant_id.as_str();
    let after_k = decode_time_after(INCIDENT_ACTIONS_SCOPE, after.as_deref())?;
    let page = match after_k {
        None => {
            let mask = loaders::mask(crate::domain::enums::ActionStatus::ALL, &statuses);
            let key_of = |t: &str, m: loaders::Member| {
                Some(loaders::IncidentActionsKey {
                    tenant: t.to_string(),
                    incident: m.id,
                    first,
                    statuses: statuses.clone(),
                })
            };
            let (page, set) = loaders::loaders(ctx)
                .load_with_siblings(
                    loaders::SetKind::Incident,
                    tenant,
                    loaders::Member::incident(incident),
                    loaders::Memo::IncidentActions(first, mask),
                    key_of,
                    |l,
                     found: &std::collections::HashMap<
                        loaders::IncidentActionsKey,
                        Arc<loaders::ChildPage<_>>,
                    >| {
                        Some(l.register_actions(tenant, found.values().flat_map(|p| p.rows.iter())))
                    },
                )
                .await?;
            (page.unwrap_or_default(), set)
        }
        Some(k) => {
            let filter = crate::db::queries::actions::ActionFilter {
                statuses: statuses.clone(),
                incident_id: Some(incident.id),
                ..Default::default()
            };
            let mut conn = crate::graphql::state(ctx).pool.get().await.map_err(AppError::from)?;
            let rows = crate::db::queries::actions::page(
                &mut conn,
                tenant,
                &filter,
                false,
                Some((k.at, k.id)),
                first + 1,
            )
            .await
            .map_err(AppError::from)?;
            let (rows, has_next) = split_page(rows, first);
            let set = loaders::loaders(ctx).register_actions(tenant, &rows);
            (Arc::new(loaders::ChildPage { rows, has_next }), Some(set))
        }
    };
    let (page, siblings) = page;
    let filter = crate::db::queries::actions::ActionFilter {
        statuses,
        incident_id: Some(incident.id),
        ..Default::default()
    };
    Ok(ActionConnection::new(
        page.rows.clone(),
        page.has_next,
        after.is_some(),
        |a| encode_cursor(INCIDENT_ACTIONS_SCOPE, a.created_at.timestamp_micros(), a.id),
        Action,
        TotalCount::Actions { tenant: tenant.to_string(), filter: Arc::new(filter) },
    )
    .keeping(siblings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_keep_to_their_list() {
        let id = Uuid::now_v7();
        let c = encode_cursor("incidents:SEVERITY:DESC", 3, id);
        assert_eq!(decode_cursor("incidents:SEVERITY:DESC", &c).expect("decodes"), Keyset { key: 3, id });
        assert!(decode_cursor("incidents:SEVERITY:ASC", &c).is_err());
        assert!(decode_cursor("x", "not a cursor!").is_err());
        // Forged times: before what PostgreSQL stores (about 250,000 BC), and after year 9999.
        for key in [-8_000_000_000_000_000_000, 8_000_000_000_000_000_000, 254_000_000_000_000_000] {
            assert!(decode_time_cursor("comments", &encode_cursor("comments", key, id)).is_err(), "{key}");
        }
        let real = encode_cursor("comments", 1_790_000_000_000_000, id);
        assert!(decode_time_cursor("comments", &real).is_ok());
    }

    #[test]
    fn page_size_is_checked_not_clamped() {
        assert_eq!(page_size(None, 20).ok(), Some(20));
        assert_eq!(page_size(Some(100), 20).ok(), Some(100));
        assert!(page_size(Some(101), 20).is_err());
        assert!(page_size(Some(-1), 20).is_err());
    }
}
