//! `ingestAlerts`: detection sources push alerts here (roles `ingestor` and `admin`).

use crate::auth::Role;
use crate::error::GqlResult;
use crate::graphql::{require, state};
use crate::ingest::input::AlertInput;
use crate::ingest::service::{ingest_alerts, ItemOutcome};
use async_graphql::{Context, Enum, Object, SimpleObject, ID};

/// What happened to one item.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum IngestStatus {
    /// A new alert.
    Created,
    /// An alert sent before under the same providerAlertId was updated.
    Updated,
    /// Refused; see `error`.
    Rejected,
}

/// The incident an ingested alert is in (an ingestor may read only its id).
#[derive(SimpleObject)]
pub struct IngestedIncident {
    /// Incident id.
    pub id: ID,
}

/// The alert an item became.
#[derive(SimpleObject)]
pub struct IngestedAlert {
    /// Alert id.
    pub id: ID,
    /// Its incident.
    pub incident: IngestedIncident,
}

/// One item of the result, in the order sent.
#[derive(SimpleObject)]
pub struct IngestItem {
    /// Position in the request.
    pub index: i32,
    /// Outcome.
    pub status: IngestStatus,
    /// The stored alert (null when rejected).
    pub alert: Option<IngestedAlert>,
    /// Why it was rejected.
    pub error: Option<String>,
}

/// Result of `ingestAlerts`.
#[derive(SimpleObject)]
pub struct IngestAlertsResult {
    /// Items stored (created or updated).
    pub accepted: i32,
    /// Items refused.
    pub rejected: i32,
    /// Per item, in the order sent.
    pub items: Vec<IngestItem>,
}

/// Mutation part for ingestion.
#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Pushes up to 500 alerts. Each is validated on its own: a bad item is reported in `items` and the
    /// good ones are committed, correlated, before the call returns. Re-sending a providerAlertId (same
    /// serviceSource) updates that alert.
    async fn ingest_alerts(
        &self,
        ctx: &Context<'_>,
        alerts: Vec<AlertInput>,
    ) -> GqlResult<IngestAlertsResult> {
        let caller = require(ctx, Role::Ingestor)?;
        let outcomes = ingest_alerts(&state(ctx).pool, caller, alerts).await?;
        let mut result =
            IngestAlertsResult { accepted: 0, rejected: 0, items: Vec::with_capacity(outcomes.len()) };
        for (index, o) in outcomes.into_iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            result.items.push(match o {
                ItemOutcome::Placed(p) => {
                    result.accepted += 1;
                    IngestItem {
                        index,
                        status: if p.created { IngestStatus::Created } else { IngestStatus::Updated },
                        alert: Some(IngestedAlert {
                            id: ID(p.alert_id.to_string()),
                            incident: IngestedIncident { id: ID(p.incident_id.to_string()) },
                        }),
                        error: None,
                    }
                }
                ItemOutcome::Rejected(reason) => {
                    result.rejected += 1;
                    IngestItem { index, status: IngestStatus::Rejected, alert: None, error: Some(reason) }
                }
            });
        }
        state(ctx).metrics.alerts_ingested(u64::from(result.accepted.unsigned_abs()));
        Ok(result)
    }
}
