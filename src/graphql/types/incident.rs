//! The `Incident` type: its own fields, and nested lists and counts resolved through the loaders.

use crate::auth::Role;
use crate::db::models;
use crate::db::queries::queue::Parent;
use crate::domain::enums::*;
use crate::error::GqlResult;
use crate::graphql::loaders;
use crate::graphql::require;
use crate::graphql::types::connection::{
    self, ActivityConnection, AlertConnection, CommentConnection, EvidenceConnection,
};
use crate::graphql::types::summary::{alert_status_counts, severity_counts, AlertStatusCount, SeverityCount};
use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;

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
    /// Its alerts, oldest first (default page 50, at most 100).
    #[graphql(
        complexity = "connection::complexity(first, connection::DEFAULT_NESTED_PAGE, child_complexity)"
    )]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<AlertConnection> {
        require(ctx, Role::Reader)?;
        connection::alerts_of_incident(ctx, &self.0.tenant_id, self.0.id, first, after).await
    }
    /// Evidence of all its alerts, one entry per entity (merged by `entityKey`: every role, the alerts
    /// naming it, the strongest verdict, the latest data), in order of first appearance (default page
    /// 50, at most 100). `kind` keeps only those kinds.
    #[graphql(
        complexity = "connection::complexity(first, connection::DEFAULT_NESTED_PAGE, child_complexity)"
    )]
    async fn evidence(
        &self,
        ctx: &Context<'_>,
        kind: Option<Vec<EvidenceKind>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<EvidenceConnection> {
        require(ctx, Role::Reader)?;
        connection::evidence_of_incident(
            ctx,
            &self.0.tenant_id,
            self.0.id,
            kind.unwrap_or_default(),
            first,
            after,
        )
        .await
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
        connection::comments_of(ctx, &self.0.tenant_id, Parent::incident(self.0.id), first, after).await
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
        connection::activity_of(ctx, &self.0.tenant_id, Parent::incident(self.0.id), first, after).await
    }
    /// Its remediation actions, newest first (default page 50, at most 100). `status`: only these (its
    /// pending ones: `[PENDING]`).
    #[graphql(
        complexity = "connection::complexity(first, connection::DEFAULT_NESTED_PAGE, child_complexity)"
    )]
    async fn actions(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<ActionStatus>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<connection::ActionConnection> {
        require(ctx, Role::Reader)?;
        connection::actions_of_incident(ctx, &self.0, status.unwrap_or_default(), first, after).await
    }
    /// How many of its remediation actions wait for a decision.
    async fn pending_action_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        require(ctx, Role::Reader)?;
        let key_of = |t: &str, m: loaders::Member| {
            Some(loaders::PendingActionCountKey { tenant: t.to_string(), incident: m.id })
        };
        let (n, _) = loaders::loaders(ctx)
            .load_with_siblings(
                loaders::SetKind::Incident,
                &self.0.tenant_id,
                loaders::Member::incident(&self.0),
                loaders::Memo::PendingActions,
                key_of,
                |_, _| None,
            )
            .await?;
        Ok(n.unwrap_or(0))
    }
    /// Distinct mailboxes (recipients and mailbox or user entities) its alerts name.
    async fn impacted_mailboxes(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        require(ctx, Role::Reader)?;
        Ok(loaders::loaders(ctx).impacted_mailboxes(&self.0.tenant_id, self.0.id).await?)
    }
    /// Its alerts per status, every status listed.
    async fn alerts_by_status(&self, ctx: &Context<'_>) -> GqlResult<Vec<AlertStatusCount>> {
        Ok(alert_status_counts(&self.rollup(ctx).await?.by_status))
    }
    /// Its alerts per severity, every severity listed (most severe first).
    async fn alerts_by_severity(&self, ctx: &Context<'_>) -> GqlResult<Vec<SeverityCount>> {
        Ok(severity_counts(&self.rollup(ctx).await?.by_severity))
    }
    /// Service sources of its alerts (products), sorted.
    async fn service_sources(&self, ctx: &Context<'_>) -> GqlResult<Vec<String>> {
        Ok(self.rollup(ctx).await?.service_sources.clone())
    }
    /// Detection sources of its alerts, sorted.
    async fn detection_sources(&self, ctx: &Context<'_>) -> GqlResult<Vec<String>> {
        Ok(self.rollup(ctx).await?.detection_sources.clone())
    }
    /// The incident it was merged into (status `REDIRECTED`).
    async fn redirect_incident(&self, ctx: &Context<'_>) -> GqlResult<Option<Incident>> {
        require(ctx, Role::Reader)?;
        Ok(loaders::loaders(ctx).redirect_target(&self.0).await?.map(Incident))
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

impl Incident {
    async fn rollup(&self, ctx: &Context<'_>) -> GqlResult<Arc<loaders::Rollup>> {
        require(ctx, Role::Reader)?;
        Ok(loaders::loaders(ctx).rollup(&self.0.tenant_id, self.0.id).await?)
    }
}
