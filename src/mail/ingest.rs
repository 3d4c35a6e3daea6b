//! The mail-flow ingestion service: validates a batch of records, makes any missing weekly partition,
//! then in one transaction locks the copies the batch names, plans the changes in memory and writes
//! them set-based (a handful of statements whatever the batch size).

use super::decide::{initial_state_at, plan, Applied};
use super::input::EmailInput;
use super::overrides;
use super::validate::prepare;
use crate::auth::{Caller, Role};
use crate::db::models::Email;
use crate::db::queries::emails as q;
use crate::db::retry::{retry_idempotent, ATTEMPTS};
use crate::db::{Conn, Pool};
use crate::domain::email::{PreparedEmail, RETENTION_DAYS};
use crate::domain::enums::EmailSource;
use crate::domain::locks::lock_id;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use uuid::Uuid;

/// Most records one call may carry.
pub const MAX_BATCH: usize = 2_000;

/// The outcome of one record.
#[derive(Debug, Clone)]
pub enum EmailOutcome {
    /// Stored: a new copy, or an update of a stored one.
    Stored(Applied),
    /// Refused; the reason names the field.
    Rejected(String),
}

/// The lock that orders learning copies from alerts against mail-flow batches of the same tenant:
/// batches share it, an alert batch that learns copies takes it alone, so a copy is never both
/// learned and delivered by two transactions that could not see each other.
pub fn learn_lock(tenant_id: &str) -> i64 {
    lock_id(tenant_id, "EMAIL_LEARN", "")
}

/// Ingests a batch of mail-flow records for the caller's tenant.
pub async fn ingest_emails(
    pool: &Pool,
    caller: &Caller,
    inputs: Vec<EmailInput>,
) -> AppResult<Vec<EmailOutcome>> {
    caller.require(Role::Ingestor)?;
    if inputs.len() > MAX_BATCH {
        return Err(AppError::bad(format!(
            "at most {MAX_BATCH} e-mail records per call ({} given)",
            inputs.len()
        )));
    }
    let now = Utc::now();
    let tid = caller.tenant_id.as_str();
    let prepared: Vec<Result<PreparedEmail, String>> = inputs.into_iter().map(|i| prepare(i, now)).collect();
    let good: Vec<&PreparedEmail> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();

    let mut applied: Vec<Applied> = vec![];
    if !good.is_empty() {
        ensure_partitions_for(pool, good.iter().map(|p| p.received_at)).await?;
        let result = retry_idempotent(pool, "mail-flow transaction", async |conn| {
            conn.transaction::<_, AppError, _>(async |conn| write_batch(conn, tid, &good, now).await).await
        })
        .await;
        applied = match result {
            Err(AppError::Transient(detail)) | Err(AppError::ConnectionLost(detail)) => {
                tracing::warn!(attempt = ATTEMPTS, %detail, "mail-flow batch failed after its retries");
                return Err(AppError::Unavailable(format!(
                    "the database was busy or unreachable and the batch could not be stored after {ATTEMPTS} \
                     tries: retry the same batch (re-sending is idempotent, so it is stored once either way)"
                )));
            }
            other => other?,
        };
    }
    let mut applied = applied.into_iter();
    Ok(prepared
        .into_iter()
        .map(|p| match p {
            Ok(_) => applied
                .next()
                .map(EmailOutcome::Stored)
                .unwrap_or_else(|| EmailOutcome::Rejected("internal server error".into())),
            Err(reason) => EmailOutcome::Rejected(reason),
        })
        .collect())
}

/// Makes the partitions for the receive times given, when one is missing.
pub async fn ensure_partitions_for(pool: &Pool, times: impl Iterator<Item = DateTime<Utc>>) -> AppResult<()> {
    let (mut lo, mut hi) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for t in times {
        lo = Some(lo.map_or(t, |l| l.min(t)));
        hi = Some(hi.map_or(t, |h| h.max(t)));
    }
    let (Some(lo), Some(hi)) = (lo, hi) else { return Ok(()) };
    let mut conn = pool.get().await?;
    q::ensure_partitions(&mut conn, lo, hi).await?;
    Ok(())
}

