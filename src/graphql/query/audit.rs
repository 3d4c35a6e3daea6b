//! `auditLog`: who changed the tenant's configuration (allow/block list, settings), newest first.
//! Admins only.

use crate::auth::Role;
use crate::db::queries::audit;
use crate::error::{AppError, GqlResult};
use crate::graphql::types::audit::AuditEntry;
use crate::graphql::types::connection::{
    decode_time_after, encode_cursor, page_size, split_page, AuditEntryConnection, TotalCount, AUDIT_SCOPE,
    DEFAULT_PAGE,
};
use crate::graphql::{require, state};
use async_graphql::{Context, Object};

/// Query part for the audit log.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The caller's tenant's audit log (admin only): every change to the allow/block list and the
    /// settings, with who, before, after and when; newest first. `first`: default 20, at most 100.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<AuditEntryConnection> {
        let caller = require(ctx, Role::Admin)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let after_k = decode_time_after(AUDIT_SCOPE, after.as_deref())?;
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = audit::page(&mut conn, tenant, after_k, limit + 1).await.map_err(AppError::from)?;
        let (rows, has_next) = split_page(rows, limit);
        Ok(AuditEntryConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(AUDIT_SCOPE, r.at.timestamp_micros(), r.id),
            AuditEntry,
            TotalCount::AuditLog { tenant: tenant.to_string() },
        ))
    }
}
