//! What a batch of mail-flow records does to the store, decided in memory from the copies it names as
//! stored (locked): which copies are new, which are updated, which learned copies a record adopts, and
//! which timeline events each change appends. Records of one batch apply in order, so a batch may carry
//! a copy's delivery and its later move.

use crate::db::models::{Email, EmailEvent};
use crate::domain::email::{inferred_kind, PreparedEmail};
use crate::domain::enums::{EmailEventKind, EmailSource};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Who a timeline event names when the source names nobody.
pub const MAIL_FLOW_ACTOR: &str = "mail flow";

/// The outcome of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The copy's id.
    pub id: Uuid,
    /// Whether the copy is new.
    pub created: bool,
}

/// The writes a batch needs, in the order they run.
#[derive(Debug, Default)]
pub struct Plan {
    /// Learned copies a record adopts, moved to its receive time: (id, stored time, new time).
    pub moves: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>,
    /// New copies.
    pub inserts: Vec<Email>,
    /// Stored copies, rewritten.
    pub updates: Vec<Email>,
    /// Timeline events to append.
    pub events: Vec<EmailEvent>,
    /// Per record, in the order given.
    pub applied: Vec<Applied>,
}

type Identity = (String, String, DateTime<Utc>);

/// Plans `items` (each already validated, with its row as it would be stored) against `stored`, the
/// copies of the tenant that share an item's (network message id, recipient).
pub fn plan(stored: Vec<Email>, items: Vec<(PreparedEmail, Email)>, now: DateTime<Utc>) -> Plan {
    let mut plan = Plan::default();
    let mut state: HashMap<Identity, Email> = HashMap::new();
    let mut learned: HashMap<(String, String), Vec<Identity>> = HashMap::new();
    for row in stored {
        let id = identity(&row);
        if row.source == EmailSource::Alert {
            learned.entry((id.0.clone(), id.1.clone())).or_default().push(id.clone());
        }
        state.insert(id, row);
    }
    let mut new_ids: HashSet<Uuid> = HashSet::new();
    // In first-touched order, and as a set (a batch holds up to 2,000 records).
    let mut touched: Vec<Uuid> = vec![];
    let mut touched_set: HashSet<Uuid> = HashSet::new();

    for (item, fresh_row) in items {
        let key = identity(&fresh_row);
        if let Some(row) = state.get_mut(&key) {
            // A learned copy this record names exactly is its own now: no later record may adopt it.
            if let Some(ids) = learned.get_mut(&(key.0.clone(), key.1.clone())) {
                ids.retain(|k| k != &key);
            }
            let changed = update(row, &item, fresh_row, now, &mut plan.events);
            if changed && !new_ids.contains(&row.id) && touched_set.insert(row.id) {
                touched.push(row.id);
            }
            plan.applied.push(Applied { id: row.id, created: false });
            continue;
        }
        let adoptable = learned.get_mut(&(key.0.clone(), key.1.clone())).and_then(Vec::pop);
        if let Some(old_key) = adoptable.and_then(|k| state.remove(&k).map(|r| (k, r))) {
            let (old_key, old) = old_key;
            plan.moves.push((old.id, old_key.2, key.2));
            let mut row = fresh_row;
            row.id = old.id;
            row.created_at = old.created_at;
            row.moved_at = old.moved_at;
            creation_events(&row, &item, &mut plan.events, now);
            if touched_set.insert(row.id) {
                touched.push(row.id);
            }
            plan.applied.push(Applied { id: row.id, created: false });
            state.insert(key, row);
            continue;
        }
        creation_events(&fresh_row, &item, &mut plan.events, now);
        new_ids.insert(fresh_row.id);
        plan.applied.push(Applied { id: fresh_row.id, created: true });
        state.insert(key, fresh_row);
    }

    let mut by_id: HashMap<Uuid, Email> = state.into_values().map(|r| (r.id, r)).collect();
    for id in touched {
        if let Some(r) = by_id.remove(&id) {
            plan.updates.push(r);
        }
    }
    let mut inserts: Vec<Email> = by_id.into_values().filter(|r| new_ids.contains(&r.id)).collect();
    inserts.sort_by_key(|r| r.id);
    plan.inserts = inserts;
    plan
}