async fn write_batch(
    conn: &mut Conn,
    tid: &str,
    good: &[&PreparedEmail],
    now: DateTime<Utc>,
) -> AppResult<Vec<Applied>> {
    q::learn_lock(conn, learn_lock(tid), false).await?;
    // Shared with other batches; a proposal or decision on the tenant's actions waits for it (and the
    // batch for them), so a pending action never misses a move this batch makes.
    crate::db::queries::actions::tenant_lock(conn, crate::actions::lock(tid), false).await?;
    q::plan_each_statement(conn).await?;
    let nmids: Vec<String> = good.iter().map(|p| p.network_message_id.clone()).collect();
    let recipients: Vec<String> = good.iter().map(|p| p.recipient.clone()).collect();
    let received: Vec<DateTime<Utc>> = good.iter().map(|p| p.received_at).collect();
    let since = window_start(now) - Duration::days(1);
    let stored = q::lock_by_copies(conn, tid, &nmids, &recipients, &received, since).await?;
    let items: Vec<(PreparedEmail, Email)> =
        good.iter().map(|p| ((*p).clone(), new_row(tid, p, EmailSource::MailFlow, now))).collect();
    let mut plan = plan(stored, items, now);
    // The list judges every copy written: new ones and the ones a record changed.
    let mut written: Vec<&mut Email> = plan.inserts.iter_mut().chain(plan.updates.iter_mut()).collect();
    let used = overrides::apply(conn, tid, &mut written, now).await?;
    if !plan.moves.is_empty() {
        let ids: Vec<Uuid> = plan.moves.iter().map(|m| m.0).collect();
        let from: Vec<DateTime<Utc>> = plan.moves.iter().map(|m| m.1).collect();
        let to: Vec<DateTime<Utc>> = plan.moves.iter().map(|m| m.2).collect();
        q::move_copies(conn, tid, &ids, &from, &to).await?;
    }
    let inserted = q::insert_copies(conn, &plan.inserts).await?;
    if inserted < plan.inserts.len() {
        // Another batch stored one of these copies after this one looked: run again, and find it.
        return Err(AppError::Transient("a copy of this batch was stored concurrently".into()));
    }
    q::update_copies(conn, &plan.updates).await?;
    q::insert_events(conn, &plan.events).await?;
    // Recording the entries' use locks their rows until commit.
    let entry_ids: Vec<Uuid> = used.into_values().flatten().collect();
    crate::allowblock::touch(conn, tid, &entry_ids, now).await?;
    // Pending actions on copies that moved may have nothing left to do; this writes their events, so
    // it comes last.
    let updated: Vec<Uuid> = plan.updates.iter().map(|e| e.id).collect();
    crate::actions::reevaluate::after_moves_and_write(conn, tid, &updated, now).await?;
    Ok(plan.applied)
}

/// The earliest receive time hunting covers at `now`.
pub fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(RETENTION_DAYS)
}

/// The row a prepared copy becomes in `tenant_id` (a new id; the planner keeps a stored copy's id).
pub fn new_row(tenant_id: &str, p: &PreparedEmail, source: EmailSource, now: DateTime<Utc>) -> Email {
    let d = p.derive(tenant_id);
    Email {
        tenant_id: tenant_id.to_string(),
        id: Uuid::now_v7(),
        received_at: p.received_at,
        network_message_id: p.network_message_id.clone(),
        internet_message_id: p.internet_message_id.clone(),
        recipient: p.recipient.clone(),
        recipient_domain: d.recipient_domain,
        envelope_sender: p.envelope_sender.clone(),
        envelope_sender_domain: d.envelope_sender_domain,
        header_from: p.header_from.clone(),
        sender_domain: d.sender_domain,
        sender_display_name: p.sender_display_name.clone(),
        sender_ip: p.sender_ip.clone(),
        subject: p.subject.clone(),
        direction: p.direction,
        delivery_action: p.delivery_action,
        original_delivery_location: p.original_delivery_location,
        latest_delivery_location: p.latest_delivery_location,
        threat_types: p.threat_types.clone(),
        phish_confidence: p.phish_confidence,
        detection_technologies: p.detection_technologies.clone(),
        urls: p.urls.clone(),
        url_domains: d.url_domains,
        attachments: serde_json::to_value(&p.attachments)
            .unwrap_or_else(|_| serde_json::Value::Array(vec![])),
        cluster_id: p.cluster_id.clone(),
        keys: d.keys,
        source,
        override_source: None,
        state_at: initial_state_at(p, now),
        moved_at: None,
        created_at: now,
        updated_at: now,
    }
}
