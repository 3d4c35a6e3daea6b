//! Running an approved action, as a job: it goes `RUNNING`, then works through its open targets in
//! steps of [`STEP`]. Each step is one transaction that claims open targets (`SKIP LOCKED`), locks their
//! copies, moves them through the mailbox, writes each target's outcome (only where none is written) and
//! the action's counts, and re-evaluates other pending actions on the moved copies. A run killed
//! mid-way loses only its uncommitted step; whoever runs the job next goes on with the targets still
//! open, so no copy is moved twice and none is left out. The last step ends the action `COMPLETED` or
//! `FAILED`.

use super::notes::{type_label, Notes};
use super::{evidence, mailbox, reevaluate};
use crate::db::models::Action;
use crate::db::queries::actions as q;
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::actions::Counts;
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::{ActionOutcome, ActionStatus};
use crate::error::AppError;
use crate::jobs::{Job, JobError};
use chrono::Utc;
use diesel_async::AsyncConnection;
use uuid::Uuid;

/// Targets one step moves.
pub const STEP: i64 = 1_000;

enum Next {
    More,
    Done,
}

fn job_error(e: AppError) -> JobError {
    match e {
        AppError::NotFound(m) | AppError::BadInput(m) | AppError::Forbidden(m) => JobError::Fatal(m),
        other => JobError::Retry(format!("{other:?}")),
    }
}

/// Runs the action the job names to its end.
pub async fn run(pool: &Pool, job: &Job) -> Result<(), JobError> {
    let id = job.payload["actionId"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(|| JobError::Fatal(format!("job {} names no action", job.id)))?;
    let tenant = job.tenant_id.as_str();
    loop {
        // A step that collided (a deadlock with a mail-flow batch) runs again at once, not a whole
        // job retry later.
        let next = retry_transient(pool, "an action step", async |conn: &mut Conn| {
            conn.transaction::<_, AppError, _>(async |conn| step(conn, tenant, id).await).await
        })
        .await
        .map_err(job_error)?;
        if let Next::Done = next {
            return Ok(());
        }
    }
}

async fn step(conn: &mut Conn, tenant_id: &str, id: Uuid) -> Result<Next, AppError> {
    let now = Utc::now();
    q::tenant_lock(conn, super::lock(tenant_id), false).await?;
    let Some(action) = q::find(conn, tenant_id, id).await? else {
        return Err(AppError::NotFound(format!("action {id} no longer exists")));
    };
    let mut notes = Notes::default();
    let next = match action.status {
        ActionStatus::Approved => {
            if let Some(running) = q::start(conn, tenant_id, id, now).await? {
                evidence::running(conn, &running).await?;
                let message = format!(
                    "{} of {} e-mail copies started",
                    type_label(running.action_type),
                    running.target_count
                );
                notes.status(&running, Some(ActionStatus::Approved), SYSTEM_ACTOR, message, now);
            }
            Next::More
        }
        ActionStatus::Running => {
            let claimed = q::claim_open(conn, tenant_id, id, STEP).await?;
            if claimed.is_empty() {
                finish(conn, &action, &mut notes).await?
            } else {
                let outcomes = mailbox::apply(conn, &action, &claimed, now).await?;
                q::record_outcomes(conn, tenant_id, id, &outcomes, now).await?;
                let ids: Vec<Uuid> = outcomes.iter().map(|o| o.email_id).collect();
                evidence::outcomes(conn, &action, &ids).await?;
                let moved: Vec<Uuid> = outcomes
                    .iter()
                    .filter(|o| o.outcome == ActionOutcome::Success)
                    .map(|o| o.email_id)
                    .collect();
                reevaluate::after_moves(conn, tenant_id, &moved, &mut notes, now).await?;
                notes.progress(&action, SYSTEM_ACTOR);
                Next::More
            }
        }
        // Pending, or ended: nothing (more) to run.
        _ => Next::Done,
    };
    notes.write(conn, tenant_id, now).await?;
    Ok(next)
}

/// Ends a running action whose targets all have outcomes. Targets still open but held by another run
/// (a worker that lost its lease and has not noticed yet) make this run wait and try again.
async fn finish(conn: &mut Conn, action: &Action, notes: &mut Notes) -> Result<Next, AppError> {
    let now = Utc::now();
    // The counts as every committed step left them: a step of another run writes them under this lock.
    let Some(action) = q::lock(conn, &action.tenant_id, action.id).await? else {
        return Ok(Next::Done);
    };
    let counts = Counts {
        success: action.success_count,
        failed: action.failed_count,
        already: action.already_count,
        not_found: action.not_found_count,
    };
    let to = counts.final_status();
    let Some(done) = q::finish(conn, &action.tenant_id, action.id, to, now).await? else {
        let open = q::target_count(conn, &action.tenant_id, action.id, &[]).await?
            - i64::from(counts.success + counts.failed + counts.already + counts.not_found);
        if open > 0 {
            return Err(AppError::Transient(format!(
                "{open} targets of action {} are held by another run",
                action.id
            )));
        }
        return Ok(Next::Done);
    };
    let message = format!(
        "{} of {} e-mail copies {}: {} moved, {} already there, {} not found, {} failed",
        type_label(done.action_type),
        done.target_count,
        if to == ActionStatus::Failed { "failed" } else { "completed" },
        done.success_count,
        done.already_count,
        done.not_found_count,
        done.failed_count
    );
    notes.status(&done, Some(ActionStatus::Running), SYSTEM_ACTOR, message, now);
    Ok(Next::Done)
}
