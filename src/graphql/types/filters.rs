//! Inputs of the queues: filters and orderings of `incidents` and `alerts`, checked (sizes, storable text,
//! dates in range) and turned into the database layer's filters.

use crate::db::queries::alerts::{AlertFilter as DbAlertFilter, AlertSort};
use crate::db::queries::incidents::{IncidentFilter as DbIncidentFilter, IncidentSort};
use crate::db::queries::queue::SortDir;
use crate::domain::enums::*;
use crate::domain::{text, time};
use crate::error::{AppError, AppResult};
use crate::graphql::parse_id;
use async_graphql::{Enum, InputObject, ID};
use chrono::{DateTime, Utc};

/// Most values one list field of a filter may hold.
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest text value of a filter, in characters.
pub const MAX_FILTER_TEXT: usize = 256;

fn texts(name: &str, v: Option<Vec<String>>, lower: bool) -> AppResult<Vec<String>> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_FILTER_VALUES {
        return Err(AppError::bad(format!("{name} may list at most {MAX_FILTER_VALUES} values")));
    }
    v.into_iter()
        .map(|s| {
            let s =
                text::bounded(&format!("{name} value"), &s, MAX_FILTER_TEXT).map_err(AppError::BadInput)?;
            Ok(if lower { s.to_lowercase() } else { s })
        })
        .collect()
}

fn list<T>(name: &str, v: Option<Vec<T>>) -> AppResult<Vec<T>> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_FILTER_VALUES {
        return Err(AppError::bad(format!("{name} may list at most {MAX_FILTER_VALUES} values")));
    }
    Ok(v)
}

fn search(v: Option<String>) -> AppResult<Option<String>> {
    let Some(s) = v else { return Ok(None) };
    let s = text::bounded("search", &s, MAX_FILTER_TEXT).map_err(AppError::BadInput)?;
    Ok((!s.is_empty()).then_some(s))
}

/// A time bound of a filter, inside the range PostgreSQL and the server accept (`domain::time`).
fn bound(name: &str, at: Option<DateTime<Utc>>) -> AppResult<Option<DateTime<Utc>>> {
    time::check_opt(name, at).map_err(AppError::BadInput)
}

/// Which incidents to list. List fields match any of their values (an empty or omitted list does not
/// filter); fields combine with AND. Time bounds: `…After` is inclusive, `…Before` exclusive.
#[derive(InputObject, Debug, Clone, Default)]
#[graphql(name = "IncidentFilter")]
pub struct IncidentFilterInput {
    /// Any of these statuses. Without it, every status but `REDIRECTED` (merged incidents).
    pub status: Option<Vec<IncidentStatus>>,
    /// Any of these severities.
    pub severity: Option<Vec<Severity>>,
    /// Assigned to any of these UPNs (case-insensitive).
    pub assigned_to: Option<Vec<String>>,
    /// `true`: only unassigned incidents; `false`: only assigned ones.
    pub unassigned: Option<bool>,
    /// Carrying any of these tags (custom or system).
    pub tags: Option<Vec<String>>,
    /// Any of these classifications.
    pub classification: Option<Vec<Classification>>,
    /// Any of these determinations.
    pub determination: Option<Vec<Determination>>,
    /// Holding an alert from any of these service sources.
    pub service_source: Option<Vec<String>>,
    /// Holding an alert from any of these detection sources.
    pub detection_source: Option<Vec<String>>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Last updated at or after.
    pub updated_after: Option<DateTime<Utc>>,
    /// Last updated before.
    pub updated_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the name, an exact incident id, or an exact mailbox, user or sender
    /// address found in its alerts.
    pub search: Option<String>,
}

impl IncidentFilterInput {
    /// Checks sizes and normalises values into the database layer's filter.
    pub fn into_db(self) -> AppResult<DbIncidentFilter> {
        Ok(DbIncidentFilter {
            statuses: list("status", self.status)?,
            severities: list("severity", self.severity)?,
            assigned_to: texts("assignedTo", self.assigned_to, true)?,
            unassigned: self.unassigned,
            tags: texts("tags", self.tags, false)?,
            classifications: list("classification", self.classification)?,
            determinations: list("determination", self.determination)?,
            service_sources: texts("serviceSource", self.service_source, false)?,
            detection_sources: texts("detectionSource", self.detection_source, false)?,
            created_after: bound("createdAfter", self.created_after)?,
            created_before: bound("createdBefore", self.created_before)?,
            updated_after: bound("updatedAfter", self.updated_after)?,
            updated_before: bound("updatedBefore", self.updated_before)?,
            search: search(self.search)?,
        })
    }
}

