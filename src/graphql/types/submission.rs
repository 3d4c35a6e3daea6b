//! The `Submission` type, and the inputs that file and filter submissions.

use crate::db::models;
use crate::db::queries::submissions::SubmissionFilter;
use crate::domain::enums::*;
use crate::error::{AppError, AppResult, GqlResult};
use crate::graphql::loaders::{loaders, AllowBlockEntryKey, EmailByIdKey, Member, Memo, SetKind};
use crate::graphql::types::allowblock::AllowBlockEntry;
use crate::graphql::types::email::Email;
use crate::submissions::service::{EntryRequest, SubmitRequest};
use async_graphql::{Context, InputObject, Object, ID};
use chrono::{DateTime, Utc};

/// An item reported as wrongly blocked or wrongly allowed, and what Parapet found.
pub struct Submission(pub models::Submission);

#[Object]
impl Submission {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What is reported.
    async fn content_type(&self) -> SubmissionContentType {
        self.0.content_type
    }
    /// What the submitter says it is (`NOT_JUNK`: wrongly blocked; the others: wrongly allowed).
    async fn category(&self) -> SubmissionCategory {
        self.0.category
    }
    /// Who submitted it (UPN).
    async fn submitted_by(&self) -> &str {
        &self.0.submitted_by
    }
    /// Their display name.
    async fn submitted_by_name(&self) -> Option<&str> {
        self.0.submitted_by_name.as_deref()
    }
    /// `PENDING` or `COMPLETED` (Parapet evaluates at once, from its own data).
    async fn status(&self) -> SubmissionStatus {
        self.0.status
    }
    /// The result, as a submissions page shows it: "Should have been blocked", "Allowed by tenant allow
    /// list", "Blocked by tenant block list", "Should not have been blocked", "No threats found"...
    async fn result(&self) -> Option<&str> {
        self.0.result.as_deref()
    }
    /// The result's category.
    async fn result_category(&self) -> Option<SubmissionResultCategory> {
        self.0.result_category
    }
    /// Why: the entry, verdict or location the result rests on.
    async fn result_detail(&self) -> Option<&str> {
        self.0.result_detail.as_deref()
    }
    /// The e-mail copy's id (for `EMAIL`).
    async fn email_id(&self) -> Option<ID> {
        self.0.email_id.map(|id| ID(id.to_string()))
    }
    /// The e-mail copy, while it is in the 30-day store.
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<Email>> {
        let me = Member { id: self.0.id, link: self.0.email_id };
        let key_of = |t: &str, m: Member| m.link.map(|id| EmailByIdKey { tenant: t.to_string(), id });
        let (row, _) = loaders(ctx)
            .load_with_siblings(
                SetKind::SubmissionEmail,
                &self.0.tenant_id,
                me,
                Memo::SubmissionEmail,
                key_of,
                |_, _| None,
            )
            .await?;
        Ok(row.map(Email::new))
    }
    /// The copy's network message id, as it was when submitted.
    async fn network_message_id(&self) -> Option<&str> {
        self.0.network_message_id.as_deref()
    }
    /// The copy's recipient.
    async fn recipient(&self) -> Option<&str> {
        self.0.recipient.as_deref()
    }
    /// The copy's sender (From: header, else envelope sender).
    async fn sender(&self) -> Option<&str> {
        self.0.sender.as_deref()
    }
    /// The copy's subject.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The URL (for `URL`), normalised.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
    /// The file's SHA-256 (for `FILE`).
    async fn file_sha256(&self) -> Option<&str> {
        self.0.file_sha256.as_deref()
    }
    /// The allow/block entry this submission created, while it exists.
    async fn allow_block_entry(&self, ctx: &Context<'_>) -> GqlResult<Option<AllowBlockEntry>> {
        let me = Member { id: self.0.id, link: self.0.allow_block_entry_id };
        let key_of = |t: &str, m: Member| m.link.map(|id| AllowBlockEntryKey { tenant: t.to_string(), id });
        let (row, _) = loaders(ctx)
            .load_with_siblings(
                SetKind::SubmissionEntry,
                &self.0.tenant_id,
                me,
                Memo::SubmissionEntry,
                key_of,
                |_, _| None,
            )
            .await?;
        Ok(row.map(|r| AllowBlockEntry::new(r, Utc::now())))
    }
    /// The id of the entry it created (kept after the entry is deleted).
    async fn allow_block_entry_id(&self) -> Option<ID> {
        self.0.allow_block_entry_id.map(|id| ID(id.to_string()))
    }
    /// When it was filed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was evaluated.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
}

