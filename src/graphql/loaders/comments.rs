//! Comments of incidents and alerts: a page, and the count.

use super::{counts, distinct_ids, group, pages, ChildPage, Loaders, Memo, QueueLoader};
use crate::db::models;
use crate::db::queries::comments;
use crate::db::queries::queue::{Parent, ParentKind, TimeKeyset};
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

impl Loaders {
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
}

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
