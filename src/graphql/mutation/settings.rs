//! `updateTenantSettings` (admin only).

use crate::auth::Role;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::settings::{TenantSettings, UpdateTenantSettingsInput};
use crate::graphql::{require, state};
use crate::tenants;
use async_graphql::{Context, Object};

/// Mutation part for tenant settings.
#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Changes the caller's tenant's settings (admin only); omitted fields stay as they are. Windows are
    /// 1-8760 hours, `maxKeyPrevalence` 1-10000, `correlationIgnore` at most 1000 entries of at most
    /// 255 characters (trimmed, lower-cased, de-duplicated). Returns the settings as they now are; the
    /// change is written to the audit log (`auditLog`) with the settings before and after.
    async fn update_tenant_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantSettingsInput,
    ) -> GqlResult<TenantSettings> {
        let caller = require(ctx, Role::Admin)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let actor = tenants::Actor { sub: &caller.sub, name: Some(&caller.name) };
        let t = tenants::update(&mut conn, &caller.tenant_id, actor, &input.into()).await?;
        Ok(TenantSettings(t))
    }
}
