//! Actions whose job failed for good (its attempts spent while the database stayed unavailable for
//! days) would otherwise stay `RUNNING` for ever: the sweep ends them, their open targets `FAILED`, so
//! the action center shows what was and was not moved.

use super::evidence;
use super::notes::{what, Notes};
use crate::db::queries::actions as q;
use crate::db::queries::remote_targets as rq;
use crate::db::Pool;
use crate::domain::actions::Counts;
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::{ActionOutcome, ActionType};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;

/// Most stranded actions one sweep ends.
const BATCH: i64 = 100;

/// Ends the actions whose job failed for good; returns how many.
pub async fn sweep(pool: &Pool, now: DateTime<Utc>) -> AppResult<usize> {
    let mut conn = pool.get().await?;
    let found = q::stranded(&mut conn, BATCH).await?;
    let mut ended = 0;
    for a in found {
        let done = conn
            .transaction::<_, AppError, _>(async |conn| {
                if a.action_type == ActionType::RemoveInboxRule {
                    // Its one target is the rule itself, not a row: record it failed.
                    let why = "its job failed for good before the rule was removed";
                    rq::record_rule_outcome(conn, &a.tenant_id, a.id, ActionOutcome::Failed, Some(why), now)
                        .await?;
                }
                let Some(a) = q::fail_open_targets(conn, &a.tenant_id, a.id, now).await? else {
                    return Ok(false);
                };
                let before = a.status;
                let counts = Counts {
                    success: a.success_count,
                    failed: a.failed_count,
                    already: a.already_count,
                    not_found: a.not_found_count,
                };
                let to = counts.final_status();
                let Some(done) = q::finish(conn, &a.tenant_id, a.id, to, now).await? else {
                    return Ok(false);
                };
                evidence::outcomes_of_all(conn, &done).await?;
                let mut notes = Notes::default();
                let message = format!(
                    "{} ended: its job failed for good, {} of {} targets were not acted on",
                    what(&done),
                    done.target_count - done.success_count - done.already_count - done.not_found_count,
                    done.target_count
                );
                notes.status(&done, Some(before), SYSTEM_ACTOR, message, now);
                notes.write(conn, &done.tenant_id, now).await?;
                Ok(true)
            })
            .await?;
        ended += usize::from(done);
    }
    Ok(ended)
}
