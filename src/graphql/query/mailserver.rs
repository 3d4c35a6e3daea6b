//! The tenant's mail server (admins only), and a mailbox's inbox rules read from it (analysts).

use crate::error::GqlResult;
use crate::graphql::types::mailserver::{InboxRule, MailServer};
use crate::graphql::{caller, state};
use async_graphql::{Context, Object};

/// Query part for the mail server.
#[derive(Default)]
pub struct MailServerQuery;

#[Object]
impl MailServerQuery {
    /// The caller's tenant's mail server, without its password; null when none is configured. Admins.
    async fn mail_server(&self, ctx: &Context<'_>) -> GqlResult<Option<MailServer>> {
        let caller = caller(ctx)?;
        Ok(crate::mailserver::get(&state(ctx).pool, caller).await?.map(MailServer))
    }

    /// The inbox rules of `mailbox` (an address of the tenant): its active Sieve script read over
    /// ManageSieve, rule by rule, each flagged `suspicious` with the `reason` when it forwards outside the
    /// mailbox's domain or discards or files away mail from a sender of an incident. Analysts and above.
    /// No mail server configured is `NOT_FOUND`; one that can't be reached is `UNAVAILABLE`, naming why.
    async fn mailbox_rules(&self, ctx: &Context<'_>, mailbox: String) -> GqlResult<Vec<InboxRule>> {
        let caller = caller(ctx)?;
        let st = state(ctx);
        // Boxed: the ManageSieve exchange makes a large future, kept off the caller's stack.
        let rules = Box::pin(crate::mailserver::rules::list(&st.pool, &st.mail, caller, &mailbox)).await?;
        Ok(rules.into_iter().map(InboxRule).collect())
    }
}
