//! Threat Explorer's reads: one copy by id (readers and above).

use crate::auth::Role;
use crate::db::queries::emails;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::email::Email;
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
        Ok(row.map(Email))
    }
}