fn identity(row: &Email) -> Identity {
    (row.network_message_id.clone(), row.recipient.clone(), row.received_at)
}

/// The time a new copy's state holds from: the record's `eventAt`; else its delivery, or now when the
/// record already reports a later location.
pub fn initial_state_at(item: &PreparedEmail, now: DateTime<Utc>) -> DateTime<Utc> {
    item.event_at.unwrap_or(if item.latest_delivery_location == item.original_delivery_location {
        item.received_at
    } else {
        now.max(item.received_at)
    })
}

fn creation_events(row: &Email, item: &PreparedEmail, events: &mut Vec<EmailEvent>, now: DateTime<Utc>) {
    let actor = item.event_actor.clone().unwrap_or_else(|| MAIL_FLOW_ACTOR.to_string());
    events.push(event(
        row,
        EmailEventKind::OriginalDelivery,
        row.received_at,
        None,
        row.original_delivery_location,
        &actor,
        None,
        now,
    ));
    if row.latest_delivery_location != row.original_delivery_location {
        let kind = item
            .event_kind
            .unwrap_or_else(|| inferred_kind(row.original_delivery_location, row.latest_delivery_location));
        events.push(event(
            row,
            kind,
            row.state_at,
            Some(row.original_delivery_location),
            row.latest_delivery_location,
            &actor,
            item.event_reason.clone(),
            now,
        ));
    }
}

/// Applies a record to a stored copy: a record older than the copy's state only adds to its timeline.
/// Returns whether the copy itself changed (and is to be written).
fn update(
    row: &mut Email,
    item: &PreparedEmail,
    fresh: Email,
    now: DateTime<Utc>,
    events: &mut Vec<EmailEvent>,
) -> bool {
    let at = item.event_at.unwrap_or(now);
    let actor = item.event_actor.clone().unwrap_or_else(|| MAIL_FLOW_ACTOR.to_string());
    if at < row.state_at {
        if item.event_kind.is_some() || item.latest_delivery_location != item.original_delivery_location {
            let kind = item.event_kind.unwrap_or_else(|| {
                inferred_kind(item.original_delivery_location, item.latest_delivery_location)
            });
            events.push(event(
                row,
                kind,
                at,
                None,
                item.latest_delivery_location,
                &actor,
                item.event_reason.clone(),
                now,
            ));
        }
        return false;
    }
    let before = row.latest_delivery_location;
    let (id, received_at, created_at, moved_at) = (row.id, row.received_at, row.created_at, row.moved_at);
    *row = Email { id, received_at, created_at, moved_at, state_at: at, updated_at: now, ..fresh };
    if row.latest_delivery_location != before {
        let kind = item.event_kind.unwrap_or_else(|| inferred_kind(before, row.latest_delivery_location));
        events.push(event(
            row,
            kind,
            at,
            Some(before),
            row.latest_delivery_location,
            &actor,
            item.event_reason.clone(),
            now,
        ));
    }
    true
}

/// A timeline event of `row`.
#[allow(clippy::too_many_arguments)]
pub fn event(
    row: &Email,
    kind: EmailEventKind,
    at: DateTime<Utc>,
    from: Option<crate::domain::enums::DeliveryLocation>,
    to: crate::domain::enums::DeliveryLocation,
    actor: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> EmailEvent {
    EmailEvent {
        tenant_id: row.tenant_id.clone(),
        email_id: row.id,
        received_at: row.received_at,
        id: Uuid::now_v7(),
        kind,
        at,
        from_location: from,
        to_location: Some(to),
        actor: Some(actor.to_string()),
        reason,
        action_id: None,
        created_at: now,
    }
}
