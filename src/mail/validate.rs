//! Validation and normalisation of mail-flow records: each becomes a `PreparedEmail` or is rejected with
//! a reason naming the field. The list checks are shared with alerts' e-mail evidence.

use super::input::{AttachmentInput, EmailInput};
use crate::domain::email::{default_original_location, Attachment, PreparedEmail, RETENTION_DAYS};
use crate::domain::enums::{DeliveryAction, Direction, ThreatType};
use crate::domain::text::{optional, required};
use crate::domain::time;
use crate::domain::values::{address, ip_address, normalise_url, optional_address, sha256};
use chrono::{DateTime, Duration, Utc};

const MAX_ID: usize = 256;
const MAX_NAME: usize = 1024;
/// Most URLs, attachments or detection technologies one copy may list.
pub const MAX_LIST: usize = 500;
/// How far ahead of the server's clock a receive time may lie (clock skew between gateway and server).
pub const MAX_SKEW_HOURS: i64 = 24;

/// Validates one record received at `now`.
pub fn prepare(input: EmailInput, now: DateTime<Utc>) -> Result<PreparedEmail, String> {
    let network_message_id =
        required("networkMessageId", input.network_message_id.as_deref().unwrap_or(""), MAX_ID)?
            .to_lowercase();
    let recipient = address("recipient", input.recipient.as_deref())?;
    let received_at = match input.received_at {
        None => return Err("receivedAt is required".into()),
        Some(t) => time::check("receivedAt", t)?,
    };
    if received_at < now - Duration::days(RETENTION_DAYS) {
        return Err(format!(
            "receivedAt {} is more than {RETENTION_DAYS} days ago: copies are kept {RETENTION_DAYS} days",
            received_at.to_rfc3339()
        ));
    }
    if received_at > now + Duration::hours(MAX_SKEW_HOURS) {
        return Err(format!("receivedAt {} lies in the future", received_at.to_rfc3339()));
    }
    let event_at = time::check_opt("eventAt", input.event_at)?;
    if let Some(at) = event_at {
        if at < received_at {
            return Err("eventAt is before receivedAt".into());
        }
        if at > now + Duration::hours(MAX_SKEW_HOURS) {
            return Err(format!("eventAt {} lies in the future", at.to_rfc3339()));
        }
    }
    let delivery_action = input.delivery_action.unwrap_or(DeliveryAction::Delivered);
    let original = input.original_delivery_location.unwrap_or(default_original_location(delivery_action));
    let mut threat_types = input.threat_types.unwrap_or_default();
    threat_types.sort();
    threat_types.dedup();
    Ok(PreparedEmail {
        network_message_id,
        internet_message_id: optional("internetMessageId", input.internet_message_id.as_deref(), MAX_NAME)?,
        recipient,
        envelope_sender: optional_address("envelopeSender", input.envelope_sender.as_deref())?,
        header_from: optional_address("headerFrom", input.header_from.as_deref())?,
        sender_display_name: optional("senderDisplayName", input.sender_display_name.as_deref(), MAX_NAME)?,
        sender_ip: optional_ip("senderIp", input.sender_ip.as_deref())?,
        subject: optional("subject", input.subject.as_deref(), MAX_NAME)?,
        received_at,
        direction: input.direction.unwrap_or(Direction::Inbound),
        delivery_action,
        original_delivery_location: original,
        latest_delivery_location: input.latest_delivery_location.unwrap_or(original),
        threat_types: threat_types.into_iter().collect::<Vec<ThreatType>>(),
        phish_confidence: input.phish_confidence,
        detection_technologies: technologies("detectionTechnologies", input.detection_technologies)?,
        urls: urls("urls", input.urls)?,
        attachments: attachments("attachments", input.attachments)?,
        cluster_id: optional("clusterId", input.cluster_id.as_deref(), MAX_ID)?,
        event_at,
        event_kind: input.event_type,
        event_actor: optional("eventActor", input.event_actor.as_deref(), MAX_ID)?,
        event_reason: optional("eventReason", input.event_reason.as_deref(), MAX_NAME)?,
    })
}

/// An IP address in canonical form, or `None` when blank.
pub fn optional_ip(field: &str, v: Option<&str>) -> Result<Option<String>, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => ip_address(field, Some(s)).map(Some),
    }
}

/// Normalised URLs, unique, at most [`MAX_LIST`].
pub fn urls(field: &str, list: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_LIST {
        return Err(format!("{field}: at most {MAX_LIST}"));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for u in list {
        let u = normalise_url(field, Some(&u))?;
        if seen.insert(u.clone()) {
            out.push(u);
        }
    }
    Ok(out)
}

/// Checked attachments (lower-case hashes, bounded names, sizes not negative), at most [`MAX_LIST`].
pub fn attachments(field: &str, list: Option<Vec<AttachmentInput>>) -> Result<Vec<Attachment>, String> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_LIST {
        return Err(format!("{field}: at most {MAX_LIST}"));
    }
    list.into_iter()
        .map(|a| {
            if a.size.is_some_and(|n| n < 0) {
                return Err(format!("{field}.size must not be negative"));
            }
            Ok(Attachment {
                name: optional(&format!("{field}.name"), a.name.as_deref(), MAX_NAME)?,
                sha256: match a.sha256.as_deref() {
                    Some(s) => Some(sha256(&format!("{field}.sha256"), Some(s))?),
                    None => None,
                },
                size: a.size,
            })
        })
        .collect()
}

/// Detection technologies: blank entries dropped, duplicates too, at most [`MAX_LIST`].
pub fn technologies(field: &str, list: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_LIST {
        return Err(format!("{field}: at most {MAX_LIST}"));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for t in &list {
        if let Some(t) = optional(field, Some(t), MAX_ID)? {
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enums::DeliveryLocation;

    fn record() -> EmailInput {
        EmailInput {
            network_message_id: Some("NMID-1".into()),
            recipient: Some("Bob@Contoso.com".into()),
            received_at: Some(Utc::now() - Duration::hours(1)),
            ..EmailInput::default()
        }
    }

    #[test]
    fn defaults_and_normalisation() {
        let p = prepare(record(), Utc::now()).expect("valid");
        assert_eq!(p.network_message_id, "nmid-1");
        assert_eq!(p.recipient, "bob@contoso.com");
        assert_eq!(p.original_delivery_location, DeliveryLocation::Inbox);
        assert_eq!(p.latest_delivery_location, DeliveryLocation::Inbox);
        let blocked = EmailInput { delivery_action: Some(DeliveryAction::Blocked), ..record() };
        assert_eq!(
            prepare(blocked, Utc::now()).map(|p| p.original_delivery_location),
            Ok(DeliveryLocation::Quarantine)
        );
    }

    #[test]
    fn bad_records_name_the_field() {
        let old = EmailInput { received_at: Some(Utc::now() - Duration::days(31)), ..record() };
        assert!(prepare(old, Utc::now()).is_err_and(|m| m.contains("30 days")));
        let none = EmailInput { received_at: None, ..record() };
        assert!(prepare(none, Utc::now()).is_err_and(|m| m.contains("receivedAt is required")));
        let hash = EmailInput {
            attachments: Some(vec![AttachmentInput { sha256: Some("xyz".into()), ..Default::default() }]),
            ..record()
        };
        assert!(prepare(hash, Utc::now()).is_err_and(|m| m.contains("SHA-256")));
        let before = EmailInput { event_at: Some(Utc::now() - Duration::days(2)), ..record() };
        assert!(prepare(before, Utc::now()).is_err_and(|m| m.contains("eventAt is before")));
    }
}
