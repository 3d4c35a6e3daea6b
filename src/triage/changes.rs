//! What one triage operation changed: activity-log entries collected while the rules run, written in the
//! same transaction when the operation is done.

use crate::db::models::Activity;
use crate::db::queries;
use crate::db::Conn;
use crate::error::AppResult;
use crate::events::NewEvent;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// One activity-log entry under construction.
pub(crate) struct Entry {
    actor: String,
    kind: &'static str,
    incident_id: Option<Uuid>,
    alert_id: Option<Uuid>,
    field: Option<&'static str>,
    before: Option<Value>,
    after: Option<Value>,
    message: String,
}

impl Entry {
    /// An entry about an incident.
    pub(crate) fn incident(incident_id: Uuid, actor: &str, kind: &'static str, message: String) -> Self {
        Self {
            actor: actor.to_string(),
            kind,
            incident_id: Some(incident_id),
            alert_id: None,
            field: None,
            before: None,
            after: None,
            message,
        }
    }

    /// An entry about an alert; it also names the alert's incident so the incident's log shows it.
    pub(crate) fn alert(
        alert_id: Uuid,
        incident_id: Uuid,
        actor: &str,
        kind: &'static str,
        message: String,
    ) -> Self {
        Self { alert_id: Some(alert_id), ..Self::incident(incident_id, actor, kind, message) }
    }

    /// The field that changed, with its values before and after.
    pub(crate) fn field(mut self, field: &'static str, before: Value, after: Value) -> Self {
        self.field = Some(field);
        self.before = Some(before);
        self.after = Some(after);
        self
    }

    /// Detail without a field (a comment's id, say).
    pub(crate) fn after(mut self, after: Value) -> Self {
        self.after = Some(after);
        self
    }
}

/// The entries of one operation, all stamped with the operation's time.
pub(crate) struct Changes {
    tenant_id: String,
    /// When the operation happened; every row it writes carries this time.
    pub(crate) now: DateTime<Utc>,
    entries: Vec<Entry>,
}

impl Changes {
    /// Starts collecting for the tenant.
    pub(crate) fn new(tenant_id: &str) -> Self {
        // PostgreSQL keeps microseconds: truncate so what a mutation returns equals what a read returns.
        let now = Utc::now().trunc_subsecs(6);
        Self { tenant_id: tenant_id.to_string(), now, entries: Vec::new() }
    }

    /// Adds entries.
    pub(crate) fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.entries.extend(entries);
    }

    /// Adds one entry.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// Writes what changed, inside the operation's transaction. This is the one place every triage change
    /// passes through after it is made: the outbox events for subscriptions are derived from the same
    /// entries (one event per alert and per incident touched, naming the changed fields), written last,
    /// so they commit or roll back with the change.
    pub(crate) async fn commit(self, conn: &mut Conn) -> AppResult<()> {
        let events = self.events();
        let rows: Vec<Activity> = self
            .entries
            .into_iter()
            .map(|e| Activity {
                tenant_id: self.tenant_id.clone(),
                id: Uuid::now_v7(),
                incident_id: e.incident_id,
                alert_id: e.alert_id,
                actor: e.actor,
                kind: e.kind.to_string(),
                field: e.field.map(str::to_string),
                before: e.before,
                after: e.after,
                message: e.message,
                created_at: self.now,
            })
            .collect();
        queries::activity::insert(conn, &rows).await?;
        crate::events::record(conn, &self.tenant_id, &events).await?;
        Ok(())
    }

    /// One `ALERT_CHANGED` per alert and one `INCIDENT_CHANGED` per incident the entries touch.
    fn events(&self) -> Vec<NewEvent> {
        // (incident, alert) -> (actor, fields), in first-touched order.
        // Found through an index, not a scan: resolving an incident of 10,000 alerts touches 10,000 groups.
        type Group = ((Uuid, Option<Uuid>), String, Vec<&'static str>);
        let mut groups: Vec<Group> = vec![];
        let mut index: HashMap<(Uuid, Option<Uuid>), usize> = HashMap::new();
        for e in &self.entries {
            let Some(incident_id) = e.incident_id else { continue };
            let field = match (e.field, e.kind) {
                (Some(f), _) => f,
                (None, super::kind::COMMENT) => "comments",
                (None, _) => continue,
            };
            let key = (incident_id, e.alert_id);
            match index.get(&key).and_then(|&i| groups.get_mut(i)) {
                // A handful of fields at most: a scan is the cheap way here.
                Some((_, _, fields)) => {
                    if !fields.contains(&field) {
                        fields.push(field);
                    }
                }
                None => {
                    index.insert(key, groups.len());
                    groups.push((key, e.actor.clone(), vec![field]));
                }
            }
        }
        groups
            .into_iter()
            .map(|((incident_id, alert_id), actor, fields)| match alert_id {
                Some(a) => NewEvent::alert_changed(incident_id, a, &actor, &fields),
                None => NewEvent::incident_changed(incident_id, &actor, &fields),
            })
            .collect()
    }
}
