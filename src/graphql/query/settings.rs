//! `tenantSettings`: the caller's tenant's correlation and approval settings (readers and above).

use crate::auth::Role;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::settings::TenantSettings;
use crate::graphql::{require, state};
use crate::tenants;
use async_graphql::{Context, Object};

/// Query part for tenant settings.
#[derive(Default)]
pub struct SettingsQuery;

#[Object]
impl SettingsQuery {
    /// The caller's tenant's settings.
    async fn tenant_settings(&self, ctx: &Context<'_>) -> GqlResult<TenantSettings> {
        let caller = require(ctx, Role::Reader)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(TenantSettings(tenants::get(&mut conn, &caller.tenant_id).await?))
    }
}
