//! Running hunts: a page of copies, their count, and grouped counts for charts.

use super::filter::EmailFilter;
use crate::db::models::Email;
use crate::db::queries::explorer::{self as q, After, Bucket, GroupBy, Hunt};
use crate::db::Conn;
use crate::error::{AppError, AppResult};
use chrono::Utc;

/// Most buckets `emailAggregate` returns.
pub const MAX_BUCKETS: i64 = 1_000;
/// Buckets returned when `first` is not given.
pub const DEFAULT_BUCKETS: i64 = 20;

/// The hunt a filter asks for in the caller's tenant, now.
pub fn prepare(tenant_id: &str, filter: &EmailFilter) -> AppResult<Hunt> {
    filter.hunt(tenant_id, Utc::now())
}

/// A page of `limit` copies after `after`, and whether more follow.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    hunt: &Hunt,
    ascending: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<(Vec<Email>, bool)> {
    let mut rows = q::page(conn, tenant_id, hunt, ascending, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// How many copies match, and whether the figure is an estimate (past 10,000).
pub async fn count(conn: &mut Conn, tenant_id: &str, hunt: &Hunt) -> AppResult<(i64, bool)> {
    Ok(q::count(conn, tenant_id, hunt).await?)
}

/// The top `first` buckets (default 20, at most 1,000).
pub async fn aggregate(
    conn: &mut Conn,
    tenant_id: &str,
    hunt: &Hunt,
    by: GroupBy,
    first: Option<i32>,
) -> AppResult<Vec<Bucket>> {
    let n = match first.map(i64::from) {
        None => DEFAULT_BUCKETS,
        Some(n) if !(1..=MAX_BUCKETS).contains(&n) => {
            return Err(AppError::bad(format!("first must be between 1 and {MAX_BUCKETS}, got {n}")))
        }
        Some(n) => n,
    };
    Ok(q::aggregate(conn, tenant_id, hunt, by, n).await?)
}
