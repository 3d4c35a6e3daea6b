//! The `Action` type (a remediation action, its preview and its targets), and the inputs that propose,
//! filter and order actions.

use crate::actions::propose::Proposal;
use crate::db::models;
use crate::db::queries::actions::{self as q, ActionFilter};
use crate::domain::actions::{satisfied, LocationCount as DomainLocationCount, Preview};
use crate::domain::enums::*;
use crate::error::{AppError, AppResult, GqlResult};
use crate::explorer::filter::EmailFilter;
use crate::graphql::loaders::{loaders, ChildPage};
use crate::graphql::types::connection::{
    decode_cursor, encode_cursor, page_size, split_page, ActionTargetConnection, TotalCount,
    DEFAULT_NESTED_PAGE,
};
use crate::graphql::types::email::Email;
use crate::graphql::types::filters::OrderDirection;
use crate::graphql::types::incident::Incident;
use crate::graphql::{parse_id, state};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A remediation action on e-mail copies: proposed, decided, run, with one outcome per copy.
pub struct Action(pub models::Action);

/// A location and how many copies are there.
#[derive(SimpleObject, Clone, Debug)]
pub struct LocationCount {
    /// Delivery location.
    pub location: DeliveryLocation,
    /// Copies there.
    pub count: i64,
}

fn location_counts(v: &[DomainLocationCount]) -> Vec<LocationCount> {
    v.iter().map(|l| LocationCount { location: l.location, count: l.count }).collect()
}

/// The blast radius of an action, as it was when proposed: what it acts on, and what it leaves out.
pub struct ActionPreview(pub Preview);

#[Object]
impl ActionPreview {
    /// Copies the selection named (ids given, or copies the filter matched).
    async fn selected(&self) -> i64 {
        self.0.selected
    }
    /// Copies the action acts on (its targets).
    async fn target_count(&self) -> i64 {
        self.0.targets
    }
    /// Distinct mailboxes (recipients) among the targets.
    async fn mailbox_count(&self) -> i64 {
        self.0.mailboxes
    }
    /// Targets by their location when proposed.
    async fn by_location(&self) -> Vec<LocationCount> {
        location_counts(&self.0.by_location)
    }
    /// Copies left out because they were already at the destination.
    async fn already_in_destination(&self) -> i64 {
        self.0.already_in_destination
    }
    /// Copies left out because the action cannot reach them (hard-deleted, on-premises, failed, dropped,
    /// unknown, or quarantined when the action is not a release), by location.
    async fn not_remediable(&self) -> Vec<LocationCount> {
        location_counts(&self.0.not_remediable)
    }
    /// Copies left out in all: already there, out of reach, or ids not found.
    async fn excluded_count(&self) -> i64 {
        self.0.already_in_destination
            + self.0.not_remediable.iter().map(|l| l.count).sum::<i64>()
            + self.0.not_found
    }
    /// Ids named that are not copies of the tenant's 30-day store.
    async fn not_found(&self) -> i64 {
        self.0.not_found
    }
}

