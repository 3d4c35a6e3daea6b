//! The `ActivityEntry` type: one change to an incident or alert, by a person or the system.

use crate::db::models;
use async_graphql::{Json, Object, ID};
use chrono::{DateTime, Utc};

/// One entry of the activity log.
pub struct ActivityEntry(pub models::Activity);

#[Object]
impl ActivityEntry {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Who did it: a UPN, or `System`/`Automation` for the server's own changes.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// What happened, e.g. `UPDATED`, `ALERT_CORRELATED`, `MERGED`, `COMMENTED`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The field that changed, for updates.
    async fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }
    /// The value before the change (any JSON).
    async fn before(&self) -> Option<Json<serde_json::Value>> {
        self.0.before.clone().map(Json)
    }
    /// The value after the change (any JSON).
    async fn after(&self) -> Option<Json<serde_json::Value>> {
        self.0.after.clone().map(Json)
    }
    /// A readable description.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The incident concerned, if any.
    async fn incident_id(&self) -> Option<ID> {
        self.0.incident_id.map(|id| ID(id.to_string()))
    }
    /// The alert concerned, if any.
    async fn alert_id(&self) -> Option<ID> {
        self.0.alert_id.map(|id| ID(id.to_string()))
    }
}
