//! The incidents and alerts queues: lists, filters, single objects, and the dashboard summary.

use crate::auth::Role;
use crate::db::queries;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::{alert::Alert, incident::Incident};
use crate::graphql::{require, state};
use async_graphql::{Context, Object, ID};
use uuid::Uuid;

/// Query part for the queues.
#[derive(Default)]
pub struct QueueQuery;

/// Parses a client-supplied id; a malformed one is `BAD_USER_INPUT`.
pub fn parse_id(id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::bad(format!("{:?} is not a valid id (a UUID)", id.as_str())))
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
}
