//! Threat Explorer's reads (readers and above): one copy by id, pages of copies matching a filter, and
//! grouped counts for charts. Every read is of the caller's tenant and the last 30 days.

use crate::auth::Role;
use crate::db::queries::{emails, explorer::After};
use crate::error::{AppError, GqlResult};
use crate::explorer::filter::EmailFilter;
use crate::explorer::hunt;
use crate::graphql::types::connection::{self, decode_time_after, page_size, DEFAULT_PAGE};
use crate::graphql::types::email::{
    Email, EmailBucket, EmailConnection, EmailGroupBy, EmailOrder, EMAILS_ASC_SCOPE, EMAILS_DESC_SCOPE,
};
use crate::graphql::types::filters::OrderDirection;
use crate::graphql::{parse_id, require, state};
use crate::mail::ingest::window_start;
use async_graphql::{Context, Object, ID};

/// Query part for the mail store.
#[derive(Default)]
pub struct MailQuery;

#[Object]
impl MailQuery {
    /// One copy of the caller's tenant, received in the last 30 days; null when there is none.
    async fn email(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Email>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let since = window_start(chrono::Utc::now());
        let row = emails::find(&mut conn, &caller.tenant_id, id, since).await.map_err(AppError::from)?;
        Ok(row.map(Email::new))
    }

    /// Threat Explorer: the copies of the last 30 days matching `filter`, newest first by default.
    /// `first`: default 20, at most 100. `after`: the `endCursor` of the previous page (same order).
    /// `totalCount` is exact up to 10,000, then an estimate flagged by `totalCountIsEstimate`.
    #[graphql(complexity = "connection::complexity(first, DEFAULT_PAGE, child_complexity)")]
    async fn emails(
        &self,
        ctx: &Context<'_>,
        filter: EmailFilter,
        order_by: Option<EmailOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<EmailConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let ascending = order_by.is_some_and(|o| o.direction == OrderDirection::Asc);
        let scope = if ascending { EMAILS_ASC_SCOPE } else { EMAILS_DESC_SCOPE };
        let after = decode_time_after(scope, after.as_deref())?.map(|k| After { at: k.at, id: k.id });
        let hunt = hunt::prepare(&caller.tenant_id, &filter)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let (rows, more) = hunt::page(&mut conn, &caller.tenant_id, &hunt, ascending, after, limit).await?;
        Ok(EmailConnection::new(rows, more, after.is_some(), scope, caller.tenant_id.clone(), hunt))
    }

    /// Grouped counts of the copies matching `filter`, for Explorer's charts: the `first` largest
    /// buckets (default 20, at most 1,000), largest first; for `DAY` and `HOUR`, the latest `first`
    /// buckets in time order.
    async fn email_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: EmailFilter,
        group_by: EmailGroupBy,
        first: Option<i32>,
    ) -> GqlResult<Vec<EmailBucket>> {
        let caller = require(ctx, Role::Reader)?;
        let hunt = hunt::prepare(&caller.tenant_id, &filter)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let buckets = hunt::aggregate(&mut conn, &caller.tenant_id, &hunt, group_by.into(), first).await?;
        Ok(buckets.into_iter().map(|b| EmailBucket { key: b.key, count: b.count }).collect())
    }
}
