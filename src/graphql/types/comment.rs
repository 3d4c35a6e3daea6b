//! The `Comment` type: a note on an incident or an alert (append-only).

use crate::db::models;
use async_graphql::{Object, ID};
use chrono::{DateTime, Utc};

/// A comment on an incident or an alert.
pub struct Comment(pub models::Comment);

#[Object]
impl Comment {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The text.
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// The text (Defender's spelling; same as `body`).
    async fn comment(&self) -> &str {
        &self.0.body
    }
    /// Author's UPN.
    async fn author(&self) -> &str {
        &self.0.author
    }
    /// Author's display name.
    async fn author_name(&self) -> Option<&str> {
        self.0.author_name.as_deref()
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The incident it is on, if any.
    async fn incident_id(&self) -> Option<ID> {
        self.0.incident_id.map(|id| ID(id.to_string()))
    }
    /// The alert it is on, if any.
    async fn alert_id(&self) -> Option<ID> {
        self.0.alert_id.map(|id| ID(id.to_string()))
    }
}
