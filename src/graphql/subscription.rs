//! Subscriptions: live alerts as they are correlated, incident changes, alert changes, action changes. Each event has a
//! cursor; `after` replays what a client missed, then continues live. Objects are the current state.
//! (No SQL here: async-graphql's `#[Subscription]` macro and diesel-async's `RunQueryDsl` clash.)

use crate::auth::Role;
use crate::domain::enums::{ActionStatus, CorrelationKind, Severity};
use crate::domain::keys::Key;
use crate::error::AppError;
use crate::events::hub::HubEvent;
use crate::events::{cursor, stream, EventKind};
use crate::graphql::types::action::Action;
use crate::graphql::types::alert::{Alert, CorrelationKey};
use crate::graphql::types::incident::Incident;
use crate::graphql::{parse_id, require, state};
use async_graphql::{Context, InputObject, Result, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use uuid::Uuid;

/// Narrows `alertCorrelated`.
#[derive(InputObject, Default)]
pub struct AlertCorrelatedFilter {
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only alerts placed in this incident.
    pub incident_id: Option<ID>,
    /// Only alerts from this service source.
    pub service_source: Option<String>,
}

/// Narrows `incidentChanged`.
#[derive(InputObject, Default)]
pub struct IncidentChangedFilter {
    /// Only this incident.
    pub incident_id: Option<ID>,
    /// Only incidents at least this severe (now).
    pub min_severity: Option<Severity>,
}

/// Narrows `alertChanged`.
#[derive(InputObject, Default)]
pub struct AlertChangedFilter {
    /// Only alerts of this incident.
    pub incident_id: Option<ID>,
    /// Only this alert.
    pub alert_id: Option<ID>,
}

/// Narrows `actionChanged`.
#[derive(InputObject, Default)]
pub struct ActionChangedFilter {
    /// Only events leaving the action in one of these statuses.
    pub status: Option<Vec<ActionStatus>>,
    /// Only actions of this incident.
    pub incident_id: Option<ID>,
    /// Only this action.
    pub action_id: Option<ID>,
}

/// A remediation action was proposed, decided, ran (`changedFields` holds `targets` as outcomes are
/// written) or ended.
#[derive(SimpleObject)]
pub struct ActionChangedEvent {
    /// Pass it as `after` to resume after this event.
    pub cursor: String,
    /// The status the change left the action in.
    pub status: ActionStatus,
    /// The action, as it is now.
    pub action: Action,
    /// GraphQL names of the fields that changed.
    pub changed_fields: Vec<String>,
    /// Who changed it (`system` for runs, expiry and re-evaluation).
    pub actor: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// An alert was placed in an incident.
#[derive(SimpleObject)]
pub struct AlertCorrelatedEvent {
    /// Pass it as `after` to resume after this event.
    pub cursor: String,
    /// How the alert got there.
    pub kind: CorrelationKind,
    /// The alert, as it is now.
    pub alert: Alert,
    /// The incident it was placed in, as it is now.
    pub incident: Incident,
    /// The keys it shared with the incident.
    pub matched_keys: Vec<CorrelationKey>,
    /// Who placed it.
    pub actor: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// An incident changed (an alert joining counts).
#[derive(SimpleObject)]
pub struct IncidentChangedEvent {
    /// Pass it as `after` to resume after this event.
    pub cursor: String,
    /// The incident, as it is now.
    pub incident: Incident,
    /// GraphQL names of the fields that changed (`alerts` when alerts joined or left).
    pub changed_fields: Vec<String>,
    /// Who changed it.
    pub actor: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// An alert changed.
#[derive(SimpleObject)]
pub struct AlertChangedEvent {
    /// Pass it as `after` to resume after this event.
    pub cursor: String,
    /// The alert, as it is now.
    pub alert: Alert,
    /// GraphQL names of the fields that changed.
    pub changed_fields: Vec<String>,
    /// Who changed it.
    pub actor: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// The subscription root.
#[derive(Default)]
pub struct Subscription;

fn opt_id(id: Option<&ID>) -> Result<Option<Uuid>, AppError> {
    id.map(parse_id).transpose()
}

fn fields(ev: &HubEvent) -> Vec<String> {
    ev.row.payload["changedFields"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The caller's tenant's events that `select` turns into a payload, ending when the token expires. An
/// error from the event stream is passed on (masked) and ends it.
async fn feed<T, F>(
    ctx: &Context<'_>,
    after: Option<String>,
    select: F,
) -> Result<impl Stream<Item = Result<T>> + Send + 'static>
where
    T: Send + 'static,
    F: Fn(&HubEvent) -> Option<T> + Send + 'static,
{
    let caller = require(ctx, Role::Reader)?;
    let after = after.as_deref().map(cursor::decode).transpose()?;
    let st = state(ctx);
    let events = stream::events(&st.hub, &st.pool, &caller.tenant_id, after).await?;
    let left = (caller.expires_at - Utc::now().timestamp()).max(0);
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(left.unsigned_abs()));
    Ok(events.take_until(expiry).filter_map(move |ev| {
        let out = match ev {
            Err(e) => Some(Err(e.into())),
            Ok(ev) => select(&ev).map(Ok),
        };
        async move { out }
    }))
}

#[Subscription]
impl Subscription {
    /// Alerts as they are correlated (created, joined, merged, moved by hand), with their incident.
    async fn alert_correlated(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertCorrelatedFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<AlertCorrelatedEvent>>> {
        let f = filter.unwrap_or_default();
        let incident_id = opt_id(f.incident_id.as_ref())?;
        feed(ctx, after, move |ev| {
            if ev.row.kind != EventKind::AlertCorrelated.as_str() {
                return None;
            }
            let (a, i) = (ev.alert.as_ref()?, ev.incident.as_ref()?);
            let kind = ev.row.payload["kind"].as_str()?.parse::<CorrelationKind>().ok()?;
            let keep = f.min_severity.is_none_or(|m| a.severity >= m)
                && incident_id.is_none_or(|id| id == i.id)
                && f.service_source.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(&a.service_source));
            keep.then(|| {
                let keys: Vec<Key> =
                    serde_json::from_value(ev.row.payload["matchedKeys"].clone()).unwrap_or_default();
                AlertCorrelatedEvent {
                    cursor: cursor::encode(ev.row.seq),
                    kind,
                    alert: Alert(a.clone()),
                    incident: Incident(i.clone()),
                    matched_keys: keys
                        .into_iter()
                        .map(|k| CorrelationKey { kind: k.kind, value: k.value })
                        .collect(),
                    actor: ev.row.actor.clone(),
                    at: ev.row.created_at,
                }
            })
        })
        .await
    }

    /// Changes to incidents: status, severity, assignment, tags, classification, name, merges, comments,
    /// and alerts joining.
    async fn incident_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<IncidentChangedFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<IncidentChangedEvent>>> {
        let f = filter.unwrap_or_default();
        let incident_id = opt_id(f.incident_id.as_ref())?;
        feed(ctx, after, move |ev| {
            if ev.row.kind != EventKind::IncidentChanged.as_str() {
                return None;
            }
            let i = ev.incident.as_ref()?;
            let keep =
                f.min_severity.is_none_or(|m| i.severity >= m) && incident_id.is_none_or(|id| id == i.id);
            keep.then(|| IncidentChangedEvent {
                cursor: cursor::encode(ev.row.seq),
                incident: Incident(i.clone()),
                changed_fields: fields(ev),
                actor: ev.row.actor.clone(),
                at: ev.row.created_at,
            })
        })
        .await
    }

    /// Changes to alerts: status, owner, classification, re-sent details.
    async fn alert_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertChangedFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<AlertChangedEvent>>> {
        let f = filter.unwrap_or_default();
        let incident_id = opt_id(f.incident_id.as_ref())?;
        let alert_id = opt_id(f.alert_id.as_ref())?;
        feed(ctx, after, move |ev| {
            if ev.row.kind != EventKind::AlertChanged.as_str() {
                return None;
            }
            let a = ev.alert.as_ref()?;
            let keep =
                incident_id.is_none_or(|id| id == a.incident_id) && alert_id.is_none_or(|id| id == a.id);
            keep.then(|| AlertChangedEvent {
                cursor: cursor::encode(ev.row.seq),
                alert: Alert(a.clone()),
                changed_fields: fields(ev),
                actor: ev.row.actor.clone(),
                at: ev.row.created_at,
            })
        })
        .await
    }

    /// Remediation actions as they are proposed, decided, run and end. Readers and above.
    async fn action_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActionChangedFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ActionChangedEvent>>> {
        let f = filter.unwrap_or_default();
        let incident_id = opt_id(f.incident_id.as_ref())?;
        let action_id = opt_id(f.action_id.as_ref())?;
        let statuses = f.status.unwrap_or_default();
        feed(ctx, after, move |ev| {
            if ev.row.kind != EventKind::ActionChanged.as_str() {
                return None;
            }
            let a = ev.action.as_ref()?;
            let status = ev.row.payload["status"].as_str()?.parse::<ActionStatus>().ok()?;
            let keep = (statuses.is_empty() || statuses.contains(&status))
                && incident_id.is_none_or(|id| a.incident_id == Some(id))
                && action_id.is_none_or(|id| id == a.id);
            keep.then(|| ActionChangedEvent {
                cursor: cursor::encode(ev.row.seq),
                status,
                action: Action(a.clone()),
                changed_fields: fields(ev),
                actor: ev.row.actor.clone(),
                at: ev.row.created_at,
            })
        })
        .await
    }
}
