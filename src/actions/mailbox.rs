//! The mailbox interface an action executes through: given the copies a step claimed (each with where it
//! is now, read under its row lock), move what can be moved and say what happened to each. The built-in
//! implementation below moves copies in Parapet's own store, in the step's transaction, so a copy's move,
//! its timeline event and its target's outcome commit together or not at all. (A real mail system, the
//! next issue's IMAP server, plugs in here.)

use super::notes::type_label;
use crate::db::models::{Action, EmailEvent};
use crate::db::queries::actions::{self as q, Claimed, Outcome};
use crate::db::queries::emails;
use crate::db::Conn;
use crate::domain::actions::{event_kind, execute};
use crate::domain::enums::DeliveryLocation;
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Moves the claimed copies in the built-in store and returns each one's outcome.
pub async fn apply(
    conn: &mut Conn,
    action: &Action,
    claimed: &[Claimed],
    now: DateTime<Utc>,
) -> AppResult<Vec<Outcome>> {
    let actor = action.decided_by.clone().unwrap_or_else(|| action.proposed_by.clone());
    let reason = match &action.comment {
        Some(c) => format!("{}: {c}", type_label(action.action_type)),
        None => type_label(action.action_type).to_string(),
    };
    let mut outcomes = Vec::with_capacity(claimed.len());
    let (mut ids, mut received, mut to_locs, mut events) = (vec![], vec![], vec![], vec![]);
    for c in claimed {
        let from = c.location.as_deref().and_then(|l| l.parse::<DeliveryLocation>().ok());
        let (outcome, to) = execute(action.action_type, from);
        if let (Some(from), Some(to)) = (from, to) {
            ids.push(c.email_id);
            received.push(c.received_at);
            to_locs.push(to);
            events.push(EmailEvent {
                tenant_id: action.tenant_id.clone(),
                email_id: c.email_id,
                received_at: c.received_at,
                id: Uuid::now_v7(),
                kind: event_kind(action.source, from, action.action_type),
                at: now,
                from_location: Some(from),
                to_location: Some(to),
                actor: Some(actor.clone()),
                reason: Some(reason.clone()),
                action_id: Some(action.id),
                created_at: now,
            });
        }
        outcomes.push(Outcome { email_id: c.email_id, outcome, from, to });
    }
    q::move_copies(conn, &action.tenant_id, &ids, &received, &to_locs, now).await?;
    emails::insert_events(conn, &events).await?;
    Ok(outcomes)
}
