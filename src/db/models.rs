//! Row types of the tables, as Diesel reads and writes them.

use crate::db::schema::*;
use crate::domain::enums::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A tenant and its settings.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub strong_key_window_hours: i32,
    pub weak_key_window_hours: i32,
    pub max_key_prevalence: i32,
    pub correlation_ignore: Vec<String>,
    pub auto_approve: bool,
    pub four_eyes: bool,
    /// The tenant's own mail domains (empty: each mailbox's own).
    pub accepted_domains: Vec<String>,
}

/// An incident row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = incidents)]
pub struct Incident {
    pub tenant_id: String,
    pub id: Uuid,
    pub display_name: String,
    pub display_name_custom: bool,
    pub severity: Severity,
    pub severity_custom: bool,
    pub status: IncidentStatus,
    pub classification: Classification,
    pub determination: Determination,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    pub system_tags: Vec<String>,
    pub resolving_comment: Option<String>,
    pub priority_score: i32,
    pub priority_reasons: Vec<String>,
    pub alert_count: i32,
    pub created_at: DateTime<Utc>,
    pub last_update_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub redirect_incident_id: Option<Uuid>,
    pub last_modified_by: Option<String>,
    pub version: i32,
}

impl Incident {
    /// A new, open incident with nothing in it yet: no name, unknown severity, no owner, tags or
    /// classification, created `now` by `actor`.
    pub fn new(tenant_id: &str, id: Uuid, actor: &str, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            id,
            display_name: String::new(),
            display_name_custom: false,
            severity: Severity::Unknown,
            severity_custom: false,
            status: IncidentStatus::Active,
            classification: Classification::Unknown,
            determination: Determination::Unknown,
            assigned_to: None,
            custom_tags: vec![],
            system_tags: vec![],
            resolving_comment: None,
            priority_score: 0,
            priority_reasons: vec![],
            alert_count: 0,
            created_at: now,
            last_update_at: now,
            resolved_at: None,
            redirect_incident_id: None,
            last_modified_by: Some(actor.to_string()),
            version: 1,
        }
    }

    /// Open incidents take new alerts and can be merged; resolved and redirected ones cannot.
    pub fn is_open(&self) -> bool {
        matches!(self.status, IncidentStatus::Active | IncidentStatus::InProgress)
    }
}

/// An alert row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts)]
pub struct Alert {
    pub tenant_id: String,
    pub id: Uuid,
    pub incident_id: Uuid,
    pub provider_alert_id: String,
    pub service_source: String,
    pub detection_source: Option<String>,
    pub alert_policy: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub status: AlertStatus,
    pub classification: Classification,
    pub determination: Determination,
    pub assigned_to: Option<String>,
    pub category: Option<String>,
    pub mitre_techniques: Vec<String>,
    pub investigation_state: Option<String>,
    pub first_activity_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_update_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub correlation_kind: CorrelationKind,
    pub correlation_matched: serde_json::Value,
    pub correlation_skipped: serde_json::Value,
    pub correlated_at: DateTime<Utc>,
    /// The distinct mailboxes among the alert's keys (what incident roll-ups count).
    pub mailboxes: Vec<String>,
    /// How many of the alert's evidence rows are malicious.
    pub malicious_evidence: i32,
    /// Fingerprint of what the source last sent (normalised), so an unchanged re-send changes nothing.
    pub source_hash: Option<String>,
}

