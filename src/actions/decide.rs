//! Deciding a pending action: approve (responders; under the four-eyes rule not its proposer), reject
//! (responders), cancel (its proposer, or an admin). A decision is one conditional update of a pending,
//! unexpired action, so of two decisions at the same moment exactly one applies and the other is a
//! `CONFLICT`; approving queues the action's job in the same transaction, once.

use super::evidence;
use super::notes::{what, Notes};
use super::propose::{comment, enqueue};
use crate::auth::{Caller, Role};
use crate::db::models::Action;
use crate::db::queries::{actions as q, tenants};
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::enums::ActionStatus;
use crate::error::{AppError, AppResult};
use chrono::Utc;
use diesel_async::AsyncConnection;
use uuid::Uuid;

/// A decision on a pending action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Approve,
    /// Do not run it.
    Reject,
    /// Withdraw it (its proposer).
    Cancel,
}

impl Decision {
    fn to(self) -> ActionStatus {
        match self {
            Decision::Approve => ActionStatus::Approved,
            Decision::Reject => ActionStatus::Rejected,
            Decision::Cancel => ActionStatus::Cancelled,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
            Decision::Cancel => "cancelled",
        }
    }
}

/// Applies `decision` to the caller's tenant's action `id` and returns the action as it now is.
pub async fn decide(
    pool: &Pool,
    caller: &Caller,
    id: Uuid,
    decision: Decision,
    note: Option<String>,
) -> AppResult<Action> {
    match decision {
        Decision::Approve | Decision::Reject => caller.require(Role::Responder)?,
        Decision::Cancel => caller.require(Role::Analyst)?,
    }
    let note = comment("comment", note)?;
    let note = &note;
    // A refusal is the transaction's value, not its error: what it found out (an action whose time
    // ran out is expired on the spot) commits, then the caller gets the refusal.
    retry_transient(pool, "deciding an action", async move |conn: &mut Conn| {
        conn.transaction::<_, AppError, _>(async |conn| apply(conn, caller, id, decision, note.clone()).await)
            .await
    })
    .await?
}

async fn apply(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    decision: Decision,
    note: Option<String>,
) -> AppResult<AppResult<Action>> {
    let now = Utc::now();
    let tid = caller.tenant_id.as_str();
    q::tenant_lock(conn, super::lock(tid), true).await?;
    let Some(current) = q::find(conn, tid, id).await? else {
        return Err(AppError::NotFound(format!("no action {id}")));
    };
    let own = current.proposed_by == caller.sub;
    match decision {
        Decision::Approve if own => {
            let four_eyes =
                current.four_eyes || tenants::get(conn, tid).await.map(|t| t.four_eyes).unwrap_or(true);
            if four_eyes {
                return Err(AppError::Forbidden(
                    "the four-eyes rule is on: a responder other than the proposer must approve this action"
                        .into(),
                ));
            }
        }
        Decision::Cancel if !own && !caller.has(Role::Admin) => {
            return Err(AppError::Forbidden("only the action's proposer (or an admin) may cancel it".into()));
        }
        _ => {}
    }
    let Some(action) = q::decide(conn, tid, id, decision.to(), &caller.sub, note.as_deref(), now).await?
    else {
        return Ok(Err(refused(conn, tid, current, now).await?));
    };
    let mut notes = Notes::default();
    let mut message = format!("{} {} by {}", what(&action), decision.verb(), caller.sub);
    if let Some(n) = &note {
        message.push_str(&format!(": {n}"));
    }
    notes.status(&action, Some(ActionStatus::Pending), &caller.sub, message, now);
    match decision {
        Decision::Approve => enqueue(conn, &action, now).await?,
        _ => {
            evidence::ended_undecided(conn, &action, action.status).await?;
        }
    }
    notes.write(conn, tid, now).await?;
    Ok(Ok(action))
}

/// Why a decision did not apply: the action was decided (or ended) already, or its time ran out, in
/// which case it is expired now.
async fn refused(
    conn: &mut Conn,
    tid: &str,
    current: Action,
    now: chrono::DateTime<Utc>,
) -> AppResult<AppError> {
    let latest = q::find(conn, tid, current.id).await?.unwrap_or(current);
    if latest.status == ActionStatus::Pending && latest.expires_at <= now {
        super::expiry::expire_in(conn, tid, Some(latest.id), now).await?;
        return Ok(AppError::Conflict(format!(
            "action {} expired at {} without a decision",
            latest.id,
            latest.expires_at.to_rfc3339()
        )));
    }
    let by = latest.decided_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
    Ok(AppError::Conflict(format!(
        "action {} is no longer pending: it is {}{by}",
        latest.id,
        latest.status.as_str()
    )))
}
