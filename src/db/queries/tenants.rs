//! Tenants and their settings.

use crate::db::models::Tenant;
use crate::db::schema::tenants;
use crate::db::Conn;
use crate::domain::settings::SettingsUpdate;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Creates the tenant with default settings if it does not exist yet.
pub async fn ensure(conn: &mut Conn, tenant_id: &str) -> QueryResult<()> {
    diesel::insert_into(tenants::table)
        .values(tenants::id.eq(tenant_id))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's settings.
pub async fn get(conn: &mut Conn, tenant_id: &str) -> QueryResult<Tenant> {
    tenants::table.find(tenant_id).select(Tenant::as_select()).first(conn).await
}

/// The tenant's settings, locked until the transaction ends (`FOR NO KEY UPDATE`: rows that only
/// reference the tenant are not held up).
pub async fn lock(conn: &mut Conn, tenant_id: &str) -> QueryResult<Tenant> {
    tenants::table.find(tenant_id).for_no_key_update().select(Tenant::as_select()).first(conn).await
}

/// A change to a tenant's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct SettingsChange {
    /// Correlation window for strong keys, in hours.
    pub strong_key_window_hours: Option<i32>,
    /// Correlation window for weak keys, in hours.
    pub weak_key_window_hours: Option<i32>,
    /// Keys carried by more alerts than this inside the window do not correlate.
    pub max_key_prevalence: Option<i32>,
    /// Key values that never correlate.
    pub correlation_ignore: Option<Vec<String>>,
    /// Approve automated remediation without a person.
    pub auto_approve: Option<bool>,
    /// The proposer of an action may not approve it.
    pub four_eyes: Option<bool>,
    /// The tenant's own mail domains.
    pub accepted_domains: Option<Vec<String>>,
}

impl From<SettingsUpdate> for SettingsChange {
    /// The change a checked update makes (see `domain::settings::validate`).
    fn from(u: SettingsUpdate) -> Self {
        Self {
            strong_key_window_hours: u.strong_key_window_hours,
            weak_key_window_hours: u.weak_key_window_hours,
            max_key_prevalence: u.max_key_prevalence,
            correlation_ignore: u.correlation_ignore,
            auto_approve: u.auto_approve,
            four_eyes: u.four_eyes,
            accepted_domains: u.accepted_domains,
        }
    }
}

/// Applies `change` to the tenant's settings and returns the settings as they now are.
pub async fn update_settings(
    conn: &mut Conn,
    tenant_id: &str,
    change: &SettingsChange,
) -> QueryResult<Tenant> {
    diesel::update(tenants::table.find(tenant_id))
        .set((change, tenants::updated_at.eq(diesel::dsl::now)))
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await
}
