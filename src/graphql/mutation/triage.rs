//! Triage mutations: update incidents (one or many) and alerts, tags, comments. Role `analyst` or higher.
//! The resolvers check the role, parse ids and call `crate::triage`, where the rules live.

use crate::auth::Role;
use crate::domain::enums::{AlertStatus, Classification, Determination, IncidentStatus, Severity};
use crate::error::{AppError, GqlResult};
use crate::graphql::types::{alert::Alert, comment::Comment, incident::Incident};
use crate::graphql::{parse_id, require, state};
use crate::triage::{self, AlertPatch, IncidentPatch};
use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};

/// Mutation part for triage.
#[derive(Default)]
pub struct TriageMutation;

/// Changes to an incident. Omitted fields stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateIncidentInput {
    /// `ACTIVE`, `IN_PROGRESS` or `RESOLVED` (`REDIRECTED` is set by merges only). Resolving resolves the
    /// incident's open alerts.
    pub status: Option<IncidentStatus>,
    /// Sets the severity by hand; `null` drops the override so it follows the alerts (their highest).
    pub severity: MaybeUndefined<Severity>,
    /// Owner's UPN; also assigned to every alert of the incident. `null` unassigns.
    pub assigned_to: MaybeUndefined<String>,
    /// Classification; the resulting classification/determination pair must fit.
    pub classification: Option<Classification>,
    /// Determination; needs a classification it fits.
    pub determination: Option<Determination>,
    /// New name, kept over the generated one.
    pub display_name: Option<String>,
    /// Note on the resolution (at most 30,000 characters); `null` clears it.
    pub resolving_comment: MaybeUndefined<String>,
}

impl From<UpdateIncidentInput> for IncidentPatch {
    fn from(i: UpdateIncidentInput) -> Self {
        IncidentPatch {
            status: i.status,
            severity: i.severity.into(),
            assigned_to: i.assigned_to.into(),
            classification: i.classification,
            determination: i.determination,
            display_name: i.display_name,
            resolving_comment: i.resolving_comment.into(),
        }
    }
}

/// Changes to an alert. Omitted fields stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateAlertInput {
    /// `NEW`, `IN_PROGRESS` or `RESOLVED`. Resolving the last open alert resolves the incident;
    /// reopening an alert of a resolved incident reopens it.
    pub status: Option<AlertStatus>,
    /// Owner's UPN; `null` unassigns.
    pub assigned_to: MaybeUndefined<String>,
    /// Classification (the alert's own, independent of the incident's).
    pub classification: Option<Classification>,
    /// Determination; needs a classification it fits.
    pub determination: Option<Determination>,
}

impl From<UpdateAlertInput> for AlertPatch {
    fn from(i: UpdateAlertInput) -> Self {
        AlertPatch {
            status: i.status,
            assigned_to: i.assigned_to.into(),
            classification: i.classification,
            determination: i.determination,
        }
    }
}

#[Object]
impl TriageMutation {
    /// Updates an incident. With `expectedVersion`, fails with `CONFLICT` (changing nothing) when the
    /// incident has moved on. An update that changes nothing keeps the version.
    async fn update_incident(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateIncidentInput,
        expected_version: Option<i32>,
    ) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let row = triage::update_incident(&mut conn, caller, id, input.into(), expected_version).await?;
        Ok(Incident(row))
    }

    /// Applies one update to up to 100 incidents, all or nothing: any failure changes none and names the
    /// failing id. Returns them in the order given.
    async fn update_incidents(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        input: UpdateIncidentInput,
    ) -> GqlResult<Vec<Incident>> {
        let caller = require(ctx, Role::Analyst)?;
        if ids.len() > triage::MAX_BULK {
            return Err(AppError::bad(format!(
                "at most {} incidents at once ({} given)",
                triage::MAX_BULK,
                ids.len()
            ))
            .into());
        }
        let ids = ids.iter().map(parse_id).collect::<Result<Vec<_>, _>>()?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = triage::update_incidents(&mut conn, caller, &ids, input.into()).await?;
        Ok(rows.into_iter().map(Incident).collect())
    }

    /// Adds custom tags (trimmed; duplicates ignoring case skipped; at most 50 per incident, 100
    /// characters each).
    async fn add_incident_tags(&self, ctx: &Context<'_>, id: ID, tags: Vec<String>) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(Incident(triage::add_incident_tags(&mut conn, caller, id, &tags).await?))
    }

    /// Removes custom tags (matched ignoring case).
    async fn remove_incident_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tags: Vec<String>,
    ) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(Incident(triage::remove_incident_tags(&mut conn, caller, id, &tags).await?))
    }

    /// Comments on an incident (1 to 30,000 characters). Does not change its version.
    async fn add_incident_comment(&self, ctx: &Context<'_>, id: ID, comment: String) -> GqlResult<Comment> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(Comment(triage::add_incident_comment(&mut conn, caller, id, &comment).await?))
    }

    /// Updates an alert; its incident follows (resolved with its last open alert, reopened with any).
    async fn update_alert(&self, ctx: &Context<'_>, id: ID, input: UpdateAlertInput) -> GqlResult<Alert> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(Alert(triage::update_alert(&mut conn, caller, id, input.into()).await?))
    }

    /// Comments on an alert (1 to 30,000 characters).
    async fn add_alert_comment(&self, ctx: &Context<'_>, id: ID, comment: String) -> GqlResult<Comment> {
        let caller = require(ctx, Role::Analyst)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(Comment(triage::add_alert_comment(&mut conn, caller, id, &comment).await?))
    }
}
