//! Configuring the tenant's mail server (admins only; every change in the audit log).

use crate::error::GqlResult;
use crate::graphql::types::mailserver::{ConfigureMailServerInput, MailServer, MailServerTest};
use crate::graphql::{caller, state};
use async_graphql::{Context, Object};

/// Mutation part for the mail server.
#[derive(Default)]
pub struct MailServerMutation;

#[Object]
impl MailServerMutation {
    /// Configures (or reconfigures) the tenant's mail server and returns it without the password.
    /// `masterPassword` is required the first time; left out later, the stored one stays.
    async fn configure_mail_server(
        &self,
        ctx: &Context<'_>,
        input: ConfigureMailServerInput,
    ) -> GqlResult<MailServer> {
        let caller = caller(ctx)?;
        let st = state(ctx);
        let row = crate::mailserver::configure(&st.pool, st.secret_key.as_ref(), caller, &input.requested())
            .await?;
        Ok(MailServer(row))
    }

    /// Logs in to the tenant's IMAP and ManageSieve servers with the stored master login (into
    /// `mailbox` when given, else the master login's own) and reports what they offer and what failed.
    /// Admins. No mail server configured is `NOT_FOUND`.
    async fn test_mail_server(
        &self,
        ctx: &Context<'_>,
        mailbox: Option<String>,
    ) -> GqlResult<MailServerTest> {
        let caller = caller(ctx)?;
        let st = state(ctx);
        // Boxed: two protocol exchanges make a large future, kept off the caller's stack.
        let check = Box::pin(crate::mailserver::check::run(&st.pool, &st.mail, caller, mailbox.as_deref()));
        Ok(MailServerTest(check.await?))
    }

    /// Removes the tenant's mail server; false when none was configured.
    async fn remove_mail_server(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let caller = caller(ctx)?;
        Ok(crate::mailserver::remove(&state(ctx).pool, caller).await?)
    }
}
