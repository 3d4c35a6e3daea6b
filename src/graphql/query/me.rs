//! `me`: who the token says the caller is.

use crate::auth::Role;
use crate::error::GqlResult;
use async_graphql::{Context, Object, SimpleObject};

/// The caller as the token describes it.
#[derive(SimpleObject)]
pub struct Me {
    /// UPN (`sub` claim).
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Tenant id (`tid` claim).
    pub tenant_id: String,
    /// Roles the token grants.
    pub roles: Vec<Role>,
}

/// Query part for `me`.
#[derive(Default)]
pub struct MeQuery;

#[Object]
impl MeQuery {
    /// The authenticated caller.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Me> {
        let c = super::super::caller(ctx)?;
        Ok(Me {
            sub: c.sub.clone(),
            name: c.name.clone(),
            tenant_id: c.tenant_id.clone(),
            roles: c.roles.clone(),
        })
    }
}
