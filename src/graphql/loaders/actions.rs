//! Nested reads of remediation actions: an incident's pending-action count and first page of actions
//! (batched over the incident's page through its sibling set), and the actions that targeted a copy.

use super::{group, pages, ChildPage, QueueLoader};
use crate::db::models;
use crate::db::queries::actions as q;
use crate::domain::enums::ActionStatus;
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Most actions a copy lists.
pub const EMAIL_ACTIONS_CAP: i64 = 100;

/// The number of an incident's pending actions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingActionCountKey {
    /// Tenant.
    pub tenant: String,
    /// Incident.
    pub incident: Uuid,
}

impl Loader<PendingActionCountKey> for QueueLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[PendingActionCountKey],
    ) -> Result<HashMap<PendingActionCountKey, i64>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.incident).collect();
            let found: HashMap<Uuid, i64> = q::pending_counts(&mut conn, &tenant, &ids).await?.into_iter().collect();
            for k in ks {
                let n = found.get(&k.incident).copied().unwrap_or(0);
                out.insert(k, n);
            }
        }
        Ok(out)
    }
}

/// The first `first` actions of an incident (newest first), with some statuses (all when empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentActionsKey {
    /// Tenant.
    pub tenant: String,
    /// Incident.
    pub incident: Uuid,
    /// Page size.
    pub first: i64,
    /// Statuses (sorted, distinct).
    pub statuses: Vec<ActionStatus>,
}

impl Loader<IncidentActionsKey> for QueueLoader {
    type Value = Arc<ChildPage<models::Action>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[IncidentActionsKey],
    ) -> Result<HashMap<IncidentActionsKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, first, statuses), ks) in group(keys, |k| (k.tenant.clone(), k.first, k.statuses.clone())) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.incident).collect();
            let rows = q::of_incidents(&mut conn, &tenant, &ids, &statuses, first + 1).await?;
            out.extend(pages(&ks, |k| k.incident, first, rows, |a| a.incident_id));
        }
        Ok(out)
    }
}

/// The newest actions that targeted a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailActionsKey {
    /// Tenant.
    pub tenant: String,
    /// Copy id.
    pub email_id: Uuid,
}

impl Loader<EmailActionsKey> for QueueLoader {
    type Value = Arc<Vec<models::Action>>;
    type Error = AppError;

    async fn load(&self, keys: &[EmailActionsKey]) -> Result<HashMap<EmailActionsKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out: HashMap<EmailActionsKey, Vec<models::Action>> = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.email_id).collect();
            for (email_id, a) in q::of_emails(&mut conn, &tenant, &ids, EMAIL_ACTIONS_CAP).await? {
                out.entry(EmailActionsKey { tenant: tenant.clone(), email_id }).or_default().push(a);
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}
