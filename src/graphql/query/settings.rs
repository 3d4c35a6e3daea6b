//! `tenantSettings`: the caller's tenant's correlation settings.

use async_graphql::Object;

/// Query part for tenant settings.
#[derive(Default)]
pub struct SettingsQuery;

#[Object]
impl SettingsQuery {
    /// Placeholder until the settings query lands.
    async fn settings_placeholder(&self) -> bool {
        true
    }
}
