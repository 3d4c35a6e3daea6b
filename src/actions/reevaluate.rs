//! Pending actions follow their copies: whenever a copy's latest location changes (a mail-flow update,
//! ZAP, another action), each pending action targeting it notes whether the copy is now at its
//! destination, and one whose targets are all there ends `ALREADY_REMEDIATED`, nothing left to approve.
//! A count per action keeps this proportional to the copies that moved, not to the action's size.

use super::evidence;
use super::notes::{type_label, Notes};
use crate::db::queries::actions as q;
use crate::db::Conn;
use crate::domain::actions::satisfied;
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::{ActionStatus, ActionType, DeliveryLocation};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Re-evaluates the pending actions targeting the tenant's copies `email_ids`, which may have moved,
/// adding what changed to `notes`. The caller holds the tenant's action lock (`super::lock`, shared),
/// taken first in its transaction.
pub async fn after_moves(
    conn: &mut Conn,
    tenant_id: &str,
    email_ids: &[Uuid],
    notes: &mut Notes,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if email_ids.is_empty() || !q::has_pending(conn, tenant_id).await? {
        return Ok(());
    }
    let pending = q::pending_targets_of(conn, tenant_id, email_ids).await?;
    let flips: Vec<(Uuid, Uuid, bool)> = pending
        .iter()
        .filter_map(|t| {
            let (Ok(kind), Ok(at)) =
                (t.action_type.parse::<ActionType>(), t.location.parse::<DeliveryLocation>())
            else {
                return None;
            };
            let there = satisfied(kind, at);
            (there != t.at_destination).then_some((t.action_id, t.email_id, there))
        })
        .collect();
    let done = q::flip_at_destination(conn, tenant_id, &flips, now).await?;
    for action in q::already_remediated(conn, tenant_id, &done, now).await? {
        evidence::ended_undecided(conn, &action, ActionStatus::AlreadyRemediated).await?;
        let message = format!(
            "{} of {} e-mail copies already remediated: every copy reached the destination before a decision",
            type_label(action.action_type),
            action.target_count
        );
        notes.status(&action, Some(ActionStatus::Pending), SYSTEM_ACTOR, message, now);
    }
    Ok(())
}

/// [`after_moves`] on its own: writes its notes (call it as the transaction's last write).
pub async fn after_moves_and_write(
    conn: &mut Conn,
    tenant_id: &str,
    email_ids: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut notes = Notes::default();
    after_moves(conn, tenant_id, email_ids, &mut notes, now).await?;
    notes.write(conn, tenant_id, now).await?;
    Ok(())
}
