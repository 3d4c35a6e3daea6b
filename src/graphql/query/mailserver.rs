//! The tenant's mail server (admins only).

use crate::error::GqlResult;
use crate::graphql::types::mailserver::MailServer;
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
}