#[Object]
impl Action {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What it does to each copy.
    #[graphql(name = "type")]
    async fn action_type(&self) -> ActionType {
        self.0.action_type
    }
    /// Where it came from: `MANUAL` (an incident), `EXPLORER` (hunting), `AUTOMATED` (an investigation).
    async fn source(&self) -> ActionSource {
        self.0.source
    }
    /// Where it stands.
    async fn status(&self) -> ActionStatus {
        self.0.status
    }
    /// The incident it was taken from.
    async fn incident_id(&self) -> Option<ID> {
        self.0.incident_id.map(|id| ID(id.to_string()))
    }
    /// The incident it was taken from, as it is now.
    async fn incident(&self, ctx: &Context<'_>) -> GqlResult<Option<Incident>> {
        if self.0.incident_id.is_none() {
            return Ok(None);
        }
        Ok(loaders(ctx).incident_of_action(&self.0).await?.map(Incident))
    }
    /// Who proposed it (UPN).
    async fn proposed_by(&self) -> &str {
        &self.0.proposed_by
    }
    /// Their display name.
    async fn proposed_by_name(&self) -> Option<&str> {
        self.0.proposed_by_name.as_deref()
    }
    /// The proposer's comment.
    async fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }
    /// Whether a responder other than the proposer must decide (the four-eyes rule when proposed).
    async fn four_eyes(&self) -> bool {
        self.0.four_eyes
    }
    /// Who approved, rejected or cancelled it.
    async fn decided_by(&self) -> Option<&str> {
        self.0.decided_by.as_deref()
    }
    /// When.
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    /// The decision's comment.
    async fn decision_comment(&self) -> Option<&str> {
        self.0.decision_comment.as_deref()
    }
    /// What it acts on and leaves out, as found when proposed.
    async fn preview(&self) -> GqlResult<ActionPreview> {
        let p: Preview = serde_json::from_value(self.0.preview.clone())
            .map_err(|e| AppError::Internal(format!("stored preview of action {}: {e}", self.0.id)))?;
        Ok(ActionPreview(p))
    }
    /// Copies it acts on.
    async fn target_count(&self) -> i32 {
        self.0.target_count
    }
    /// While it waits: targets already at the destination (all of them ends it `ALREADY_REMEDIATED`).
    async fn at_destination_count(&self) -> i32 {
        self.0.at_destination
    }
    /// Targets moved.
    async fn success_count(&self) -> i32 {
        self.0.success_count
    }
    /// Targets that could not be moved.
    async fn failed_count(&self) -> i32 {
        self.0.failed_count
    }
    /// Targets already at the destination when it ran (or when it ended `ALREADY_REMEDIATED`).
    async fn already_in_destination_count(&self) -> i32 {
        self.0.already_count
    }
    /// Targets no longer in the store when it ran.
    async fn not_found_count(&self) -> i32 {
        self.0.not_found_count
    }
    /// Targets without an outcome yet.
    async fn open_target_count(&self) -> i32 {
        match self.0.status {
            ActionStatus::Approved | ActionStatus::Running | ActionStatus::Pending => {
                self.0.target_count
                    - self.0.success_count
                    - self.0.failed_count
                    - self.0.already_count
                    - self.0.not_found_count
            }
            _ => 0,
        }
    }
    /// The copies it acts on, with their outcomes (by copy id). `outcome`: only these. `first`: default
    /// 50, at most 100.
    async fn targets(
        &self,
        ctx: &Context<'_>,
        outcome: Option<Vec<ActionOutcome>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<ActionTargetConnection> {
        let limit = page_size(first, DEFAULT_NESTED_PAGE)?;
        let scope = format!("action.targets:{}", self.0.id);
        let after_id = after.as_deref().map(|c| decode_cursor(&scope, c)).transpose()?.map(|k| k.id);
        let mut outcomes = outcome.unwrap_or_default();
        outcomes.sort_unstable();
        outcomes.dedup();
        let tenant = self.0.tenant_id.as_str();
        let page = match after_id {
            None => loaders(ctx).targets_of_action(&self.0, limit, &outcomes).await?,
            Some(a) => {
                let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
                let rows = q::targets(&mut conn, tenant, &[self.0.id], &outcomes, Some(a), limit + 1)
                    .await
                    .map_err(AppError::from)?;
                let (rows, has_next) = split_page(rows, limit);
                Arc::new(ChildPage { rows, has_next })
            }
        };
        let action_type = self.0.action_type;
        Ok(ActionTargetConnection::new(
            page.rows.clone(),
            page.has_next,
            after.is_some(),
            |t| encode_cursor(&scope, 0, t.target.email_id),
            |t| ActionTarget { row: t.target, current: t.current_location, action_type },
            if outcomes.is_empty() {
                TotalCount::Known(i64::from(self.0.target_count))
            } else {
                TotalCount::ActionTargets {
                    tenant: tenant.to_string(),
                    action: self.0.id,
                    outcomes: Arc::new(outcomes),
                }
            },
        ))
    }
    /// When a pending action expires (7 days after it was proposed).
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was proposed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When it started running.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When it ended (completed, failed, rejected, cancelled, expired, already remediated).
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// `REMOVE_INBOX_RULE`: the mailbox whose rule it removes.
    async fn mailbox(&self) -> Option<&str> {
        self.0.mailbox.as_deref()
    }
    /// `REMOVE_INBOX_RULE`: the rule's name.
    async fn rule_name(&self) -> Option<&str> {
        self.0.rule_name.as_deref()
    }
    /// `REMOVE_INBOX_RULE`: the rule as it was read at proposal (script, conditions, actions, and why
    /// it looked suspicious), as JSON.
    async fn rule(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.rule.clone().map(async_graphql::Json)
    }
    /// `REMOVE_INBOX_RULE`: tries on the mail server so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// `REMOVE_INBOX_RULE`: why its last try failed, or what it found (the rule already gone).
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

/// A copy an action acts on, and what running it did.
pub struct ActionTarget {
    row: models::ActionTarget,
    current: Option<DeliveryLocation>,
    action_type: ActionType,
}

#[Object]
impl ActionTarget {
    /// The copy's id.
    async fn email_id(&self) -> ID {
        ID(self.row.email_id.to_string())
    }
    /// The copy, while it is in the 30-day store.
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<Email>> {
        let key = crate::graphql::loaders::EmailByIdKey {
            tenant: self.row.tenant_id.clone(),
            id: self.row.email_id,
        };
        Ok(loaders(ctx).data().load_one(key).await?.map(Email::new))
    }
    /// Its network message id.
    async fn network_message_id(&self) -> &str {
        &self.row.network_message_id
    }
    /// Its recipient (the mailbox).
    async fn recipient(&self) -> &str {
        &self.row.recipient
    }
    /// When it was received.
    async fn received_at(&self) -> DateTime<Utc> {
        self.row.received_at
    }
    /// Where it was when the action was proposed.
    async fn location_at_proposal(&self) -> DeliveryLocation {
        self.row.location_at_proposal
    }
    /// Where it is now (null: no longer in the store).
    async fn current_location(&self) -> Option<DeliveryLocation> {
        self.current
    }
    /// Whether it is now where the action would put it.
    async fn at_destination(&self) -> bool {
        self.current.is_some_and(|l| satisfied(self.action_type, l))
    }
    /// What running the action did to it (null: not run yet).
    async fn outcome(&self) -> Option<ActionOutcome> {
        self.row.outcome
    }
    /// Where it was when the action ran.
    async fn from_location(&self) -> Option<DeliveryLocation> {
        self.row.from_location
    }
    /// Where the action put it (moves only).
    async fn to_location(&self) -> Option<DeliveryLocation> {
        self.row.to_location
    }
    /// When its outcome was written.
    async fn executed_at(&self) -> Option<DateTime<Utc>> {
        self.row.executed_at
    }
    /// Tries on the tenant's mail server so far (0 in the built-in store).
    async fn attempts(&self) -> i32 {
        self.row.attempts
    }
    /// Why the last try on the mail server failed (the target stays open for the next, 5 at most), or
    /// why it ended `FAILED` or `NOT_FOUND`.
    async fn error(&self) -> Option<&str> {
        self.row.error.as_deref()
    }
}

/// What to remediate and how: `emailIds` (at most 1,000) or every copy `filter` matches (at most
/// 200,000; more is refused with the count).
#[derive(InputObject, Clone, Debug)]
pub struct RemediateEmailsInput {
    /// The copies to act on.
    pub email_ids: Option<Vec<ID>>,
    /// Or every copy this Explorer filter matches now.
    pub filter: Option<EmailFilter>,
    /// What to do.
    pub action: ActionType,
    /// The incident the action is taken from (source `MANUAL`; without it `EXPLORER`).
    pub incident_id: Option<ID>,
    /// Why (shown to approvers; at most 10,000 characters).
    pub comment: Option<String>,
}

impl RemediateEmailsInput {
    /// The proposal, ids parsed.
    pub fn proposal(self) -> AppResult<Proposal> {
        let email_ids =
            self.email_ids.map(|ids| ids.iter().map(parse_id).collect::<AppResult<Vec<_>>>()).transpose()?;
        Ok(Proposal {
            email_ids,
            filter: self.filter,
            action: self.action,
            incident_id: self.incident_id.as_ref().map(parse_id).transpose()?,
            comment: self.comment,
        })
    }
}

/// Narrows the action center; every field given applies.
#[derive(InputObject, Clone, Debug, Default)]
#[graphql(name = "ActionFilter")]
pub struct ActionFilterInput {
    /// Any of these statuses (the pending tab: `[PENDING]`).
    pub status: Option<Vec<ActionStatus>>,
    /// Any of these sources.
    pub source: Option<Vec<ActionSource>>,
    /// Any of these types.
    #[graphql(name = "type")]
    pub action_type: Option<Vec<ActionType>>,
    /// Of this incident.
    pub incident_id: Option<ID>,
    /// Proposed at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Proposed before.
    pub created_before: Option<DateTime<Utc>>,
}

impl ActionFilterInput {
    /// The database filter.
    pub fn filter(self) -> AppResult<ActionFilter> {
        for t in [self.created_after, self.created_before].into_iter().flatten() {
            if !crate::domain::time::in_range(t) {
                return Err(AppError::bad(format!("{t} is outside the dates this server accepts")));
            }
        }
        Ok(ActionFilter {
            statuses: self.status.unwrap_or_default(),
            sources: self.source.unwrap_or_default(),
            types: self.action_type.unwrap_or_default(),
            incident_id: self.incident_id.as_ref().map(parse_id).transpose()?,
            created_after: self.created_after,
            created_before: self.created_before,
        })
    }
}

/// What actions are ordered by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ActionOrderField {
    /// When proposed.
    #[default]
    CreatedAt,
}

/// The order of the action center (default: newest first).
#[derive(InputObject, Clone, Copy, Debug)]
pub struct ActionOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: ActionOrderField,
    /// Direction.
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}
