//! Nested reads of remediation actions: an incident's pending-action count and first page of actions
//! (batched over the incident's page through its sibling set), and the actions that targeted a copy.

use super::{group, pages, ChildPage, IncidentKey, Loaders, Member, Memo, QueueLoader, SetKind};
use crate::db::models;
use crate::db::queries::actions as q;
use crate::domain::enums::{ActionOutcome, ActionStatus};
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// A bit per value of `all` that `some` holds (a memo key for a set of enum values).
pub fn mask<T: PartialEq>(all: &[T], some: &[T]) -> u32 {
    some.iter().fold(0, |m, s| m | all.iter().position(|x| x == s).map_or(0, |i| 1 << i))
}

impl Loaders {
    /// The incident of action `a`, loaded with those of its page.
    pub async fn incident_of_action(&self, a: &models::Action) -> Result<Option<models::Incident>, AppError> {
        let tenant = a.tenant_id.as_str();
        self.load_with_siblings(
            SetKind::Action,
            tenant,
            Member::action(a),
            Memo::ActionIncident,
            |t, m| m.link.map(|id| IncidentKey { tenant: t.to_string(), id }),
            |l, found: &HashMap<IncidentKey, models::Incident>| {
                Some(l.register_incidents(tenant, found.values()))
            },
        )
        .await
        .map(|(incident, _)| incident)
    }

    /// The first `first` targets of action `a` with `outcomes` (sorted, distinct; all when empty),
    /// loaded with those of its page.
    pub async fn targets_of_action(
        &self,
        a: &models::Action,
        first: i64,
        outcomes: &[ActionOutcome],
    ) -> Result<Arc<ChildPage<q::TargetNow>>, AppError> {
        let memo = Memo::ActionTargets(first, mask(ActionOutcome::ALL, outcomes));
        let key_of = |t: &str, m: Member| {
            Some(ActionTargetsKey { tenant: t.to_string(), action: m.id, first, outcomes: outcomes.to_vec() })
        };
        let (page, _) = self
            .load_with_siblings(SetKind::Action, &a.tenant_id, Member::action(a), memo, key_of, |_, _| None)
            .await?;
        Ok(page.unwrap_or_default())
    }
}

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
            let found: HashMap<Uuid, i64> =
                q::pending_counts(&mut conn, &tenant, &ids).await?.into_iter().collect();
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
        for ((tenant, first, statuses), ks) in
            group(keys, |k| (k.tenant.clone(), k.first, k.statuses.clone()))
        {
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

    async fn load(
        &self,
        keys: &[EmailActionsKey],
    ) -> Result<HashMap<EmailActionsKey, Self::Value>, AppError> {
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

/// The first `first` targets of an action (by copy id), with some outcomes (all when empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionTargetsKey {
    /// Tenant.
    pub tenant: String,
    /// Action.
    pub action: Uuid,
    /// Page size.
    pub first: i64,
    /// Outcomes (sorted, distinct).
    pub outcomes: Vec<ActionOutcome>,
}

impl Loader<ActionTargetsKey> for QueueLoader {
    type Value = Arc<ChildPage<q::TargetNow>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ActionTargetsKey],
    ) -> Result<HashMap<ActionTargetsKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for ((tenant, first, outcomes), ks) in
            group(keys, |k| (k.tenant.clone(), k.first, k.outcomes.clone()))
        {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.action).collect();
            let rows = q::targets(&mut conn, &tenant, &ids, &outcomes, None, first + 1).await?;
            out.extend(pages(&ks, |k| k.action, first, rows, |t| Some(t.target.action_id)));
        }
        Ok(out)
    }
}
