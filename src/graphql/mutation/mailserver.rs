//! Configuring the tenant's mail server (admins only; every change in the audit log).

use crate::error::GqlResult;
use crate::graphql::types::mailserver::{ConfigureMailServerInput, MailServer};
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

    /// Removes the tenant's mail server; false when none was configured.
    async fn remove_mail_server(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let caller = caller(ctx)?;
        Ok(crate::mailserver::remove(&state(ctx).pool, caller).await?)
    }
}
