//! Running an approved action, as a job: it goes `RUNNING`, then works through its open targets in
//! steps of [`STEP`]. Each step is one transaction that claims open targets (`SKIP LOCKED`), locks their
//! copies, moves them through the mailbox, writes each target's outcome (only where none is written) and
//! the action's counts, and re-evaluates other pending actions on the moved copies. A run killed
//! mid-way loses only its uncommitted step; whoever runs the job next goes on with the targets still
//! open, so no copy is moved twice and none is left out. The last step ends the action `COMPLETED` or
//! `FAILED`. When the tenant has its own mail server the targets are tried there instead (`remote`:
//! mailbox work outside the step's transaction, each try counted), and inbox-rule actions go to `rules`.

use super::notes::{what, Notes};
use super::{evidence, mailbox, reevaluate, remote, rules};
use crate::db::models::Action;
use crate::db::queries::actions as q;
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::actions::Counts;
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::{ActionOutcome, ActionStatus};
use crate::error::AppError;
use crate::jobs::{Job, JobError};
use crate::mailserver::server::{MailAccess, Server};
use chrono::Utc;
use diesel_async::AsyncConnection;
use uuid::Uuid;

/// Targets one step moves.
pub const STEP: i64 = 1_000;

pub(super) enum Next {
    More,
    Done,
    /// Running, on the tenant's mail server: the run tries its targets outside the step's transaction.
    Remote(Box<Action>),
}

fn job_error(e: AppError) -> JobError {
    match e {
        AppError::NotFound(m) | AppError::BadInput(m) | AppError::Forbidden(m) => JobError::Fatal(m),
        other => JobError::Retry(format!("{other:?}")),
    }
}

/// Runs the action the job names to its end: in the built-in store, or, when the tenant has a mail
/// server, in its mailboxes (`remote`), where a target that could not be reached leaves the run to be
/// retried by the runner.
pub async fn run(pool: &Pool, access: &MailAccess, job: &Job) -> Result<(), JobError> {
    let id = job.payload["actionId"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(|| JobError::Fatal(format!("job {} names no action", job.id)))?;
    let tenant = job.tenant_id.as_str();
    let server: Option<Server> = {
        let mut conn = pool.get().await.map_err(|e| job_error(e.into()))?;
        remote::server_of(&mut conn, access, tenant).await.map_err(job_error)?
    };
    // Where the remote steps of this run go on from: a target tried once in a run waits for the next.
    let mut after: Option<Uuid> = None;
    let mut unreached: Option<String> = None;
    let mut tries = 1;
    loop {
        // A step that collided (a deadlock with a mail-flow batch) runs again at once, not a whole
        // job retry later.
        let remote = server.is_some();
        let next = retry_transient(pool, "an action step", async |conn: &mut Conn| {
            conn.transaction::<_, AppError, _>(async |conn| step(conn, tenant, id, remote).await).await
        })
        .await
        .map_err(job_error)?;
        match next {
            Next::More => {}
            Next::Done => return Ok(()),
            Next::Remote(action) => {
                if action.action_type == crate::domain::enums::ActionType::RemoveInboxRule {
                    return rules::run(pool, access, server.as_ref(), &action).await;
                }
                let Some(server) = &server else { return Ok(()) };
                let stepped = remote::step(pool, access, server, &action, after).await.map_err(job_error)?;
                if stepped.left_open > 0 {
                    unreached = stepped.error.or(unreached);
                    tries = tries.max(stepped.tries);
                }
                if stepped.tried > 0 {
                    after = stepped.last;
                    continue;
                }
                if let Some(e) = unreached {
                    // Every open target was tried in this run: the runner tries again after its backoff.
                    let m = format!("targets of action {id} could not be reached: {e}");
                    return Err(JobError::RetryAfter(access.retry_wait(tries + 1), m));
                }
                let done = retry_transient(pool, "ending an action", async |conn: &mut Conn| {
                    conn.transaction::<_, AppError, _>(async |conn| {
                        q::tenant_lock(conn, super::lock(tenant), false).await?;
                        let mut notes = Notes::default();
                        let next = finish(conn, &action, &mut notes).await?;
                        notes.write(conn, tenant, Utc::now()).await?;
                        Ok(next)
                    })
                    .await
                })
                .await
                .map_err(job_error)?;
                if let Next::Done = done {
                    return Ok(());
                }
            }
        }
    }
}

async fn step(conn: &mut Conn, tenant_id: &str, id: Uuid, remote: bool) -> Result<Next, AppError> {
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
                let message = format!("{} started", what(&running));
                notes.status(&running, Some(ActionStatus::Approved), SYSTEM_ACTOR, message, now);
            }
            Next::More
        }
        ActionStatus::Running
            if remote || action.action_type == crate::domain::enums::ActionType::RemoveInboxRule =>
        {
            Next::Remote(Box::new(action.clone()))
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
/// (Also ends an inbox-rule action once its outcome is recorded.)
pub(super) async fn finish(conn: &mut Conn, action: &Action, notes: &mut Notes) -> Result<Next, AppError> {
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
    let ended = if to == ActionStatus::Failed { "failed" } else { "completed" };
    let message = match (done.action_type, &done.error) {
        (crate::domain::enums::ActionType::RemoveInboxRule, Some(e)) => {
            format!("{} {ended}: {e}", what(&done))
        }
        (crate::domain::enums::ActionType::RemoveInboxRule, None) => {
            format!("{} {ended}: the script was rewritten without it and reactivated", what(&done))
        }
        _ => format!(
            "{} {ended}: {} moved, {} already there, {} not found, {} failed",
            what(&done),
            done.success_count,
            done.already_count,
            done.not_found_count,
            done.failed_count
        ),
    };
    notes.status(&done, Some(ActionStatus::Running), SYSTEM_ACTOR, message, now);
    Ok(Next::Done)
}
