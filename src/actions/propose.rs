//! Proposing an action: the copies it will act on are fixed now (named by id, or every copy an Explorer
//! filter matches), those it cannot act on are left out and counted in its preview, and it waits for
//! approval, or, when the four-eyes rule is off and the proposer may approve, is approved and queued
//! at once.

use super::notes::{what, Notes};
use super::{evidence, JOB_KIND};
use crate::auth::{Caller, Role};
use crate::db::models::Action;
use crate::db::queries::actions::{self as q, NewTarget};
use crate::db::queries::{emails, explorer as xq, incidents, jobs, tenants};
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::actions::{
    select, Candidate, Preview, EXPIRY_DAYS, MAX_COMMENT_CHARS, MAX_EMAIL_IDS, MAX_FILTER_COPIES,
};
use crate::domain::email::RETENTION_DAYS;
use crate::domain::enums::{ActionSource, ActionStatus, ActionType};
use crate::domain::text::storable;
use crate::error::{AppError, AppResult};
use crate::explorer::filter::EmailFilter;
use crate::explorer::hunt;
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use std::collections::BTreeSet;
use uuid::Uuid;

/// What to act on and how.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// Copies by id (at most [`MAX_EMAIL_IDS`]).
    pub email_ids: Option<Vec<Uuid>>,
    /// Or every copy an Explorer filter matches (at most [`MAX_FILTER_COPIES`]).
    pub filter: Option<EmailFilter>,
    /// The action.
    pub action: ActionType,
    /// The incident it is taken from (source `MANUAL`; else `EXPLORER`).
    pub incident_id: Option<Uuid>,
    /// Why.
    pub comment: Option<String>,
}

/// Where the copies come from, validated.
enum Selection {
    Ids(Vec<Uuid>),
    Hunt(Box<crate::db::queries::explorer::Hunt>),
}

/// A comment as stored: trimmed, `None` when empty; refused when too long or unstorable.
pub fn comment(field: &str, c: Option<String>) -> AppResult<Option<String>> {
    let Some(c) = c.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()) else { return Ok(None) };
    storable(field, &c).map_err(AppError::BadInput)?;
    let n = c.chars().count();
    if n > MAX_COMMENT_CHARS {
        return Err(AppError::bad(format!(
            "{field} may hold at most {MAX_COMMENT_CHARS} characters, got {n}"
        )));
    }
    Ok(Some(c))
}

fn selection(caller: &Caller, p: &Proposal) -> AppResult<Selection> {
    if !crate::domain::actions::is_email_action(p.action) {
        return Err(AppError::bad(format!("{} is not an action on e-mail copies", p.action.as_str())));
    }
    match (&p.email_ids, &p.filter) {
        (Some(_), Some(_)) => Err(AppError::bad("give emailIds or filter, not both")),
        (None, None) => {
            Err(AppError::bad("give emailIds (the copies to act on) or filter (every copy it matches)"))
        }
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(AppError::bad("emailIds is empty"));
            }
            if ids.len() > MAX_EMAIL_IDS {
                return Err(AppError::bad(format!(
                    "emailIds may name at most {MAX_EMAIL_IDS} copies ({} given); select more with a filter",
                    ids.len()
                )));
            }
            let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
            Ok(Selection::Ids(unique.into_iter().collect()))
        }
        (None, Some(f)) => Ok(Selection::Hunt(Box::new(hunt::prepare(&caller.tenant_id, f)?))),
    }
}

/// Proposes `p` in the caller's tenant (analysts and above) and returns the action: `PENDING`, or
/// `APPROVED` and queued when the tenant's four-eyes rule is off and the caller may approve.
pub async fn remediate_emails(pool: &Pool, caller: &Caller, p: Proposal) -> AppResult<Action> {
    caller.require(Role::Analyst)?;
    let sel = selection(caller, &p)?;
    let comment = comment("comment", p.comment.clone())?;
    let sel = &sel;
    let (comment, p) = (&comment, &p);
    retry_transient(pool, "proposing an action", async move |conn: &mut Conn| {
        conn.transaction::<_, AppError, _>(async |conn| propose(conn, caller, sel, p, comment.clone()).await)
            .await
    })
    .await
}

