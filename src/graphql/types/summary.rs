//! Counts for dashboards and wall displays: the incident summary and the per-value count objects. Every
//! value of an enum is listed, with 0 when nothing has it, so a display's layout never shifts.

use crate::db::queries::incidents::SummaryRow;
use crate::domain::enums::{AlertStatus, IncidentStatus, Severity};
use async_graphql::SimpleObject;
use std::collections::HashMap;

/// Incidents with one status.
#[derive(SimpleObject, Debug, Clone)]
pub struct StatusCount {
    /// Status.
    pub status: IncidentStatus,
    /// How many.
    pub count: i64,
}

/// Incidents or alerts with one severity.
#[derive(SimpleObject, Debug, Clone)]
pub struct SeverityCount {
    /// Severity.
    pub severity: Severity,
    /// How many.
    pub count: i64,
}

/// Alerts with one status.
#[derive(SimpleObject, Debug, Clone)]
pub struct AlertStatusCount {
    /// Status.
    pub status: AlertStatus,
    /// How many.
    pub count: i64,
}

/// The statuses `incidentSummary.byStatus` lists: every status but `REDIRECTED` (merged incidents live
/// on in their target).
pub const SUMMARY_STATUSES: &[IncidentStatus] =
    &[IncidentStatus::Active, IncidentStatus::InProgress, IncidentStatus::Resolved];

/// The tenant's incident queue at a glance.
#[derive(SimpleObject, Debug, Clone)]
pub struct IncidentSummary {
    /// Incidents per status: `ACTIVE`, `IN_PROGRESS` and `RESOLVED` (all time), always all three, 0 when
    /// none. `REDIRECTED` (merged) incidents are not counted.
    pub by_status: Vec<StatusCount>,
    /// Open incidents (`ACTIVE` or `IN_PROGRESS`) per severity, every severity listed, 0 when none.
    pub by_severity: Vec<SeverityCount>,
    /// Open incidents nobody is assigned to.
    pub unassigned: i64,
    /// Open incidents in all.
    pub open: i64,
    /// Alerts received in the last 24 hours.
    #[graphql(name = "alertsLast24h")]
    pub alerts_last_24h: i64,
}

impl IncidentSummary {
    /// Builds the summary from the grouped rows of `SUMMARY_STATUSES`.
    pub fn from_rows(rows: &[SummaryRow], alerts_last_24h: i64) -> Self {
        let mut by_status: HashMap<IncidentStatus, i64> = HashMap::new();
        let mut by_severity: HashMap<Severity, i64> = HashMap::new();
        let (mut unassigned, mut open) = (0, 0);
        for r in rows {
            *by_status.entry(r.status).or_default() += r.count;
            if matches!(r.status, IncidentStatus::Active | IncidentStatus::InProgress) {
                *by_severity.entry(r.severity).or_default() += r.count;
                unassigned += r.unassigned;
                open += r.count;
            }
        }
        Self {
            by_status: SUMMARY_STATUSES
                .iter()
                .map(|s| StatusCount { status: *s, count: by_status.get(s).copied().unwrap_or(0) })
                .collect(),
            by_severity: severity_counts(&by_severity),
            unassigned,
            open,
            alerts_last_24h,
        }
    }
}

/// Every severity, most severe first, with its count (0 when absent).
pub fn severity_counts(counts: &HashMap<Severity, i64>) -> Vec<SeverityCount> {
    Severity::ALL
        .iter()
        .rev()
        .map(|s| SeverityCount { severity: *s, count: counts.get(s).copied().unwrap_or(0) })
        .collect()
}

/// Every alert status with its count (0 when absent).
pub fn alert_status_counts(counts: &HashMap<AlertStatus, i64>) -> Vec<AlertStatusCount> {
    AlertStatus::ALL
        .iter()
        .map(|s| AlertStatusCount { status: *s, count: counts.get(s).copied().unwrap_or(0) })
        .collect()
}
