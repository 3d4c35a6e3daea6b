//! Manual incident operations: create an incident from alerts, link alerts to an incident, merge
//! incidents. Role `analyst` or higher. The resolvers check the role, parse ids and call
//! `crate::incidents::manual`, where the rules live.

use crate::auth::Role;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::incident::Incident;
use crate::graphql::{parse_id, require, state};
use crate::incidents::manual;
use async_graphql::{Context, InputObject, Object, ID};
use uuid::Uuid;

/// Mutation part for manual incident operations.
#[derive(Default)]
pub struct IncidentsMutation;

/// A new incident made of chosen alerts.
#[derive(InputObject)]
pub struct CreateIncidentInput {
    /// The alerts to move into it (at least one, at most 500; duplicates count once). They leave their
    /// incidents; one left with no alerts redirects to the new incident.
    pub alert_ids: Vec<ID>,
    /// Its name, kept over the generated one (at most 256 characters). Omit it for a generated name.
    pub display_name: Option<String>,
    /// Why (1 to 30,000 characters); written to the activity log and as a comment on the new incident.
    pub comment: String,
}

/// Parses a list of ids; too long a list is refused before parsing it.
fn parse_ids(ids: &[ID], max: usize, what: &str) -> Result<Vec<Uuid>, AppError> {
    if ids.len() > max {
        return Err(AppError::bad(format!("at most {max} {what} at once ({} given)", ids.len())));
    }
    ids.iter().map(parse_id).collect()
}

#[Object]
impl IncidentsMutation {
    /// Creates an incident holding the given alerts (moved from wherever they are; their correlation
    /// kind becomes `MANUAL`) and returns it. Its severity, name (unless `displayName` is given) and
    /// priority follow its alerts; every incident they left is recomputed, resolved if its remaining
    /// alerts are all resolved, or redirected to the new incident if none remains.
    async fn create_incident(&self, ctx: &Context<'_>, input: CreateIncidentInput) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        let ids = parse_ids(&input.alert_ids, manual::MAX_ALERTS, "alerts")?;
        let pool = &state(ctx).pool;
        let row = manual::create_incident(pool, caller, &ids, input.display_name.as_deref(), &input.comment)
            .await?;
        Ok(Incident(row))
    }

    /// Moves alerts into an open incident (their correlation kind becomes `MANUAL`) and returns it.
    /// Alerts already there are left alone. `CONFLICT` when the incident is resolved or redirected.
    /// Incidents the alerts left are recomputed, resolved if their remaining alerts are all resolved, or
    /// redirected to this one if none remains.
    async fn link_alerts_to_incident(
        &self,
        ctx: &Context<'_>,
        incident_id: ID,
        alert_ids: Vec<ID>,
        comment: String,
    ) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        let incident_id = parse_id(&incident_id)?;
        let ids = parse_ids(&alert_ids, manual::MAX_ALERTS, "alerts")?;
        Ok(Incident(manual::link_alerts(&state(ctx).pool, caller, incident_id, &ids, &comment).await?))
    }

    /// Merges 2 to 5 open incidents whose owner, classification and determination are equal or empty.
    /// The system picks the one that survives (most alerts, then oldest); the others move their alerts
    /// (correlation kind `MERGED`) and tags into it and become `REDIRECTED` to it. Returns the survivor.
    async fn merge_incidents(
        &self,
        ctx: &Context<'_>,
        incident_ids: Vec<ID>,
        comment: String,
    ) -> GqlResult<Incident> {
        let caller = require(ctx, Role::Analyst)?;
        // Duplicates count once (the domain checks the distinct count); refuse absurd lists unparsed.
        if incident_ids.len() > 10 * manual::MAX_MERGE {
            return Err(AppError::bad(format!(
                "at most {} incidents can be merged at once ({} given)",
                manual::MAX_MERGE,
                incident_ids.len()
            ))
            .into());
        }
        let ids = incident_ids.iter().map(parse_id).collect::<Result<Vec<_>, _>>()?;
        Ok(Incident(manual::merge_incidents(&state(ctx).pool, caller, &ids, &comment).await?))
    }
}
