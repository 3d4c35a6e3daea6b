//! Submissions: one by id, and the filtered list (newest first). Readers and above.

use crate::auth::Role;
use crate::db::queries::submissions as q;
use crate::error::{AppError, GqlResult};
use crate::graphql::loaders::loaders;
use crate::graphql::types::connection::{
    decode_time_after, encode_cursor, page_size, split_page, SubmissionConnection, TotalCount, DEFAULT_PAGE,
    SUBMISSIONS_SCOPE,
};
use crate::graphql::types::submission::{Submission, SubmissionFilterInput};
use crate::graphql::{parse_id, require, state};
use async_graphql::{Context, Object, ID};
use std::sync::Arc;

/// Query part for submissions.
#[derive(Default)]
pub struct SubmissionsQuery;

#[Object]
impl SubmissionsQuery {
    /// One submission of the caller's tenant, or null.
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Submission>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(q::find(&mut conn, &caller.tenant_id, id).await.map_err(AppError::from)?.map(Submission))
    }

    /// The caller's tenant's submissions, newest first. `first`: default 20, at most 100. `after`: the
    /// `endCursor` of the previous page.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn submissions(
        &self,
        ctx: &Context<'_>,
        filter: Option<SubmissionFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<SubmissionConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let after_k = decode_time_after(SUBMISSIONS_SCOPE, after.as_deref())?;
        let filter = Arc::new(filter.unwrap_or_default().filter()?);
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = q::page(&mut conn, tenant, &filter, after_k.map(|k| (k.at, k.id)), limit + 1)
            .await
            .map_err(AppError::from)?;
        let (rows, has_next) = split_page(rows, limit);
        let siblings = loaders(ctx).register_submissions(tenant, &rows);
        Ok(SubmissionConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(SUBMISSIONS_SCOPE, r.created_at.timestamp_micros(), r.id),
            Submission,
            TotalCount::Submissions { tenant: tenant.to_string(), filter },
        )
        .keeping(siblings))
    }
}
