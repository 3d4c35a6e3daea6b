//! The tenant allow/block list: one entry, and the filtered list (a Relay connection, newest first).
//! Readers and above; an ingestor may not read it.

use crate::allowblock::entries;
use crate::auth::Role;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::allowblock::{AllowBlockEntry, AllowBlockEntryFilterInput};
use crate::graphql::types::connection::{
    decode_time_after, encode_cursor, page_size, split_page, AllowBlockEntryConnection, TotalCount,
    ALLOW_BLOCK_SCOPE, DEFAULT_PAGE,
};
use crate::graphql::{parse_id, require, state};
use async_graphql::{Context, Object, ID};
use std::sync::Arc;

/// Query part for the allow/block list.
#[derive(Default)]
pub struct AllowBlockQuery;

#[Object]
impl AllowBlockQuery {
    /// One entry of the caller's tenant's allow/block list, or null.
    async fn allow_block_entry(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<AllowBlockEntry>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let now = chrono::Utc::now();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let row = entries::get(&mut conn, &caller.tenant_id, id).await?;
        Ok(row.map(|r| AllowBlockEntry::new(r, now)))
    }

    /// The caller's tenant's allow/block list, newest first, expired entries included unless
    /// `filter.expired` says otherwise. `first`: default 20, at most 100 (more is `BAD_USER_INPUT`).
    /// `after`: the `endCursor` of the previous page.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn allow_block_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<AllowBlockEntryFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<AllowBlockEntryConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let after_k = decode_time_after(ALLOW_BLOCK_SCOPE, after.as_deref())?;
        let now = chrono::Utc::now();
        let f = filter.unwrap_or_default();
        let filter =
            Arc::new(entries::filter(f.kind, f.action, f.value_contains.as_deref(), f.expired, now)?);
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = entries::page(&mut conn, tenant, &filter, after_k, limit + 1).await?;
        let (rows, has_next) = split_page(rows, limit);
        Ok(AllowBlockEntryConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(ALLOW_BLOCK_SCOPE, r.created_at.timestamp_micros(), r.id),
            |r| AllowBlockEntry::new(r, now),
            TotalCount::AllowBlockEntries { tenant: tenant.to_string(), filter },
        ))
    }
}
