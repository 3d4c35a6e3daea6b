//! Reading the activity log of incidents and alerts in batches for the loaders: the first page of each
//! parent's entries (newest first) and their counts. Writing entries lives in `activity`.

use crate::db::models::Activity;
use crate::db::queries::queue::{ParentKind, TimeKeyset};
use crate::db::schema::activity;
use crate::db::Conn;
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
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
    let col = kind.column();
    activity::table
        .filter(activity::tenant_id.eq(tenant_id))
        .filter(
            sql::<Bool>(&format!(
                "activity.id IN (SELECT s.id FROM (SELECT l.id, row_number() OVER \
                 (PARTITION BY l.{col} ORDER BY l.created_at DESC, l.id DESC) AS rn FROM activity l \
                 WHERE l.tenant_id = "
            ))
            .bind::<Text, _>(tenant_id)
            .sql(&format!(" AND l.{col} = ANY("))
            .bind::<Array<diesel::sql_types::Uuid>, _>(ids.to_vec())
            .sql(") AND (")
            .bind::<Nullable<Timestamptz>, _>(after.map(|k| k.at))
            .sql("::timestamptz IS NULL OR (l.created_at, l.id) < (")
            .bind::<Nullable<Timestamptz>, _>(after.map(|k| k.at))
            .sql(", ")
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(after.map(|k| k.id))
            .sql("))) s WHERE s.rn <= ")
            .bind::<BigInt, _>(limit)
            .sql(")"),
        )
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
