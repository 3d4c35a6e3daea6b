//! Triage mutations: update incidents and alerts, tags, comments.

use async_graphql::Object;

/// Mutation part for triage.
#[derive(Default)]
pub struct TriageMutation;

#[Object]
impl TriageMutation {
    /// Placeholder until triage lands.
    async fn triage_placeholder(&self) -> bool {
        true
    }
}
