//! `ingestAlerts`: detection sources push alerts here.

use async_graphql::Object;

/// Mutation part for ingestion.
#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Placeholder until ingestion lands.
    async fn ingest_placeholder(&self) -> bool {
        true
    }
}
