//! The `Incident` type.

use crate::db::models;
use crate::domain::enums::*;
use async_graphql::{Object, ID};
use chrono::{DateTime, Utc};

/// An incident: a set of correlated alerts worked as one case.
pub struct Incident(pub models::Incident);

#[Object]
impl Incident {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Name generated from its alerts, or set by an analyst.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// Highest severity of its alerts unless set by hand.
    async fn severity(&self) -> Severity {
        self.0.severity
    }
    /// Status.
    async fn status(&self) -> IncidentStatus {
        self.0.status
    }
    /// Classification.
    async fn classification(&self) -> Classification {
        self.0.classification
    }
    /// Determination.
    async fn determination(&self) -> Determination {
        self.0.determination
    }
    /// Owner's UPN, if assigned.
    async fn assigned_to(&self) -> Option<&str> {
        self.0.assigned_to.as_deref()
    }
    /// Analysts' tags.
    async fn custom_tags(&self) -> &[String] {
        &self.0.custom_tags
    }
    /// Tags the system applied.
    async fn system_tags(&self) -> &[String] {
        &self.0.system_tags
    }
    /// Note given when it was resolved.
    async fn resolving_comment(&self) -> Option<&str> {
        self.0.resolving_comment.as_deref()
    }
    /// 0-100, higher is more urgent.
    async fn priority_score(&self) -> i32 {
        self.0.priority_score
    }
    /// What makes up the priority score, e.g. "High severity (+40)".
    async fn priority_reasons(&self) -> &[String] {
        &self.0.priority_reasons
    }
    /// Number of alerts in it.
    async fn alert_count(&self) -> i32 {
        self.0.alert_count
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When anything about it last changed.
    async fn last_update_at(&self) -> DateTime<Utc> {
        self.0.last_update_at
    }
    /// When it was resolved.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// The incident it was merged into (status `REDIRECTED`).
    async fn redirect_incident_id(&self) -> Option<ID> {
        self.0.redirect_incident_id.map(|id| ID(id.to_string()))
    }
    /// Moves on every change to its own fields; pass it back as `expectedVersion`.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Who changed it last.
    async fn last_modified_by(&self) -> Option<&str> {
        self.0.last_modified_by.as_deref()
    }
    /// Whether the severity was set by hand (else it follows the alerts).
    async fn severity_overridden(&self) -> bool {
        self.0.severity_custom
    }
}
