//! The remediation status of the e-mail evidence naming an action's copies, as the action goes: pending
//! approval while it waits, running, then each copy's outcome; declined or unremediated when it ends
//! undecided.

use crate::db::models::Action;
use crate::db::queries::actions as q;
use crate::db::Conn;
use crate::domain::actions::evidence_status;
use crate::domain::enums::{ActionOutcome, ActionStatus, RemediationStatus as R};
use uuid::Uuid;

/// Statuses that say nothing was done yet, which a new action may replace.
const OPEN: [R; 6] = [R::None, R::Active, R::PendingApproval, R::Unremediated, R::Declined, R::NotFound];

fn names(s: &[R]) -> Vec<&'static str> {
    s.iter().map(|r| r.as_str()).collect()
}

/// The action waits for approval.
pub async fn pending(conn: &mut Conn, a: &Action) -> diesel::QueryResult<usize> {
    let only = names(&OPEN);
    q::evidence_follow(conn, &a.tenant_id, a.id, &[], Some(R::PendingApproval.as_str()), &[], &only, false)
        .await
}

/// The action is running.
pub async fn running(conn: &mut Conn, a: &Action) -> diesel::QueryResult<usize> {
    let only = names(&OPEN);
    q::evidence_follow(conn, &a.tenant_id, a.id, &[], Some(R::Running.as_str()), &[], &only, false).await
}

/// The action ended without running (`status`: rejected, cancelled, expired, already remediated);
/// copies another pending action targets keep `PENDING_APPROVAL`.
pub async fn ended_undecided(
    conn: &mut Conn,
    a: &Action,
    status: ActionStatus,
) -> diesel::QueryResult<usize> {
    let to = match status {
        ActionStatus::Rejected => R::Declined,
        ActionStatus::AlreadyRemediated => R::Remediated,
        _ => R::Unremediated,
    };
    q::evidence_follow(
        conn,
        &a.tenant_id,
        a.id,
        &[],
        Some(to.as_str()),
        &[],
        &[R::PendingApproval.as_str()],
        true,
    )
    .await
}

/// Every target of an action has its outcome (an action ended without a run of its own).
pub async fn outcomes_of_all(conn: &mut Conn, a: &Action) -> diesel::QueryResult<usize> {
    let map: Vec<(&str, &str)> =
        ActionOutcome::ALL.iter().map(|o| (o.as_str(), evidence_status(*o).as_str())).collect();
    // Only evidence this action left running or waiting: another action may have settled it since.
    let mut only = names(&OPEN);
    only.push(R::Running.as_str());
    q::evidence_follow(conn, &a.tenant_id, a.id, &[], None, &map, &only, false).await
}

/// The copies `email_ids` of a running action got their outcomes.
pub async fn outcomes(conn: &mut Conn, a: &Action, email_ids: &[Uuid]) -> diesel::QueryResult<usize> {
    if email_ids.is_empty() {
        return Ok(0);
    }
    let map: Vec<(&str, &str)> =
        ActionOutcome::ALL.iter().map(|o| (o.as_str(), evidence_status(*o).as_str())).collect();
    q::evidence_follow(conn, &a.tenant_id, a.id, email_ids, None, &map, &[], false).await
}