/// An evidence row; `data` holds the kind's own fields as JSON.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = evidence)]
pub struct Evidence {
    pub tenant_id: String,
    pub id: Uuid,
    pub alert_id: Uuid,
    pub kind: EvidenceKind,
    pub entity_key: String,
    pub verdict: Verdict,
    pub remediation_status: RemediationStatus,
    pub roles: Vec<String>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// One correlation key of an alert.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alert_keys)]
pub struct AlertKey {
    pub tenant_id: String,
    pub alert_id: Uuid,
    pub kind: KeyKind,
    pub value: String,
    pub activity_at: DateTime<Utc>,
}

/// A comment on an incident or an alert (append-only).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = comments)]
pub struct Comment {
    pub tenant_id: String,
    pub id: Uuid,
    pub incident_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub author: String,
    pub author_name: Option<String>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// One entry of the activity log.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = activity)]
pub struct Activity {
    pub tenant_id: String,
    pub id: Uuid,
    pub incident_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub actor: String,
    pub kind: String,
    pub field: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// A message copy (one recipient) in the mail store. Also the JSON shape batches are written in
/// (`jsonb_populate_recordset` reads these field names as the table's columns).
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, serde::Serialize)]
#[diesel(table_name = emails)]
pub struct Email {
    pub tenant_id: String,
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub network_message_id: String,
    pub internet_message_id: Option<String>,
    pub recipient: String,
    pub recipient_domain: String,
    pub envelope_sender: Option<String>,
    pub envelope_sender_domain: Option<String>,
    pub header_from: Option<String>,
    pub sender_domain: Option<String>,
    pub sender_display_name: Option<String>,
    pub sender_ip: Option<String>,
    pub subject: Option<String>,
    pub direction: Direction,
    pub delivery_action: DeliveryAction,
    pub original_delivery_location: DeliveryLocation,
    pub latest_delivery_location: DeliveryLocation,
    pub threat_types: Vec<ThreatType>,
    pub phish_confidence: Option<PhishConfidence>,
    pub detection_technologies: Vec<String>,
    pub urls: Vec<String>,
    pub url_domains: Vec<String>,
    pub attachments: serde_json::Value,
    pub cluster_id: Option<String>,
    pub keys: Vec<i64>,
    pub source: EmailSource,
    pub override_source: Option<String>,
    pub state_at: DateTime<Utc>,
    pub moved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One event of a copy's delivery timeline.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, serde::Serialize)]
#[diesel(table_name = email_events)]
pub struct EmailEvent {
    pub tenant_id: String,
    pub email_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub id: Uuid,
    pub kind: EmailEventKind,
    pub at: DateTime<Utc>,
    pub from_location: Option<DeliveryLocation>,
    pub to_location: Option<DeliveryLocation>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub action_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A submission: an item reported as wrongly blocked or allowed, and its result.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = submissions)]
pub struct Submission {
    pub tenant_id: String,
    pub id: Uuid,
    pub content_type: SubmissionContentType,
    pub category: SubmissionCategory,
    pub email_id: Option<Uuid>,
    pub network_message_id: Option<String>,
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub url: Option<String>,
    pub file_sha256: Option<String>,
    pub submitted_by: String,
    pub submitted_by_name: Option<String>,
    pub status: SubmissionStatus,
    pub result_category: Option<SubmissionResultCategory>,
    pub result: Option<String>,
    pub result_detail: Option<String>,
    pub allow_block_entry_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// An entry of the tenant allow/block list. `ip_range` (generated from `value` for IP entries) is left
/// out: matching reads it in SQL.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = allow_block_entries)]
pub struct AllowBlockEntry {
    pub tenant_id: String,
    pub id: Uuid,
    pub kind: AllowBlockKind,
    /// Normalised: what matching compares and duplicates are found by.
    pub value: String,
    pub action: AllowBlockAction,
    pub notes: Option<String>,
    /// The effective expiry; `None` exactly when `never_expire`.
    pub expires_at: Option<DateTime<Utc>>,
    pub never_expire: bool,
    /// For an ALLOW without an explicit date: each use moves `expires_at` to `last_used_at` + this many days.
    pub remove_after_days: Option<i32>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

impl AllowBlockEntry {
    /// Whether the entry has stopped applying at `now`.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// One entry of the tenant audit log: a change to the tenant's configuration.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub tenant_id: String,
    pub id: Uuid,
    /// Who: the caller's UPN.
    pub actor: String,
    pub actor_name: Option<String>,
    pub target_kind: AuditTargetKind,
    /// The entry's id; `None` for the tenant's settings.
    pub target_id: Option<String>,
    pub action: AuditAction,
    /// The target before the change (`None` for a creation).
    pub before: Option<serde_json::Value>,
    /// The target after the change (`None` for a deletion).
    pub after: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

/// A remediation action.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = actions)]
pub struct Action {
    pub tenant_id: String,
    pub id: Uuid,
    pub action_type: ActionType,
    pub source: ActionSource,
    pub status: ActionStatus,
    pub incident_id: Option<Uuid>,
    pub investigation_id: Option<Uuid>,
    pub proposed_by: String,
    pub proposed_by_name: Option<String>,
    pub comment: Option<String>,
    pub four_eyes: bool,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_comment: Option<String>,
    pub preview: serde_json::Value,
    pub target_count: i32,
    pub at_destination: i32,
    pub success_count: i32,
    pub failed_count: i32,
    pub already_count: i32,
    pub not_found_count: i32,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The mailbox of an inbox-rule action.
    pub mailbox: Option<String>,
    /// The rule an inbox-rule action removes.
    pub rule_name: Option<String>,
    /// That rule as read at proposal.
    pub rule: Option<serde_json::Value>,
    /// Tries of an inbox-rule action.
    pub attempts: i32,
    /// Why its last try failed.
    pub error: Option<String>,
}

/// One copy an action acts on, and what running it did.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = action_targets)]
pub struct ActionTarget {
    pub tenant_id: String,
    pub action_id: Uuid,
    pub email_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub network_message_id: String,
    pub recipient: String,
    pub location_at_proposal: DeliveryLocation,
    pub at_destination: bool,
    pub outcome: Option<ActionOutcome>,
    pub from_location: Option<DeliveryLocation>,
    pub to_location: Option<DeliveryLocation>,
    pub executed_at: Option<DateTime<Utc>>,
    /// Tries on a real mail server.
    pub attempts: i32,
    /// Why the last try failed (or why it ended `FAILED` / `NOT_FOUND`).
    pub error: Option<String>,
}

/// A tenant's mail server (its master password sealed).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = mail_servers)]
pub struct MailServer {
    pub tenant_id: String,
    pub host: String,
    pub port: i32,
    pub tls: MailServerTls,
    pub master_user: String,
    pub password_sealed: Vec<u8>,
    pub sieve_host: Option<String>,
    pub sieve_port: Option<i32>,
    pub junk_folder: String,
    pub deleted_items_folder: String,
    pub recoverable_items_folder: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
