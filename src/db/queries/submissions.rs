//! The SQL of submissions: insert, one by id, and keyset pages (newest first) with their count.

use crate::db::models::Submission;
use crate::db::schema::submissions;
use crate::db::Conn;
use crate::domain::enums::{SubmissionCategory, SubmissionContentType, SubmissionStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// A filter over a tenant's submissions; every field given applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmissionFilter {
    /// Any of these content types.
    pub content_types: Vec<SubmissionContentType>,
    /// Any of these categories.
    pub categories: Vec<SubmissionCategory>,
    /// Any of these statuses.
    pub statuses: Vec<SubmissionStatus>,
    /// Submitted by this person (UPN, lower-case).
    pub submitted_by: Option<String>,
    /// About this e-mail copy.
    pub email_id: Option<Uuid>,
    /// Submitted at or after.
    pub submitted_after: Option<DateTime<Utc>>,
    /// Submitted before.
    pub submitted_before: Option<DateTime<Utc>>,
}

/// Stores a submission.
pub async fn insert(conn: &mut Conn, row: &Submission) -> QueryResult<()> {
    diesel::insert_into(submissions::table).values(row).execute(conn).await?;
    Ok(())
}

/// One submission of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Submission>> {
    submissions::table.find((tenant_id, id)).select(Submission::as_select()).first(conn).await.optional()
}

fn filtered<'a>(tenant_id: &'a str, f: &'a SubmissionFilter) -> submissions::BoxedQuery<'a, diesel::pg::Pg> {
    let mut q = submissions::table.filter(submissions::tenant_id.eq(tenant_id)).into_boxed();
    if !f.content_types.is_empty() {
        q = q.filter(submissions::content_type.eq_any(&f.content_types));
    }
    if !f.categories.is_empty() {
        q = q.filter(submissions::category.eq_any(&f.categories));
    }
    if !f.statuses.is_empty() {
        q = q.filter(submissions::status.eq_any(&f.statuses));
    }
    if let Some(by) = &f.submitted_by {
        q = q.filter(submissions::submitted_by.eq(by));
    }
    if let Some(id) = f.email_id {
        q = q.filter(submissions::email_id.eq(id));
    }
    if let Some(t) = f.submitted_after {
        q = q.filter(submissions::created_at.ge(t));
    }
    if let Some(t) = f.submitted_before {
        q = q.filter(submissions::created_at.lt(t));
    }
    q
}

/// Up to `limit` submissions matching `f`, newest first, after (`at`, `id`).
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    f: &SubmissionFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Submission>> {
    let mut q = filtered(tenant_id, f);
    if let Some((at, id)) = after {
        q = q.filter(
            submissions::created_at.lt(at).or(submissions::created_at.eq(at).and(submissions::id.lt(id))),
        );
    }
    q.order_by((submissions::created_at.desc(), submissions::id.desc()))
        .limit(limit)
        .select(Submission::as_select())
        .load(conn)
        .await
}

/// How many submissions match `f`.
pub async fn count(conn: &mut Conn, tenant_id: &str, f: &SubmissionFilter) -> QueryResult<i64> {
    filtered(tenant_id, f).count().get_result(conn).await
}

/// The distinct verdicts alerts' evidence gives the entity `entity_key` (`URL:<url>`, `FILE:<sha256>`,
/// `EMAIL:<network message id>:<recipient>`).
pub async fn evidence_verdicts(
    conn: &mut Conn,
    tenant_id: &str,
    entity_key: &str,
) -> QueryResult<Vec<String>> {
    use crate::db::schema::evidence;
    evidence::table
        .filter(evidence::tenant_id.eq(tenant_id))
        .filter(evidence::entity_key.eq(entity_key))
        .select(evidence::verdict)
        .distinct()
        .load::<String>(conn)
        .await
}
