//! Remediation: propose an action on e-mail copies (analysts and above), approve or reject it
//! (responders and above; under the four-eyes rule not its proposer), cancel it (its proposer).

use crate::actions::decide::{decide, Decision};
use crate::actions::propose::remediate_emails;
use crate::error::GqlResult;
use crate::graphql::types::action::{Action, RemediateEmailsInput};
use crate::graphql::{caller, parse_id, state};
use async_graphql::{Context, Object, ID};

/// Mutation part for actions.
#[derive(Default)]
pub struct ActionsMutation;

#[Object]
impl ActionsMutation {
    /// Proposes an action on the copies `emailIds` names, or on every copy `filter` matches, and returns
    /// it; it runs asynchronously once approved. Copies already at the destination or out of reach are
    /// left out and counted in `preview`; nothing left to act on is `BAD_USER_INPUT`. With the tenant's
    /// `fourEyes` on (the default) it stays `PENDING` until another responder approves; with it off a
    /// responder's own action is approved and queued at once.
    async fn remediate_emails(&self, ctx: &Context<'_>, input: RemediateEmailsInput) -> GqlResult<Action> {
        let caller = caller(ctx)?;
        Ok(Action(remediate_emails(&state(ctx).pool, caller, input.proposal()?).await?))
    }

    /// Proposes removing the inbox rule `ruleName` (as `mailboxRules` names it) from `mailbox`: a
    /// `REMOVE_INBOX_RULE` action under the same approval rules as e-mail actions. Once approved it
    /// rewrites the mailbox's active Sieve script without that rule and reactivates it; a rule already
    /// gone ends `ALREADY_IN_DESTINATION`. The rule must exist now (else `NOT_FOUND`); a second proposal
    /// while one waits is `CONFLICT`.
    async fn remove_inbox_rule(
        &self,
        ctx: &Context<'_>,
        mailbox: String,
        rule_name: String,
        incident_id: Option<ID>,
        comment: Option<String>,
    ) -> GqlResult<Action> {
        let caller = caller(ctx)?;
        let st = state(ctx);
        let incident_id = incident_id.as_ref().map(parse_id).transpose()?;
        let removal = crate::actions::rules::Removal { mailbox, rule_name, incident_id, comment };
        // Boxed: the ManageSieve exchange makes a large future, kept off the caller's stack.
        Ok(Action(Box::pin(crate::actions::rules::propose(&st.pool, &st.mail, caller, removal)).await?))
    }

    /// Approves a pending action and queues it to run. A decided, ended or expired action is `CONFLICT`;
    /// approving one's own action under the four-eyes rule is `FORBIDDEN`.
    async fn approve_action(&self, ctx: &Context<'_>, id: ID, comment: Option<String>) -> GqlResult<Action> {
        self.decide(ctx, id, Decision::Approve, comment).await
    }

    /// Rejects a pending action: it will not run. A decided, ended or expired action is `CONFLICT`.
    async fn reject_action(&self, ctx: &Context<'_>, id: ID, comment: Option<String>) -> GqlResult<Action> {
        self.decide(ctx, id, Decision::Reject, comment).await
    }

    /// Withdraws one's own pending action (admins may withdraw anyone's). A decided, ended or expired
    /// action is `CONFLICT`.
    async fn cancel_action(&self, ctx: &Context<'_>, id: ID, comment: Option<String>) -> GqlResult<Action> {
        self.decide(ctx, id, Decision::Cancel, comment).await
    }
}

impl ActionsMutation {
    async fn decide(
        &self,
        ctx: &Context<'_>,
        id: ID,
        d: Decision,
        comment: Option<String>,
    ) -> GqlResult<Action> {
        let caller = caller(ctx)?;
        let id = parse_id(&id)?;
        Ok(Action(decide(&state(ctx).pool, caller, id, d, comment).await?))
    }
}
