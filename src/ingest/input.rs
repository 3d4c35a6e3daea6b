//! The wire shape of pushed alerts. These types are GraphQL inputs and, once validated and normalised,
//! the JSON stored in `evidence.data` (camelCase, the same names as the inputs).

use crate::domain::enums::*;
use async_graphql::InputObject;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::mail::input::AttachmentInput;

/// One alert pushed by a detection source.
#[derive(InputObject, Clone, Debug)]
pub struct AlertInput {
    /// The source's own id: the idempotency key per tenant and service source.
    pub provider_alert_id: String,
    /// Product that owns the alert, e.g. `microsoftDefenderForOffice365`.
    pub service_source: String,
    /// Technology that detected it.
    pub detection_source: Option<String>,
    /// The alert policy that fired (the built-in MDO policies start investigations).
    pub alert_policy: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// MITRE tactic, e.g. `InitialAccess`.
    pub category: Option<String>,
    /// MITRE techniques, e.g. `T1566.002`.
    pub mitre_techniques: Option<Vec<String>>,
    /// First activity.
    pub first_activity_at: Option<DateTime<Utc>>,
    /// Last activity.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Evidence: each item sets exactly one kind.
    pub evidence: Option<Vec<EvidenceInput>>,
}

/// One piece of evidence: optional verdict and roles, and exactly one kind. (Not `@oneOf`: a wrong
/// item must reject only its alert, not the whole batch.)
#[derive(InputObject, Clone, Debug, Default)]
pub struct EvidenceInput {
    /// Verdict (default `UNKNOWN`).
    pub verdict: Option<Verdict>,
    /// Roles the entity played.
    pub roles: Option<Vec<EvidenceRole>>,
    /// Remediation status as the source knows it (default `NONE`).
    pub remediation_status: Option<RemediationStatus>,
    /// An e-mail message copy (one per recipient).
    pub email: Option<EmailEvidenceInput>,
    /// A cluster of similar messages.
    pub mail_cluster: Option<MailClusterEvidenceInput>,
    /// A mailbox.
    pub mailbox: Option<MailboxEvidenceInput>,
    /// A mailbox configuration: inbox rule, forwarding, delegation.
    pub mailbox_configuration: Option<MailboxConfigurationEvidenceInput>,
    /// A user account.
    pub user: Option<UserEvidenceInput>,
    /// A URL.
    pub url: Option<UrlEvidenceInput>,
    /// A file.
    pub file: Option<FileEvidenceInput>,
    /// An IP address.
    pub ip: Option<IpEvidenceInput>,
}

/// An e-mail message copy as a piece of evidence.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "EmailEvidenceInput")]
pub struct EmailEvidenceInput {
    /// Network message id (required).
    pub network_message_id: Option<String>,
    /// Internet Message-ID header.
    pub internet_message_id: Option<String>,
    /// Recipient address (required).
    pub recipient: Option<String>,
    /// SMTP MAIL FROM ("P1").
    pub envelope_sender: Option<String>,
    /// The From: header address ("P2").
    pub header_from: Option<String>,
    /// Sender display name.
    pub sender_display_name: Option<String>,
    /// Connecting IP.
    pub sender_ip: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// When it was received.
    pub received_at: Option<DateTime<Utc>>,
    /// Direction.
    pub direction: Option<Direction>,
    /// What filtering did.
    pub delivery_action: Option<DeliveryAction>,
    /// Where it was first delivered.
    pub original_delivery_location: Option<DeliveryLocation>,
    /// Where it is now.
    pub latest_delivery_location: Option<DeliveryLocation>,
    /// Threats found.
    pub threat_types: Option<Vec<ThreatType>>,
    /// Phish confidence.
    pub phish_confidence: Option<PhishConfidence>,
    /// Detection technologies, e.g. `URL detonation`.
    pub detection_technologies: Option<Vec<String>>,
    /// URLs in the message.
    pub urls: Option<Vec<String>>,
    /// Attachments.
    pub attachments: Option<Vec<AttachmentInput>>,
    /// Cluster of similar messages, when the source knows it.
    pub cluster_id: Option<String>,
}

/// A set of similar messages.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailClusterEvidenceInput {
    /// Cluster id (required).
    pub cluster_id: Option<String>,
    /// What the cluster is built on, e.g. `Subject;P2SenderDomain;ContentType`.
    pub cluster_by: Option<String>,
    /// The hunting query that defines the cluster.
    pub query: Option<String>,
    /// Number of messages.
    pub email_count: Option<i32>,
    /// Network message ids of its messages.
    pub network_message_ids: Option<Vec<String>>,
}

/// A mailbox.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxEvidenceInput {
    /// Primary SMTP address (required).
    pub primary_address: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// UPN of the owner.
    pub upn: Option<String>,
}

/// An inbox rule, forwarding rule or delegation.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxConfigurationEvidenceInput {
    /// Kind of configuration.
    pub configuration_type: Option<MailboxConfigurationType>,
    /// The mailbox it belongs to (required).
    pub mailbox_primary_address: Option<String>,
    /// Rule or setting name.
    pub display_name: Option<String>,
    /// UPN of the owner.
    pub upn: Option<String>,
    /// Where a forwarding rule sends mail.
    pub forwarding_to: Option<String>,
}

/// A user account.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEvidenceInput {
    /// UPN (required).
    pub upn: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Account name.
    pub account_name: Option<String>,
    /// Domain name.
    pub domain_name: Option<String>,
    /// Directory object id.
    pub aad_user_id: Option<String>,
}

/// A URL.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlEvidenceInput {
    /// The URL (required; http, https or ftp).
    pub url: Option<String>,
}

/// A file.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEvidenceInput {
    /// SHA-256, 64 hex digits (required).
    pub sha256: Option<String>,
    /// File name.
    pub name: Option<String>,
    /// Size in bytes.
    pub size: Option<i64>,
}

/// An IP address.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpEvidenceInput {
    /// IPv4 or IPv6 address (required).
    pub address: Option<String>,
    /// Two-letter country code.
    pub country_code: Option<String>,
}
