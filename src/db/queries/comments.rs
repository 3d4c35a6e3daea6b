//! Comments on incidents and alerts (append-only), read in batches for the loaders: the first page of
//! each parent's comments (oldest first) and their counts.

use crate::db::models::Comment;
use crate::db::queries::queue::{first_per_parent, ParentKind, SortDir, TimeKeyset};
use crate::db::schema::comments;
use crate::db::Conn;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Appends a comment and returns it as stored.
pub async fn insert(conn: &mut Conn, comment: &Comment) -> QueryResult<Comment> {
    diesel::insert_into(comments::table)
        .values(comment)
        .returning(Comment::as_returning())
        .get_result(conn)
        .await
}

/// The first `limit` comments (oldest first) after `after` of each parent in `ids`, all of one kind
/// (`kind` says which: incidents or alerts), in one statement.
pub async fn page_by_parents(
    conn: &mut Conn,
    tenant_id: &str,
    kind: ParentKind,
    ids: &[Uuid],
    after: Option<TimeKeyset>,
    limit: i64,
) -> QueryResult<Vec<Comment>> {
    if ids.is_empty() || limit <= 0 {
        return Ok(vec![]);
    }
    comments::table
        .filter(comments::tenant_id.eq(tenant_id))
        .filter(first_per_parent("comments", kind.column(), tenant_id, ids, after, limit, SortDir::Asc))
        .order_by((comments::created_at, comments::id))
        .select(Comment::as_select())
        .load(conn)
        .await
}

/// Number of comments of each parent in `ids` (parents without comments are absent).
pub async fn count_by_parents(
    conn: &mut Conn,
    tenant_id: &str,
    kind: ParentKind,
    ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    let base = comments::table.filter(comments::tenant_id.eq(tenant_id));
    let rows: Vec<(Option<Uuid>, i64)> = match kind {
        ParentKind::Incident => {
            base.filter(comments::incident_id.eq_any(ids))
                .group_by(comments::incident_id)
                .select((comments::incident_id, count_star()))
                .load(conn)
                .await?
        }
        ParentKind::Alert => {
            base.filter(comments::alert_id.eq_any(ids))
                .group_by(comments::alert_id)
                .select((comments::alert_id, count_star()))
                .load(conn)
                .await?
        }
    };
    Ok(rows.into_iter().filter_map(|(id, n)| id.map(|id| (id, n))).collect())
}