/// Which alerts to list. List fields match any of their values (an empty or omitted list does not
/// filter); fields combine with AND. `createdAfter` is inclusive, `createdBefore` exclusive.
#[derive(InputObject, Debug, Clone, Default)]
#[graphql(name = "AlertFilter")]
pub struct AlertFilterInput {
    /// Any of these statuses.
    pub status: Option<Vec<AlertStatus>>,
    /// Any of these severities.
    pub severity: Option<Vec<Severity>>,
    /// Assigned to any of these (case-insensitive).
    pub assigned_to: Option<Vec<String>>,
    /// From any of these service sources.
    pub service_source: Option<Vec<String>>,
    /// From any of these detection sources.
    pub detection_source: Option<Vec<String>>,
    /// Fired by any of these alert policies.
    pub alert_policy: Option<Vec<String>>,
    /// In any of these incidents.
    pub incident_id: Option<Vec<ID>>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the title, an exact alert id, or an exact provider alert id.
    pub search: Option<String>,
}

impl AlertFilterInput {
    /// Checks sizes and ids and normalises values into the database layer's filter.
    pub fn into_db(self) -> AppResult<DbAlertFilter> {
        Ok(DbAlertFilter {
            statuses: list("status", self.status)?,
            severities: list("severity", self.severity)?,
            assigned_to: texts("assignedTo", self.assigned_to, true)?,
            service_sources: texts("serviceSource", self.service_source, false)?,
            detection_sources: texts("detectionSource", self.detection_source, false)?,
            alert_policies: texts("alertPolicy", self.alert_policy, false)?,
            incident_ids: list("incidentId", self.incident_id)?
                .iter()
                .map(parse_id)
                .collect::<AppResult<_>>()?,
            created_after: bound("createdAfter", self.created_after)?,
            created_before: bound("createdBefore", self.created_before)?,
            search: search(self.search)?,
        })
    }
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderDirection {
    /// Smallest (oldest, least severe) first.
    Asc,
    /// Largest (newest, most severe) first.
    Desc,
}

impl OrderDirection {
    fn db(self) -> SortDir {
        match self {
            OrderDirection::Asc => SortDir::Asc,
            OrderDirection::Desc => SortDir::Desc,
        }
    }
}

/// What to sort incidents by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum IncidentOrderField {
    /// Last change.
    LastUpdateAt,
    /// Creation.
    CreatedAt,
    /// Severity, ranked UNKNOWN < INFORMATIONAL < LOW < MEDIUM < HIGH.
    Severity,
    /// Priority score (0-100).
    PriorityScore,
}

/// Ordering of the incidents queue; ties are broken by id, in the same direction.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct IncidentOrder {
    /// Sort key (default `LAST_UPDATE_AT`).
    #[graphql(default_with = "IncidentOrderField::LastUpdateAt")]
    pub field: IncidentOrderField,
    /// Direction (default `DESC`).
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

impl Default for IncidentOrder {
    fn default() -> Self {
        Self { field: IncidentOrderField::LastUpdateAt, direction: OrderDirection::Desc }
    }
}

impl IncidentOrder {
    /// The database layer's sort.
    pub fn db(self) -> (IncidentSort, SortDir) {
        let sort = match self.field {
            IncidentOrderField::LastUpdateAt => IncidentSort::LastUpdateAt,
            IncidentOrderField::CreatedAt => IncidentSort::CreatedAt,
            IncidentOrderField::Severity => IncidentSort::Severity,
            IncidentOrderField::PriorityScore => IncidentSort::PriorityScore,
        };
        (sort, self.direction.db())
    }

    /// Cursor scope: a cursor is only valid for the ordering that produced it.
    pub fn scope(self) -> String {
        format!("incidents:{:?}:{:?}", self.field, self.direction)
    }
}

/// What to sort alerts by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AlertOrderField {
    /// When Parapet received it.
    CreatedAt,
    /// Last activity (else first activity, else when received).
    LastActivityAt,
    /// Severity, ranked UNKNOWN < INFORMATIONAL < LOW < MEDIUM < HIGH.
    Severity,
}

/// Ordering of the alerts queue; ties are broken by id, in the same direction.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct AlertOrder {
    /// Sort key (default `CREATED_AT`).
    #[graphql(default_with = "AlertOrderField::CreatedAt")]
    pub field: AlertOrderField,
    /// Direction (default `DESC`).
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

impl Default for AlertOrder {
    fn default() -> Self {
        Self { field: AlertOrderField::CreatedAt, direction: OrderDirection::Desc }
    }
}

impl AlertOrder {
    /// The database layer's sort.
    pub fn db(self) -> (AlertSort, SortDir) {
        let sort = match self.field {
            AlertOrderField::CreatedAt => AlertSort::CreatedAt,
            AlertOrderField::LastActivityAt => AlertSort::LastActivityAt,
            AlertOrderField::Severity => AlertSort::Severity,
        };
        (sort, self.direction.db())
    }

    /// Cursor scope: a cursor is only valid for the ordering that produced it.
    pub fn scope(self) -> String {
        format!("alerts:{:?}:{:?}", self.field, self.direction)
    }
}
