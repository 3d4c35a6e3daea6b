//! A validated alert, ready for correlation: what ingestion's validation makes of a pushed alert and
//! the correlation engine places. Normalised, so equal content compares equal.

use super::enums::{EvidenceKind, KeyKind, RemediationStatus, Severity, Verdict};
use super::keys::Key;
use chrono::{DateTime, Utc};

/// A validated alert, ready for correlation.
#[derive(Debug, Clone)]
pub struct PreparedAlert {
    /// Provider id (trimmed).
    pub provider_alert_id: String,
    /// Service source (trimmed).
    pub service_source: String,
    /// Detection source.
    pub detection_source: Option<String>,
    /// Alert policy.
    pub alert_policy: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// MITRE tactic.
    pub category: Option<String>,
    /// MITRE techniques.
    pub mitre_techniques: Vec<String>,
    /// First activity.
    pub first_activity_at: Option<DateTime<Utc>>,
    /// Last activity.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Evidence.
    pub evidence: Vec<PreparedEvidence>,
    /// Correlation keys, sorted and unique.
    pub keys: Vec<Key>,
}

impl PreparedAlert {
    /// The time correlation windows measure: last activity, else first activity, else `now`.
    pub fn activity_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.last_activity_at.or(self.first_activity_at).unwrap_or(now)
    }

    /// The distinct mailboxes among the keys, sorted.
    pub fn mailboxes(&self) -> Vec<String> {
        self.keys.iter().filter(|k| k.kind == KeyKind::Mailbox).map(|k| k.value.clone()).collect()
    }

    /// How many pieces of evidence are malicious.
    pub fn malicious_evidence(&self) -> i32 {
        let n = self.evidence.iter().filter(|e| e.verdict == Verdict::Malicious).count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}

/// A validated piece of evidence.
#[derive(Debug, Clone)]
pub struct PreparedEvidence {
    /// Kind.
    pub kind: EvidenceKind,
    /// Identifies the entity across alerts.
    pub entity_key: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Remediation status.
    pub remediation_status: RemediationStatus,
    /// Roles, stored spelling.
    pub roles: Vec<String>,
    /// The kind's own fields.
    pub data: serde_json::Value,
}
