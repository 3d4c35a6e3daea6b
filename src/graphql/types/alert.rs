//! The `Alert` type, its correlation explanation, and its nested fields (through the loaders).

use crate::auth::Role;
use crate::db::models;
use crate::db::queries::queue::Parent;
use crate::domain::enums::*;
use crate::error::GqlResult;
use crate::graphql::loaders;
use crate::graphql::require;
use crate::graphql::types::connection::{self, ActivityConnection, CommentConnection};
use crate::graphql::types::evidence::Evidence;
use crate::graphql::types::incident::Incident;
use crate::ingest::validate::MAX_EVIDENCE;
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An alert from a detection source.
pub struct Alert(pub models::Alert);

/// An alert's evidence list is capped at ingestion, not paged: its cap is its page.
const EVIDENCE_CAP: i64 = MAX_EVIDENCE as i64;

/// A correlation key.
#[derive(SimpleObject, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CorrelationKey {
    /// Key kind.
    pub kind: KeyKind,
    /// Normalised value.
    pub value: String,
}

/// A key of the alert that took no part in correlation, and why.
#[derive(SimpleObject, Serialize, Deserialize, Clone, Debug)]
pub struct SkippedKey {
    /// Key kind.
    pub kind: KeyKind,
    /// Normalised value.
    pub value: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why the alert is in its incident.
#[derive(SimpleObject)]
pub struct Correlation {
    /// How it got there.
    pub kind: CorrelationKind,
    /// The keys it shared with the incident's alerts.
    pub matched_keys: Vec<CorrelationKey>,
    /// Its keys that did not correlate, and why.
    pub skipped_keys: Vec<SkippedKey>,
    /// When it was placed.
    pub at: DateTime<Utc>,
    /// The incident it was placed in.
    pub incident_id: ID,
}

#[Object]
impl Alert {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The source's own id (idempotency key per tenant and service source).
    async fn provider_alert_id(&self) -> &str {
        &self.0.provider_alert_id
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Severity.
    async fn severity(&self) -> Severity {
        self.0.severity
    }
    /// Status.
    async fn status(&self) -> AlertStatus {
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
    /// Owner (a UPN, or `Automation` while an investigation works it).
    async fn assigned_to(&self) -> Option<&str> {
        self.0.assigned_to.as_deref()
    }
    /// MITRE tactic.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// MITRE techniques, e.g. T1566.002.
    async fn mitre_techniques(&self) -> &[String] {
        &self.0.mitre_techniques
    }
    /// Product that owns the alert.
    async fn service_source(&self) -> &str {
        &self.0.service_source
    }
    /// Technology that detected it.
    async fn detection_source(&self) -> Option<&str> {
        self.0.detection_source.as_deref()
    }
    /// The alert policy that fired.
    async fn alert_policy(&self) -> Option<&str> {
        self.0.alert_policy.as_deref()
    }
    /// State of the automated investigation of this alert.
    async fn investigation_state(&self) -> Option<&str> {
        self.0.investigation_state.as_deref()
    }
    /// First activity.
    async fn first_activity_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_activity_at
    }
    /// Last activity.
    async fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_activity_at
    }
    /// When Parapet first received it.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn last_update_at(&self) -> DateTime<Utc> {
        self.0.last_update_at
    }
    /// When it was resolved.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// Id of its incident.
    async fn incident_id(&self) -> ID {
        ID(self.0.incident_id.to_string())
    }
    /// Its incident.
    async fn incident(&self, ctx: &Context<'_>) -> GqlResult<Option<Incident>> {
        require(ctx, Role::Reader)?;
        Ok(loaders::loaders(ctx).incident_of_alert(&self.0).await?.map(Incident))
    }
    /// Its evidence, oldest first: the first `first` items (default all, which ingestion caps at 200).
    /// A list rather than a connection because of that cap; it counts in the query's complexity by
    /// `first`, or by the cap when `first` is not given.
    #[graphql(
        complexity = "connection::complexity_within(first, EVIDENCE_CAP, EVIDENCE_CAP, child_complexity)"
    )]
    async fn evidence(&self, ctx: &Context<'_>, first: Option<i32>) -> GqlResult<Vec<Evidence>> {
        require(ctx, Role::Reader)?;
        let limit = connection::page_size_within(first, EVIDENCE_CAP, EVIDENCE_CAP)?;
        let rows = loaders::loaders(ctx).alert_evidence(&self.0.tenant_id, self.0.id).await?;
        Ok(rows.iter().take(usize::try_from(limit).unwrap_or(0)).map(Evidence::from_row).collect())
    }
    /// Comments, oldest first (default page 50, at most 100).
    #[graphql(
        complexity = "connection::complexity(first, connection::DEFAULT_NESTED_PAGE, child_complexity)"
    )]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<CommentConnection> {
        require(ctx, Role::Reader)?;
        connection::comments_of(ctx, &self.0.tenant_id, Parent::alert(self.0.id), first, after).await
    }
    /// Activity log, newest first (default page 50, at most 100).
    #[graphql(
        complexity = "connection::complexity(first, connection::DEFAULT_NESTED_PAGE, child_complexity)"
    )]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<ActivityConnection> {
        require(ctx, Role::Reader)?;
        connection::activity_of(ctx, &self.0.tenant_id, Parent::alert(self.0.id), first, after).await
    }
    /// Which incident it joined, why, and when.
    async fn correlation(&self) -> Correlation {
        Correlation {
            kind: self.0.correlation_kind,
            matched_keys: serde_json::from_value(self.0.correlation_matched.clone()).unwrap_or_default(),
            skipped_keys: serde_json::from_value(self.0.correlation_skipped.clone()).unwrap_or_default(),
            at: self.0.correlated_at,
            incident_id: ID(self.0.incident_id.to_string()),
        }
    }
}
