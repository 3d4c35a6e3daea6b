//! The incidents and alerts queues: lists (filtered, ordered, keyset-paginated Relay connections),
//! single objects, and the dashboard summary. Readers and above; an ingestor may not read the queue.

use crate::auth::Role;
use crate::db::queries::{self, queue::Keyset};
use crate::error::{AppError, AppResult, GqlResult};
use crate::graphql::types::connection::{
    cursor_time, decode_cursor, encode_cursor, page_size, split_page, AlertConnection, IncidentConnection,
    TotalCount, DEFAULT_PAGE,
};
use crate::graphql::types::filters::{AlertFilterInput, AlertOrder, IncidentFilterInput, IncidentOrder};
use crate::graphql::types::summary::{IncidentSummary, SUMMARY_STATUSES};
use crate::graphql::types::{alert::Alert, incident::Incident};
use crate::graphql::{loaders, parse_id, require, state};
use async_graphql::{Context, Object, ID};
use std::sync::Arc;

/// Query part for the queues.
#[derive(Default)]
pub struct QueueQuery;

/// Decodes `after` for a list ordered by a key that is a timestamp (`is_time`) or a number.
fn after_keyset(scope: &str, after: Option<&str>, is_time: bool) -> AppResult<Option<Keyset>> {
    let Some(c) = after else { return Ok(None) };
    let k = decode_cursor(scope, c)?;
    if is_time {
        cursor_time(&k)?;
    }
    Ok(Some(k))
}

#[Object]
impl QueueQuery {
    /// One incident of the caller's tenant, or null.
    async fn incident(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Incident>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let row = queries::incidents::find(&mut conn, &caller.tenant_id, id).await.map_err(AppError::from)?;
        Ok(row.map(Incident))
    }

    /// One alert of the caller's tenant, or null.
    async fn alert(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Alert>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let row = queries::alerts::find(&mut conn, &caller.tenant_id, id).await.map_err(AppError::from)?;
        Ok(row.map(Alert))
    }

    /// The incidents queue. Default order `LAST_UPDATE_AT DESC`; `REDIRECTED` (merged) incidents are left
    /// out unless `filter.status` names it. `first`: default 20, at most 100 (more is `BAD_USER_INPUT`).
    /// `after`: the `endCursor` of the previous page, valid only with the same ordering.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        filter: Option<IncidentFilterInput>,
        order_by: Option<IncidentOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<IncidentConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let filter = Arc::new(filter.unwrap_or_default().into_db()?);
        let order = order_by.unwrap_or_default();
        let (sort, dir) = order.db();
        let scope = order.scope();
        let after_k = after_keyset(&scope, after.as_deref(), sort.is_time())?;
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = queries::incidents::page(&mut conn, tenant, &filter, sort, dir, after_k, limit + 1)
            .await
            .map_err(AppError::from)?;
        let (rows, has_next) = split_page(rows, limit);
        let siblings = loaders::loaders(ctx).register_incidents(tenant, &rows);
        Ok(IncidentConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(&scope, sort.key_of(r), r.id),
            Incident,
            TotalCount::Incidents { tenant: tenant.to_string(), filter },
        )
        .keeping(Some(siblings)))
    }

    /// The alerts queue. Default order `CREATED_AT DESC`. `first`: default 20, at most 100 (more is
    /// `BAD_USER_INPUT`). `after`: the `endCursor` of the previous page, valid only with the same ordering.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertFilterInput>,
        order_by: Option<AlertOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<AlertConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let filter = Arc::new(filter.unwrap_or_default().into_db()?);
        let order = order_by.unwrap_or_default();
        let (sort, dir) = order.db();
        let scope = order.scope();
        let after_k = after_keyset(&scope, after.as_deref(), sort.is_time())?;
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = queries::alerts::page(&mut conn, tenant, &filter, sort, dir, after_k, limit + 1)
            .await
            .map_err(AppError::from)?;
        let (rows, has_next) = split_page(rows, limit);
        let siblings = loaders::loaders(ctx).register_alerts(tenant, &rows);
        Ok(AlertConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(&scope, sort.key_of(r), r.id),
            Alert,
            TotalCount::Alerts { tenant: tenant.to_string(), filter },
        )
        .keeping(Some(siblings)))
    }

    /// The queue at a glance, for dashboards and wall displays: incidents per status and (open ones) per
    /// severity, open unassigned incidents, and alerts received in the last 24 hours.
    async fn incident_summary(&self, ctx: &Context<'_>) -> GqlResult<IncidentSummary> {
        let caller = require(ctx, Role::Reader)?;
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows =
            queries::incidents::summary(&mut conn, tenant, SUMMARY_STATUSES).await.map_err(AppError::from)?;
        let since = chrono::Utc::now() - chrono::Duration::hours(24);
        let alerts =
            queries::alerts::count_created_since(&mut conn, tenant, since).await.map_err(AppError::from)?;
        Ok(IncidentSummary::from_rows(&rows, alerts))
    }
}
