//! Allow/block list writes (admin only): create, update (notes and expiry), delete. The rules live in
//! `crate::allowblock`; each write lands in the audit log in its transaction.

use crate::allowblock::entries;
use crate::auth::Role;
use crate::error::GqlResult;
use crate::graphql::types::allowblock::{
    AllowBlockEntry, CreateAllowBlockEntryInput, UpdateAllowBlockEntryInput,
};
use crate::graphql::{parse_id, require, state};
use async_graphql::{Context, Object, ID};

/// Mutation part for the allow/block list.
#[derive(Default)]
pub struct AllowBlockMutation;

#[Object]
impl AllowBlockMutation {
    /// Adds an entry. `BAD_USER_INPUT` names the bad field (value, notes, expiresAt, neverExpire);
    /// `CONFLICT` when the list already holds the value in that kind (whatever its action; the message
    /// names the entry) or holds its limit (10,000 blocks and 5,000 allows per kind).
    async fn create_allow_block_entry(
        &self,
        ctx: &Context<'_>,
        input: CreateAllowBlockEntryInput,
    ) -> GqlResult<AllowBlockEntry> {
        let caller = require(ctx, Role::Admin)?;
        let row = entries::create(&state(ctx).pool, caller, &input.into()).await?;
        Ok(AllowBlockEntry::new(row, chrono::Utc::now()))
    }

    /// Changes an entry's notes or expiry (its value never changes; delete it and add another).
    async fn update_allow_block_entry(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAllowBlockEntryInput,
    ) -> GqlResult<AllowBlockEntry> {
        let caller = require(ctx, Role::Admin)?;
        let id = parse_id(&id)?;
        let row = entries::update(&state(ctx).pool, caller, id, &input.into()).await?;
        Ok(AllowBlockEntry::new(row, chrono::Utc::now()))
    }

    /// Deletes an entry; returns its id.
    async fn delete_allow_block_entry(&self, ctx: &Context<'_>, id: ID) -> GqlResult<ID> {
        let caller = require(ctx, Role::Admin)?;
        let id = parse_id(&id)?;
        let row = entries::delete(&state(ctx).pool, caller, id).await?;
        Ok(ID(row.id.to_string()))
    }
}
