//! The activity log of incidents and alerts: a page, and the count.

use super::{counts, distinct_ids, group, pages, ChildPage, Loaders, Memo, QueueLoader};
use crate::db::models;
use crate::db::queries::activity_log;
use crate::db::queries::queue::{Parent, ParentKind, TimeKeyset};
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

impl Loaders {
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
}

fn activity_parent(kind: ParentKind, a: &models::Activity) -> Option<Uuid> {
    match kind {
        ParentKind::Incident => a.incident_id,
        ParentKind::Alert => a.alert_id,
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
