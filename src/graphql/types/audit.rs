//! The `AuditEntry` type: one change to the tenant's configuration (allow/block list, settings).

use crate::db::models;
use crate::domain::enums::{AuditAction, AuditTargetKind};
use async_graphql::{Json, Object, ID};
use chrono::{DateTime, Utc};

/// One entry of the tenant audit log.
pub struct AuditEntry(pub models::AuditEntry);

#[Object]
impl AuditEntry {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Who made the change (a UPN).
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// Their display name, when the token gave one.
    async fn actor_name(&self) -> Option<&str> {
        self.0.actor_name.as_deref()
    }
    /// What was changed.
    async fn target_kind(&self) -> AuditTargetKind {
        self.0.target_kind
    }
    /// Its id: the allow/block entry's; null for the tenant's settings.
    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.clone().map(ID)
    }
    /// `CREATE`, `UPDATE` or `DELETE`.
    async fn action(&self) -> AuditAction {
        self.0.action
    }
    /// The target before the change (any JSON; null for a creation).
    async fn before(&self) -> Option<Json<serde_json::Value>> {
        self.0.before.clone().map(Json)
    }
    /// The target after the change (any JSON; null for a deletion).
    async fn after(&self) -> Option<Json<serde_json::Value>> {
        self.0.after.clone().map(Json)
    }
    /// When.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}
