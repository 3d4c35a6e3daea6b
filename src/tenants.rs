//! Tenant settings as a service: reads them, and applies a change once [`crate::domain::settings`]
//! checked it.

use crate::db::models::Tenant;
use crate::db::queries::tenants::{self, SettingsChange};
use crate::db::Conn;
use crate::domain::settings::{self, SettingsUpdate};
use crate::error::AppResult;

/// The tenant's settings.
pub async fn get(conn: &mut Conn, tenant_id: &str) -> AppResult<Tenant> {
    Ok(tenants::get(conn, tenant_id).await?)
}

/// Validates `u` and applies it; returns the settings as they now are.
pub async fn update(conn: &mut Conn, tenant_id: &str, actor: &str, u: &SettingsUpdate) -> AppResult<Tenant> {
    let change = SettingsChange::from(settings::validate(u)?);
    let tenant = tenants::update_settings(conn, tenant_id, &change).await?;
    tracing::info!(tenant = tenant_id, actor, ?change, "tenant settings updated");
    Ok(tenant)
}
