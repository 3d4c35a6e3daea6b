//! `ingestEmails`: mail gateways push mail-flow records here (roles `ingestor` and `admin`).

use crate::auth::Role;
use crate::error::GqlResult;
use crate::graphql::mutation::ingest::IngestStatus;
use crate::graphql::{require, state};
use crate::mail::ingest::{ingest_emails, EmailOutcome};
use crate::mail::input::EmailInput;
use async_graphql::{Context, Object, SimpleObject, ID};

/// The copy a record became (an ingestor may read only its id).
#[derive(SimpleObject)]
pub struct IngestedEmail {
    /// Copy id.
    pub id: ID,
}

/// One record of the result, in the order sent.
#[derive(SimpleObject)]
pub struct IngestEmailItem {
    /// Position in the request.
    pub index: i32,
    /// `CREATED` (a new copy), `UPDATED` (a copy stored before: its state, and its timeline when it
    /// moved; also a copy first learned from an alert), or `REJECTED`.
    pub status: IngestStatus,
    /// The stored copy (null when rejected).
    pub email: Option<IngestedEmail>,
    /// Why it was rejected.
    pub error: Option<String>,
}

/// Result of `ingestEmails`.
#[derive(SimpleObject)]
pub struct IngestEmailsResult {
    /// Records stored (created or updated).
    pub accepted: i32,
    /// Records refused.
    pub rejected: i32,
    /// Per record, in the order sent.
    pub items: Vec<IngestEmailItem>,
}

/// Mutation part for mail flow.
#[derive(Default)]
pub struct MailMutation;

#[Object]
impl MailMutation {
    /// Pushes up to 2,000 mail-flow records, one per copy (message per recipient). A copy is identified
    /// by `networkMessageId`, `recipient` and `receivedAt`; re-sending it updates it and adds a delivery
    /// event to its timeline when it moved, never a duplicate. Each record is validated on its own: a bad
    /// one is reported in `items` and the good ones are committed before the call returns.
    async fn ingest_emails(
        &self,
        ctx: &Context<'_>,
        emails: Vec<EmailInput>,
    ) -> GqlResult<IngestEmailsResult> {
        let caller = require(ctx, Role::Ingestor)?;
        let outcomes = ingest_emails(&state(ctx).pool, caller, emails).await?;
        let mut result =
            IngestEmailsResult { accepted: 0, rejected: 0, items: Vec::with_capacity(outcomes.len()) };
        for (index, o) in outcomes.into_iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            result.items.push(match o {
                EmailOutcome::Stored(a) => {
                    result.accepted += 1;
                    IngestEmailItem {
                        index,
                        status: if a.created { IngestStatus::Created } else { IngestStatus::Updated },
                        email: Some(IngestedEmail { id: ID(a.id.to_string()) }),
                        error: None,
                    }
                }
                EmailOutcome::Rejected(reason) => {
                    result.rejected += 1;
                    IngestEmailItem {
                        index,
                        status: IngestStatus::Rejected,
                        email: None,
                        error: Some(reason),
                    }
                }
            });
        }
        state(ctx).metrics.emails_ingested(u64::from(result.accepted.unsigned_abs()));
        Ok(result)
    }
}