/// A copy as a proposal considers it: its key, and where and whose it is.
fn candidate(
    email_id: Uuid,
    received_at: DateTime<Utc>,
    network_message_id: String,
    recipient: String,
    location: crate::domain::enums::DeliveryLocation,
) -> Candidate<NewTarget> {
    Candidate {
        location,
        recipient: recipient.clone(),
        id: NewTarget { email_id, received_at, network_message_id, recipient, location },
    }
}

async fn candidates(
    conn: &mut Conn,
    tenant_id: &str,
    sel: &Selection,
    now: DateTime<Utc>,
) -> AppResult<(Vec<Candidate<NewTarget>>, i64)> {
    match sel {
        Selection::Ids(ids) => {
            let since = now - Duration::days(RETENTION_DAYS);
            let rows = emails::by_ids(conn, tenant_id, ids, since).await?;
            let missing = ids.len() as i64 - rows.len() as i64;
            let found = rows
                .into_iter()
                .map(|e| {
                    candidate(
                        e.id,
                        e.received_at,
                        e.network_message_id,
                        e.recipient,
                        e.latest_delivery_location,
                    )
                })
                .collect();
            Ok((found, missing))
        }
        Selection::Hunt(h) => {
            let cap = i64::try_from(MAX_FILTER_COPIES).unwrap_or(i64::MAX);
            // Counted first, and only to one past the cap: a filter matching millions costs no more.
            if xq::count_to(conn, tenant_id, h, cap + 1).await? > cap {
                let (n, estimate) = hunt::count(conn, tenant_id, h).await?;
                let n = if estimate { format!("about {n}") } else { n.to_string() };
                return Err(AppError::bad(format!(
                    "the filter matches more than {MAX_FILTER_COPIES} copies ({n}); an action may act on at most \
                     {MAX_FILTER_COPIES}: narrow it (a shorter time range, a sender, a subject)"
                )));
            }
            let rows = xq::copies(conn, tenant_id, h, cap).await?;
            let found = rows
                .into_iter()
                .map(|e| {
                    candidate(
                        e.id,
                        e.received_at,
                        e.network_message_id,
                        e.recipient,
                        e.latest_delivery_location,
                    )
                })
                .collect();
            Ok((found, 0))
        }
    }
}

/// What `p` would act on now, without proposing it (the preview an approver will see).
pub async fn preview(pool: &Pool, caller: &Caller, p: Proposal) -> AppResult<Preview> {
    caller.require(Role::Analyst)?;
    let sel = selection(caller, &p)?;
    let mut conn = pool.get().await?;
    let (cands, missing) = candidates(&mut conn, &caller.tenant_id, &sel, Utc::now()).await?;
    Ok(select(p.action, &cands, missing).1)
}

async fn propose(
    conn: &mut Conn,
    caller: &Caller,
    sel: &Selection,
    p: &Proposal,
    comment: Option<String>,
) -> AppResult<Action> {
    let now = Utc::now();
    let tid = caller.tenant_id.as_str();
    let four_eyes = open_proposal(conn, tid, p.incident_id).await?;
    let (cands, missing) = candidates(conn, tid, sel, now).await?;
    let (targets, preview) = select(p.action, &cands, missing);
    if targets.is_empty() {
        return Err(AppError::bad(format!(
            "nothing to act on: of {} copies selected, {} are already at the destination, {} cannot be reached \
             by this action and {} were not found",
            preview.selected,
            preview.already_in_destination,
            preview.not_remediable.iter().map(|l| l.count).sum::<i64>(),
            preview.not_found
        )));
    }
    let draft = Draft {
        action_type: p.action,
        incident_id: p.incident_id,
        comment,
        four_eyes,
        preview: &preview,
        target_count: targets.len(),
    };
    let action = draft.action(caller, now)?;
    let runs_now = action.status == ActionStatus::Approved;
    q::insert(conn, &action).await?;
    let rows: Vec<NewTarget> = targets.into_iter().map(|c| c.id).collect();
    q::insert_targets(conn, tid, action.id, &rows).await?;
    let mut notes = Notes::default();
    let what = what(&action);
    if runs_now {
        enqueue(conn, &action, now).await?;
        notes.status(
            &action,
            None,
            &caller.sub,
            format!("{what} taken by {} (four-eyes rule off)", caller.sub),
            now,
        );
    } else {
        evidence::pending(conn, &action).await?;
        notes.status(&action, None, &caller.sub, format!("{what} proposed by {}", caller.sub), now);
    }
    notes.write(conn, tid, now).await?;
    Ok(action)
}

