//! `submit`: report an e-mail, URL or file as wrongly blocked or allowed (readers and above; creating
//! the allow/block entry needs an admin).

use crate::error::GqlResult;
use crate::graphql::types::submission::{Submission, SubmitInput};
use crate::graphql::{caller, state};
use crate::submissions::service::submit;
use async_graphql::{Context, Object};

/// Mutation part for submissions.
#[derive(Default)]
pub struct SubmissionsMutation;

#[Object]
impl SubmissionsMutation {
    /// Files a submission and returns it evaluated from the tenant's own data (allow/block list,
    /// verdicts, delivery). With `createEntry` (admins only) the matching allow/block entry is created in
    /// the same transaction: both are stored, or neither. An unknown `emailId` is `NOT_FOUND`.
    async fn submit(&self, ctx: &Context<'_>, input: SubmitInput) -> GqlResult<Submission> {
        let caller = caller(ctx)?;
        let row = submit(&state(ctx).pool, caller, input.request()?).await?;
        Ok(Submission(row))
    }
}
