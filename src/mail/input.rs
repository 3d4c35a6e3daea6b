//! The wire shape of mail-flow records (`ingestEmails`).

use crate::domain::enums::*;
use async_graphql::InputObject;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One mail-flow record: one copy of a message (one recipient). Fields marked required are checked per
/// record, so a record that lacks one is rejected alone and the rest of the batch is stored.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EmailInput {
    /// Exchange's id of the message, shared by its copies (required).
    pub network_message_id: Option<String>,
    /// The Message-ID header.
    pub internet_message_id: Option<String>,
    /// Recipient of this copy (required).
    pub recipient: Option<String>,
    /// SMTP MAIL FROM ("P1").
    pub envelope_sender: Option<String>,
    /// The From: header address ("P2").
    pub header_from: Option<String>,
    /// Sender display name.
    pub sender_display_name: Option<String>,
    /// Connecting IP address.
    pub sender_ip: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// When it was received (required; at most 30 days ago and at most a day ahead). With
    /// `networkMessageId` and `recipient`, it identifies the copy.
    pub received_at: Option<DateTime<Utc>>,
    /// Direction (default `INBOUND`).
    pub direction: Option<Direction>,
    /// What filtering did (default `DELIVERED`).
    pub delivery_action: Option<DeliveryAction>,
    /// Where it was first delivered (default `INBOX` when delivered, `JUNK` when delivered to junk,
    /// `QUARANTINE` when blocked).
    pub original_delivery_location: Option<DeliveryLocation>,
    /// Where it is now (default: where it was first delivered).
    pub latest_delivery_location: Option<DeliveryLocation>,
    /// Threats found.
    pub threat_types: Option<Vec<ThreatType>>,
    /// Confidence of a phish verdict.
    pub phish_confidence: Option<PhishConfidence>,
    /// Detection technologies, e.g. `URL detonation`.
    pub detection_technologies: Option<Vec<String>>,
    /// URLs in the message.
    pub urls: Option<Vec<String>>,
    /// Attachments.
    pub attachments: Option<Vec<AttachmentInput>>,
    /// Cluster of similar messages.
    pub cluster_id: Option<String>,
    /// When the change this record reports happened (default now; for a copy seen for the first time,
    /// its delivery). An update older than the copy's current state (say, older than Parapet's own
    /// remediation of it) is added to the timeline and changes nothing else.
    pub event_at: Option<DateTime<Utc>>,
    /// What kind of change an update reports (default: inferred from the locations, e.g. `ZAP` for a
    /// move from the inbox to quarantine).
    pub event_type: Option<EmailEventKind>,
    /// Who made the change, as the source names it (default `mail flow`).
    pub event_actor: Option<String>,
    /// Why, as the source says it (e.g. `Phish ZAP`).
    pub event_reason: Option<String>,
}

/// An attachment of a message.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentInput {
    /// File name.
    pub name: Option<String>,
    /// SHA-256, 64 hex digits.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: Option<i64>,
}
