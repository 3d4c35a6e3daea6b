//! Reading the activity log of incidents and alerts in batches for the loaders: the first page of each
//! parent's entries (newest first) and their counts. Writing entries lives in `activity`.

use crate::db::models::Activity;
use crate::db::queries::queue::{first_per_parent, ParentKind, SortDir, TimeKeyset};
use crate::db::schema::activity;
use crate::db::Conn;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// The first `limit` entries (newest first) before `after` of each parent in `ids`, all of one kind, in
/// one statement.
pub async fn page_by_parents(
    conn: &mut Conn,
    tenant_id: &str,
    kind: ParentKind,
    ids: &[Uuid],
    after: Option<TimeKeyset>,
    limit: i64,
) -> QueryResult<Vec<Activity>> {
    if ids.is_empty() || limit <= 0 {
        return Ok(vec![]);
    }
    activity::table
        .filter(activity::tenant_id.eq(tenant_id))
        .filter(first_per_parent("activity", kind.column(), tenant_id, ids, after, limit, SortDir::Desc))
        .order_by((activity::created_at.desc(), activity::id.desc()))
        .select(Activity::as_select())
        .load(conn)
        .await
}

/// Number of entries of each parent in `ids` (parents without entries are absent).
pub async fn count_by_parents(
    conn: &mut Conn,
    tenant_id: &str,
    kind: ParentKind,
    ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    let base = activity::table.filter(activity::tenant_id.eq(tenant_id));
    let rows: Vec<(Option<Uuid>, i64)> = match kind {
        ParentKind::Incident => {
            base.filter(activity::incident_id.eq_any(ids))
                .group_by(activity::incident_id)
                .select((activity::incident_id, count_star()))
                .load(conn)
                .await?
        }
        ParentKind::Alert => {
            base.filter(activity::alert_id.eq_any(ids))
                .group_by(activity::alert_id)
                .select((activity::alert_id, count_star()))
                .load(conn)
                .await?
        }
    };
    Ok(rows.into_iter().filter_map(|(id, n)| id.map(|id| (id, n))).collect())
}
