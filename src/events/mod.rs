//! The event outbox: every change others must see writes event rows in the same transaction as the
//! change. A per-tenant advisory lock taken as the last step before the rows are written makes a
//! tenant's sequence order equal its commit order, so a reader that has seen event N of a tenant has
//! seen every earlier one. `pg_notify` (delivered at commit) wakes every replica's hub.

pub mod cursor;
pub mod hub;
pub mod retention;
pub mod stream;

use crate::correlation::keys::lock_id;
use crate::db::queries::events as q;
use crate::db::Conn;
use crate::domain::enums::CorrelationKind;
use serde::Serialize;
use uuid::Uuid;

/// The channel replicas LISTEN on; the payload is the tenant id.
pub const CHANNEL: &str = "parapet_events";

/// Kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An alert was placed in an incident (created, joined, merged or moved by a person).
    AlertCorrelated,
    /// An incident's own fields changed (an alert joining counts).
    IncidentChanged,
    /// An alert's own fields changed.
    AlertChanged,
}

impl EventKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AlertCorrelated => "ALERT_CORRELATED",
            EventKind::IncidentChanged => "INCIDENT_CHANGED",
            EventKind::AlertChanged => "ALERT_CHANGED",
        }
    }
}

/// An event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Kind.
    pub kind: EventKind,
    /// Incident concerned.
    pub incident_id: Option<Uuid>,
    /// Alert concerned.
    pub alert_id: Option<Uuid>,
    /// Who caused it.
    pub actor: String,
    /// Kind-specific detail (correlation kind, matched keys, changed fields).
    pub payload: serde_json::Value,
}

/// Detail of an `ALERT_CORRELATED` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrelatedPayload<K: Serialize> {
    /// How the alert got into the incident.
    pub kind: CorrelationKind,
    /// Keys it shared.
    pub matched_keys: K,
}

impl NewEvent {
    /// An `ALERT_CORRELATED` event.
    pub fn alert_correlated(
        incident_id: Uuid,
        alert_id: Uuid,
        actor: &str,
        kind: CorrelationKind,
        matched_keys: impl Serialize,
    ) -> Self {
        NewEvent {
            kind: EventKind::AlertCorrelated,
            incident_id: Some(incident_id),
            alert_id: Some(alert_id),
            actor: actor.to_string(),
            payload: serde_json::to_value(CorrelatedPayload { kind, matched_keys }).unwrap_or_default(),
        }
    }

    /// An `INCIDENT_CHANGED` event naming the fields that changed.
    pub fn incident_changed(incident_id: Uuid, actor: &str, changed_fields: &[&str]) -> Self {
        NewEvent {
            kind: EventKind::IncidentChanged,
            incident_id: Some(incident_id),
            alert_id: None,
            actor: actor.to_string(),
            payload: serde_json::json!({ "changedFields": changed_fields }),
        }
    }

    /// An `ALERT_CHANGED` event naming the fields that changed.
    pub fn alert_changed(incident_id: Uuid, alert_id: Uuid, actor: &str, changed_fields: &[&str]) -> Self {
        NewEvent {
            kind: EventKind::AlertChanged,
            incident_id: Some(incident_id),
            alert_id: Some(alert_id),
            actor: actor.to_string(),
            payload: serde_json::json!({ "changedFields": changed_fields }),
        }
    }
}

/// Writes `events` for the tenant and schedules the NOTIFY. Call it as the LAST write of the
/// transaction: the tenant's event lock is held until commit.
pub async fn record(conn: &mut Conn, tenant_id: &str, events: &[NewEvent]) -> diesel::QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    q::lock_tenant_events(conn, lock_id(tenant_id, "EVENTS", "")).await?;
    q::insert(conn, tenant_id, events).await?;
    q::notify(conn, CHANNEL, tenant_id).await
}
