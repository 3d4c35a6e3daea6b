//! What a change of an action writes besides the action: its incident's activity-log rows, the outbox
//! events, and the move of the incident's `lastUpdateAt`. Gathered while a transaction works and written
//! at its end, events last (the outbox's tenant lock is held until commit).

use crate::db::models::{Action, Activity};
use crate::db::queries::{activity, incidents};
use crate::db::Conn;
use crate::domain::activity::kind;
use crate::domain::enums::{ActionStatus, ActionType};
use crate::events::{self, NewEvent};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The writes a transaction gathers for the actions it changed.
#[derive(Debug, Default)]
pub struct Notes {
    activity: Vec<Activity>,
    events: Vec<NewEvent>,
    incidents: BTreeSet<Uuid>,
}

/// "Soft delete", "Move to Inbox"...
pub fn type_label(t: ActionType) -> &'static str {
    match t {
        ActionType::MoveToInbox => "Move to Inbox",
        ActionType::MoveToJunk => "Move to Junk",
        ActionType::MoveToDeletedItems => "Move to Deleted Items",
        ActionType::SoftDelete => "Soft delete",
        ActionType::HardDelete => "Hard delete",
        ActionType::RemoveInboxRule => "Remove inbox rule",
    }
}

/// What an action acts on, for the activity log: "Soft delete of 12 e-mail copies", or
/// "Remove inbox rule \"Forward all\" of bob@contoso.com".
pub fn what(a: &Action) -> String {
    match (&a.rule_name, &a.mailbox) {
        (Some(rule), Some(mailbox)) => format!("{} {rule:?} of {mailbox}", type_label(a.action_type)),
        _ => format!("{} of {} e-mail copies", type_label(a.action_type), a.target_count),
    }
}

impl Notes {
    /// Notes that `action` moved from `before` (`None`: it was just proposed) to its status now, by
    /// `actor`; `message` is what the activity log says; `fields` names what else changed.
    pub fn status(
        &mut self,
        action: &Action,
        before: Option<ActionStatus>,
        actor: &str,
        message: String,
        now: DateTime<Utc>,
    ) {
        let after = action.status;
        let mut fields = vec!["status"];
        let decided =
            matches!(after, ActionStatus::Approved | ActionStatus::Rejected | ActionStatus::Cancelled);
        if decided && before.is_none_or(|b| b == ActionStatus::Pending) {
            fields.extend(["decidedBy", "decidedAt", "decisionComment"]);
        }
        self.events.push(NewEvent::action_changed(
            action.id,
            action.incident_id,
            actor,
            after.as_str(),
            &fields,
        ));
        if let Some(incident) = action.incident_id {
            self.activity.push(Activity {
                tenant_id: action.tenant_id.clone(),
                id: Uuid::now_v7(),
                incident_id: Some(incident),
                alert_id: None,
                actor: actor.to_string(),
                kind: kind::ACTION.to_string(),
                field: Some("status".to_string()),
                before: before.map(|b| serde_json::json!({ "actionId": action.id, "status": b.as_str() })),
                after: Some(serde_json::json!({ "actionId": action.id, "status": after.as_str() })),
                message,
                created_at: now,
            });
            let was_pending = before == Some(ActionStatus::Pending);
            if was_pending != (after == ActionStatus::Pending) {
                self.events.push(NewEvent::incident_changed(incident, actor, &["pendingActionCount"]));
                self.incidents.insert(incident);
            }
        }
    }

    /// Notes that a running action's targets got outcomes (progress, no change of status).
    pub fn progress(&mut self, action: &Action, actor: &str) {
        self.events.push(NewEvent::action_changed(
            action.id,
            action.incident_id,
            actor,
            action.status.as_str(),
            &["targets"],
        ));
    }

    /// Writes what was gathered for `tenant_id`; call it as the transaction's last write.
    pub async fn write(
        self,
        conn: &mut Conn,
        tenant_id: &str,
        now: DateTime<Utc>,
    ) -> diesel::QueryResult<()> {
        activity::insert(conn, &self.activity).await?;
        let ids: Vec<Uuid> = self.incidents.into_iter().collect();
        incidents::touch_last_update(conn, tenant_id, &ids, now).await?;
        events::record(conn, tenant_id, &self.events).await
    }
}