/// The allow/block entry a submission creates (admins only): for an e-mail its sender (From: header,
/// else envelope sender), for a URL the URL, for a file its hash.
#[derive(InputObject, Clone, Debug)]
pub struct SubmissionEntryInput {
    /// Allow or block.
    pub action: AllowBlockAction,
    /// When it expires (blocks: at most 90 days ahead, default 30; allows: at most 30 days ahead, default
    /// 45 days after last use).
    pub expires_at: Option<DateTime<Utc>>,
    /// Never expire (blocks only).
    pub never_expire: Option<bool>,
    /// Notes (default: names the submission).
    pub notes: Option<String>,
}

/// A submission: `contentType` and the one item field that goes with it.
#[derive(InputObject, Clone, Debug)]
pub struct SubmitInput {
    /// `EMAIL` (with `emailId`), `URL` (with `url`) or `FILE` (with `fileSha256`).
    pub content_type: SubmissionContentType,
    /// The e-mail copy (an `Email` id of the last 30 days).
    pub email_id: Option<ID>,
    /// The URL.
    pub url: Option<String>,
    /// The file's SHA-256.
    pub file_sha256: Option<String>,
    /// What it is: `NOT_JUNK` (wrongly blocked), `SPAM`, `PHISHING` or `MALWARE` (wrongly allowed).
    pub category: SubmissionCategory,
    /// Also create the matching allow/block entry (admins only).
    pub create_entry: Option<SubmissionEntryInput>,
}

impl SubmitInput {
    /// The service's request (ids parsed).
    pub fn request(self) -> AppResult<SubmitRequest> {
        let email_id = self.email_id.as_ref().map(crate::graphql::parse_id).transpose()?;
        Ok(SubmitRequest {
            content_type: self.content_type,
            email_id,
            url: self.url,
            file_sha256: self.file_sha256,
            category: self.category,
            create_entry: self.create_entry.map(|e| EntryRequest {
                action: e.action,
                expires_at: e.expires_at,
                never_expire: e.never_expire,
                notes: e.notes,
            }),
        })
    }
}

/// Which submissions to list; every field given applies (lists: any of).
#[derive(InputObject, Clone, Debug, Default)]
pub struct SubmissionFilterInput {
    /// Content types.
    pub content_type: Option<Vec<SubmissionContentType>>,
    /// Categories.
    pub category: Option<Vec<SubmissionCategory>>,
    /// Statuses.
    pub status: Option<Vec<SubmissionStatus>>,
    /// Submitted by this person (UPN).
    pub submitted_by: Option<String>,
    /// About this e-mail copy.
    pub email_id: Option<ID>,
    /// Submitted at or after.
    pub submitted_after: Option<DateTime<Utc>>,
    /// Submitted before.
    pub submitted_before: Option<DateTime<Utc>>,
}

impl SubmissionFilterInput {
    /// The database filter, values checked.
    pub fn filter(self) -> AppResult<SubmissionFilter> {
        use crate::domain::text::{bounded, MAX_NAME_LEN};
        let submitted_by = self
            .submitted_by
            .map(|s| bounded("submittedBy", &s, MAX_NAME_LEN).map(|s| s.to_lowercase()))
            .transpose()
            .map_err(AppError::BadInput)?;
        let check = |f: &str, t: Option<DateTime<Utc>>| {
            crate::domain::time::check_opt(f, t).map_err(AppError::BadInput)
        };
        Ok(SubmissionFilter {
            content_types: self.content_type.unwrap_or_default(),
            categories: self.category.unwrap_or_default(),
            statuses: self.status.unwrap_or_default(),
            submitted_by,
            email_id: self.email_id.as_ref().map(crate::graphql::parse_id).transpose()?,
            submitted_after: check("submittedAfter", self.submitted_after)?,
            submitted_before: check("submittedBefore", self.submitted_before)?,
        })
    }
}
