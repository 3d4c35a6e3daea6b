//! Tenant settings as a service: reads them, and applies a change once [`crate::domain::settings`]
//! checked it, writing the change to the tenant audit log in the same transaction.

use crate::db::models::{AuditEntry, Tenant};
use crate::db::queries::audit;
use crate::db::queries::tenants::{self, SettingsChange};
use crate::db::Conn;
use crate::domain::enums::{AuditAction, AuditTargetKind};
use crate::domain::settings::{self, SettingsUpdate};
use crate::error::AppResult;
use diesel_async::AsyncConnection;
use serde_json::json;

/// The tenant's settings.
pub async fn get(conn: &mut Conn, tenant_id: &str) -> AppResult<Tenant> {
    Ok(tenants::get(conn, tenant_id).await?)
}

/// Who changes the settings: the caller's UPN and display name, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// UPN (`sub`).
    pub sub: &'a str,
    /// Display name.
    pub name: Option<&'a str>,
}

/// Validates `u` and applies it, with an audit-log entry holding the settings before and after;
/// returns the settings as they now are.
pub async fn update(
    conn: &mut Conn,
    tenant_id: &str,
    actor: Actor<'_>,
    u: &SettingsUpdate,
) -> AppResult<Tenant> {
    let change = SettingsChange::from(settings::validate(u)?);
    let tenant = conn
        .transaction(async |c| {
            let before = tenants::lock(c, tenant_id).await?;
            let after = tenants::update_settings(c, tenant_id, &change).await?;
            let row = AuditEntry {
                tenant_id: tenant_id.to_string(),
                id: uuid::Uuid::now_v7(),
                actor: actor.sub.to_string(),
                actor_name: actor.name.map(str::to_string),
                target_kind: AuditTargetKind::TenantSettings,
                target_id: None,
                action: AuditAction::Update,
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
                at: after.updated_at,
            };
            audit::insert(c, &row).await?;
            AppResult::Ok(after)
        })
        .await?;
    tracing::info!(tenant = tenant_id, actor = actor.sub, ?change, "tenant settings updated");
    Ok(tenant)
}

/// The settings as the audit log shows them (the names of the GraphQL fields).
pub fn snapshot(t: &Tenant) -> serde_json::Value {
    json!({
        "strongKeyWindowHours": t.strong_key_window_hours,
        "weakKeyWindowHours": t.weak_key_window_hours,
        "maxKeyPrevalence": t.max_key_prevalence,
        "correlationIgnore": t.correlation_ignore,
        "autoApprove": t.auto_approve,
        "fourEyes": t.four_eyes,
        "acceptedDomains": t.accepted_domains,
    })
}
