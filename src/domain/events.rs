//! The outbox's event types: what a change others must see writes, in the same transaction. Defined
//! here, below `db` (which stores them) and the services (which make them); `events::record` writes them.

use super::enums::CorrelationKind;
use serde::Serialize;
use uuid::Uuid;

/// Kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An alert was placed in an incident (created, joined, merged or moved by a person).
    AlertCorrelated,
    /// An incident's own fields changed (an alert joining counts).
    IncidentChanged,
    /// An alert's own fields changed.
    AlertChanged,
    /// A remediation action was proposed, decided, ran or ended.
    ActionChanged,
}

impl EventKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AlertCorrelated => "ALERT_CORRELATED",
            EventKind::IncidentChanged => "INCIDENT_CHANGED",
            EventKind::AlertChanged => "ALERT_CHANGED",
            EventKind::ActionChanged => "ACTION_CHANGED",
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
    /// Action concerned.
    pub action_id: Option<Uuid>,
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
            action_id: None,
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
            action_id: None,
            actor: actor.to_string(),
            payload: serde_json::json!({ "changedFields": changed_fields }),
        }
    }

    /// An `ACTION_CHANGED` event: the action's status is now `status` (`changed_fields` names what
    /// else changed, `targets` when outcomes were written).
    pub fn action_changed(
        action_id: Uuid,
        incident_id: Option<Uuid>,
        actor: &str,
        status: &str,
        changed_fields: &[&str],
    ) -> Self {
        NewEvent {
            kind: EventKind::ActionChanged,
            incident_id,
            alert_id: None,
            action_id: Some(action_id),
            actor: actor.to_string(),
            payload: serde_json::json!({ "status": status, "changedFields": changed_fields }),
        }
    }

    /// An `ALERT_CHANGED` event naming the fields that changed.
    pub fn alert_changed(incident_id: Uuid, alert_id: Uuid, actor: &str, changed_fields: &[&str]) -> Self {
        NewEvent {
            kind: EventKind::AlertChanged,
            incident_id: Some(incident_id),
            alert_id: Some(alert_id),
            action_id: None,
            actor: actor.to_string(),
            payload: serde_json::json!({ "changedFields": changed_fields }),
        }
    }
}
