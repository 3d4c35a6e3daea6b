//! `updateTenantSettings` (admin).

use async_graphql::Object;

/// Mutation part for tenant settings.
#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Placeholder until the settings mutation lands.
    async fn settings_mutation_placeholder(&self) -> bool {
        true
    }
}