/// Starts a proposal's transaction: the tenant's action lock (exclusive), the tenant row, and the incident
/// it names, which must exist; returns the tenant's four-eyes rule.
pub(super) async fn open_proposal(conn: &mut Conn, tid: &str, incident_id: Option<Uuid>) -> AppResult<bool> {
    q::tenant_lock(conn, super::lock(tid), true).await?;
    tenants::ensure(conn, tid).await?;
    let four_eyes = tenants::get(conn, tid).await?.four_eyes;
    if let Some(id) = incident_id {
        if incidents::find(conn, tid, id).await?.is_none() {
            return Err(AppError::NotFound(format!("no incident {id}")));
        }
    }
    Ok(four_eyes)
}

/// What a new action is, before it is stored.
pub(super) struct Draft<'a> {
    /// What it does.
    pub action_type: ActionType,
    /// The incident it is taken from (source `MANUAL`; else `EXPLORER`).
    pub incident_id: Option<Uuid>,
    /// Why.
    pub comment: Option<String>,
    /// The tenant's four-eyes rule now.
    pub four_eyes: bool,
    /// What the proposal found.
    pub preview: &'a Preview,
    /// What it acts on.
    pub target_count: usize,
}

impl Draft<'_> {
    /// The action `caller` proposes: `PENDING`, or `APPROVED` by its proposer when the four-eyes rule is
    /// off and the caller may approve.
    pub(super) fn action(self, caller: &Caller, now: DateTime<Utc>) -> AppResult<Action> {
        let runs_now = !self.four_eyes && caller.has(Role::Responder);
        Ok(Action {
            tenant_id: caller.tenant_id.clone(),
            id: Uuid::now_v7(),
            action_type: self.action_type,
            source: if self.incident_id.is_some() { ActionSource::Manual } else { ActionSource::Explorer },
            status: if runs_now { ActionStatus::Approved } else { ActionStatus::Pending },
            incident_id: self.incident_id,
            investigation_id: None,
            proposed_by: caller.sub.clone(),
            proposed_by_name: Some(caller.name.clone()),
            comment: self.comment,
            four_eyes: self.four_eyes,
            decided_by: runs_now.then(|| caller.sub.clone()),
            decided_at: runs_now.then_some(now),
            decision_comment: runs_now.then(|| "approved by its proposer (four-eyes rule off)".to_string()),
            preview: serde_json::to_value(self.preview).map_err(|e| AppError::Internal(e.to_string()))?,
            target_count: i32::try_from(self.target_count).unwrap_or(i32::MAX),
            at_destination: 0,
            success_count: 0,
            failed_count: 0,
            already_count: 0,
            not_found_count: 0,
            expires_at: now + Duration::days(EXPIRY_DAYS),
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            mailbox: None,
            rule_name: None,
            rule: None,
            attempts: 0,
            error: None,
        })
    }
}

/// Runs an action's job may take. A run fails only when the database is unavailable (every step is a
/// transaction that can be repeated), and giving up would leave targets unmoved: with the runner's
/// backoff capped at 5 minutes this keeps trying for about three days.
pub const RUN_ATTEMPTS: i32 = 1_000;

/// Queues the job that runs an approved action (once: the job's dedupe key is the action's id).
pub async fn enqueue(conn: &mut Conn, action: &Action, now: DateTime<Utc>) -> AppResult<()> {
    let job = jobs::NewJob {
        tenant_id: action.tenant_id.clone(),
        kind: JOB_KIND.to_string(),
        payload: serde_json::json!({ "actionId": action.id }),
        max_attempts: RUN_ATTEMPTS,
        run_at: now,
        dedupe_key: Some(action.id.to_string()),
    };
    jobs::enqueue(conn, &job, now).await?;
    Ok(())
}
