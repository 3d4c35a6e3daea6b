//! The built-in mailbox an action executes through when the tenant has no mail server of its own:
//! given the copies a step claimed (each with where it is now, read under its row lock), move what can be
//! moved in Parapet's own store and say what happened to each, in the step's transaction, so a copy's
//! move, its timeline event and its target's outcome commit together or not at all. Moves a real mail
//! server made (`remote`) are recorded in the store by the same [`record_moves`].

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

/// A copy's move to record in the store.
#[derive(Debug, Clone)]
pub struct Move {
    /// Copy id.
    pub email_id: Uuid,
    /// Its partition key.
    pub received_at: DateTime<Utc>,
    /// Where it was.
    pub from: DeliveryLocation,
    /// Where it is now.
    pub to: DeliveryLocation,
}

/// Records `moves` made by `action` in the store: each copy's latest location and a timeline event.
pub async fn record_moves(
    conn: &mut Conn,
    action: &Action,
    moves: &[Move],
    now: DateTime<Utc>,
) -> AppResult<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let actor = action.decided_by.clone().unwrap_or_else(|| action.proposed_by.clone());
    let reason = match &action.comment {
        Some(c) => format!("{}: {c}", type_label(action.action_type)),
        None => type_label(action.action_type).to_string(),
    };
    let events: Vec<EmailEvent> = moves
        .iter()
        .map(|m| EmailEvent {
            tenant_id: action.tenant_id.clone(),
            email_id: m.email_id,
            received_at: m.received_at,
            id: Uuid::now_v7(),
            kind: event_kind(action.source, m.from, action.action_type),
            at: now,
            from_location: Some(m.from),
            to_location: Some(m.to),
            actor: Some(actor.clone()),
            reason: Some(reason.clone()),
            action_id: Some(action.id),
            created_at: now,
        })
        .collect();
    let ids: Vec<Uuid> = moves.iter().map(|m| m.email_id).collect();
    let received: Vec<DateTime<Utc>> = moves.iter().map(|m| m.received_at).collect();
    let to: Vec<DeliveryLocation> = moves.iter().map(|m| m.to).collect();
    q::move_copies(conn, &action.tenant_id, &ids, &received, &to, now).await?;
    emails::insert_events(conn, &events).await?;
    Ok(())
}

/// Moves the claimed copies in the built-in store and returns each one's outcome.
pub async fn apply(
    conn: &mut Conn,
    action: &Action,
    claimed: &[Claimed],
    now: DateTime<Utc>,
) -> AppResult<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(claimed.len());
    let mut moves = Vec::new();
    for c in claimed {
        let from = c.location.as_deref().and_then(|l| l.parse::<DeliveryLocation>().ok());
        let (outcome, to) = execute(action.action_type, from);
        if let (Some(from), Some(to)) = (from, to) {
            moves.push(Move { email_id: c.email_id, received_at: c.received_at, from, to });
        }
        outcomes.push(Outcome { email_id: c.email_id, outcome, from, to, error: None });
    }
    record_moves(conn, action, &moves, now).await?;
    Ok(outcomes)
}
