//! The action center: actions by filter (the pending tab is `status: [PENDING]`, the history the rest),
//! one by id, and a dry run of a proposal. Readers and above; the dry run, analysts and above.

use crate::actions::propose;
use crate::auth::Role;
use crate::db::queries::actions as q;
use crate::error::{AppError, GqlResult};
use crate::graphql::loaders::loaders;
use crate::graphql::types::action::{
    Action, ActionFilterInput, ActionOrder, ActionPreview, RemediateEmailsInput,
};
use crate::graphql::types::connection::{
    decode_time_after, encode_cursor, page_size, split_page, ActionConnection, TotalCount, ACTIONS_ASC_SCOPE,
    ACTIONS_DESC_SCOPE, DEFAULT_PAGE,
};
use crate::graphql::types::filters::OrderDirection;
use crate::graphql::{caller, parse_id, require, state};
use async_graphql::{Context, Object, ID};
use std::sync::Arc;

/// Query part for actions.
#[derive(Default)]
pub struct ActionsQuery;

#[Object]
impl ActionsQuery {
    /// One action of the caller's tenant, or null.
    async fn action(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Action>> {
        let caller = require(ctx, Role::Reader)?;
        let id = parse_id(&id)?;
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        Ok(q::find(&mut conn, &caller.tenant_id, id).await.map_err(AppError::from)?.map(Action))
    }

    /// The caller's tenant's actions (newest first unless `orderBy` says otherwise). `first`: default 20,
    /// at most 100. `after`: the `endCursor` of the previous page.
    #[graphql(
        complexity = "crate::graphql::types::connection::complexity(first, crate::graphql::types::connection::DEFAULT_PAGE, child_complexity)"
    )]
    async fn actions(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActionFilterInput>,
        order_by: Option<ActionOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<ActionConnection> {
        let caller = require(ctx, Role::Reader)?;
        let limit = page_size(first, DEFAULT_PAGE)?;
        let ascending = order_by.is_some_and(|o| o.direction == OrderDirection::Asc);
        let scope = if ascending { ACTIONS_ASC_SCOPE } else { ACTIONS_DESC_SCOPE };
        let after_k = decode_time_after(scope, after.as_deref())?;
        let filter = Arc::new(filter.unwrap_or_default().filter()?);
        let tenant = caller.tenant_id.as_str();
        let mut conn = state(ctx).pool.get().await.map_err(AppError::from)?;
        let rows = q::page(&mut conn, tenant, &filter, ascending, after_k.map(|k| (k.at, k.id)), limit + 1)
            .await
            .map_err(AppError::from)?;
        let (rows, has_next) = split_page(rows, limit);
        let siblings = loaders(ctx).register_actions(tenant, &rows);
        Ok(ActionConnection::new(
            rows,
            has_next,
            after.is_some(),
            |r| encode_cursor(scope, r.created_at.timestamp_micros(), r.id),
            Action,
            TotalCount::Actions { tenant: tenant.to_string(), filter },
        )
        .keeping(Some(siblings)))
    }

    /// What `remediateEmails` with this input would act on now, without proposing anything: the
    /// preview an approver would see. Analysts and above.
    async fn preview_remediation(
        &self,
        ctx: &Context<'_>,
        input: RemediateEmailsInput,
    ) -> GqlResult<ActionPreview> {
        let caller = caller(ctx)?;
        let p = propose::preview(&state(ctx).pool, caller, input.proposal()?).await?;
        Ok(ActionPreview(p))
    }
}
