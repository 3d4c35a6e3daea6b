//! The Explorer filter as clients send it, and its validation into a [`Hunt`]: each value is checked
//! (NUL, length, format) and normalised the way ingestion normalised the stored copies, so equal values
//! match.

use crate::db::queries::explorer::Hunt;
use crate::domain::email::{lookup_key, LookupKind, RETENTION_DAYS};
use crate::domain::enums::*;
use crate::domain::text::{bounded, excerpt};
use crate::domain::time;
use crate::domain::values::{address, ip_address, normalise_url, sha256};
use crate::error::{AppError, AppResult};
use async_graphql::{InputObject, ID};
use chrono::{DateTime, Duration, Utc};

const MAX_VALUE: usize = 256;

/// What to hunt for; every field given must match (lists: any of their values).
#[derive(InputObject, Clone, Debug, Default)]
pub struct EmailFilter {
    /// Received at or after (default and earliest: 30 days ago).
    pub received_after: Option<DateTime<Utc>>,
    /// Received before.
    pub received_before: Option<DateTime<Utc>>,
    /// An address (envelope sender or From: header), a domain (exactly that domain), or `*.domain`
    /// (the domain and its subdomains).
    pub sender: Option<String>,
    /// A recipient address, or a recipient domain.
    pub recipient: Option<String>,
    /// Part of the subject, case-insensitive.
    pub subject_contains: Option<String>,
    /// Direction.
    pub direction: Option<Vec<Direction>>,
    /// Delivery action.
    pub delivery_action: Option<Vec<DeliveryAction>>,
    /// Original delivery location.
    pub original_delivery_location: Option<Vec<DeliveryLocation>>,
    /// Latest delivery location.
    pub latest_delivery_location: Option<Vec<DeliveryLocation>>,
    /// Any of these threat types.
    pub threat_types: Option<Vec<ThreatType>>,
    /// Phish confidence.
    pub phish_confidence: Option<Vec<PhishConfidence>>,
    /// A detection technology, e.g. `URL detonation` (case-insensitive).
    pub detection_technology: Option<String>,
    /// A full URL (matches URLs that start with it) or a bare domain (matches URLs on that host).
    pub url: Option<String>,
    /// An attachment's SHA-256.
    pub attachment_sha256: Option<String>,
    /// An attachment's file name (case-insensitive, whole name).
    pub attachment_name: Option<String>,
    /// Network message id.
    pub network_message_id: Option<String>,
    /// Cluster id.
    pub cluster_id: Option<String>,
    /// The sender's IP address.
    pub sender_ip: Option<String>,
    /// Copies named by this alert's e-mail evidence.
    pub alert_id: Option<ID>,
}

fn text(field: &str, v: &Option<String>) -> AppResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(s) => {
            let s = bounded(field, s, MAX_VALUE).map_err(AppError::BadInput)?;
            if s.is_empty() {
                return Err(AppError::bad(format!("{field} must not be empty")));
            }
            Ok(Some(s))
        }
    }
}

fn names<T: Copy>(v: &Option<Vec<T>>, f: impl Fn(T) -> &'static str) -> Vec<String> {
    let mut out: Vec<String> = v.iter().flatten().map(|x| f(*x).to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// A bare domain: letters, digits, dots and hyphens, at least one dot.
fn domain(field: &str, v: &str) -> AppResult<String> {
    let d = v.trim_end_matches('.').to_lowercase();
    let ok = d.contains('.')
        && !d.starts_with('.')
        && !d.contains("..")
        && d.len() <= 253
        && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(d)
    } else {
        Err(AppError::bad(format!("{field}: {} is not an address or a domain", excerpt(v))))
    }
}

impl EmailFilter {
    /// The hunt this filter asks for in `tenant_id`, at `now`.
    pub fn hunt(&self, tenant_id: &str, now: DateTime<Utc>) -> AppResult<Hunt> {
        let key = |kind, v: &str| lookup_key(tenant_id, kind, v);
        let earliest = now - Duration::days(RETENTION_DAYS);
        let after = time::check_opt("receivedAfter", self.received_after).map_err(AppError::BadInput)?;
        let before = time::check_opt("receivedBefore", self.received_before).map_err(AppError::BadInput)?;
        if let (Some(a), Some(b)) = (after, before) {
            if b < a {
                return Err(AppError::bad("receivedBefore is before receivedAfter"));
            }
        }
        let mut h = Hunt {
            from: after.map_or(earliest, |a| a.max(earliest)),
            to: before,
            directions: names(&self.direction, Direction::as_str),
            delivery_actions: names(&self.delivery_action, DeliveryAction::as_str),
            original_locations: names(&self.original_delivery_location, DeliveryLocation::as_str),
            latest_locations: names(&self.latest_delivery_location, DeliveryLocation::as_str),
            threat_types: names(&self.threat_types, ThreatType::as_str),
            phish_confidences: names(&self.phish_confidence, PhishConfidence::as_str),
            ..Hunt::default()
        };
        if let Some(s) = text("sender", &self.sender)? {
            if s.contains('@') {
                let a = address("sender", Some(&s)).map_err(AppError::BadInput)?;
                h.keys.push(key(LookupKind::SenderAddress, &a));
            } else if let Some(tree) = s.strip_prefix("*.") {
                h.keys.push(key(LookupKind::SenderDomainTree, &domain("sender", tree)?));
            } else {
                h.keys.push(key(LookupKind::SenderDomain, &domain("sender", &s)?));
            }
        }
        if let Some(r) = text("recipient", &self.recipient)? {
            if r.contains('@') {
                let a = address("recipient", Some(&r)).map_err(AppError::BadInput)?;
                h.keys.push(key(LookupKind::Recipient, &a));
            } else {
                h.keys.push(key(LookupKind::RecipientDomain, &domain("recipient", &r)?));
            }
        }
        h.subject_contains = text("subjectContains", &self.subject_contains)?;
        if let Some(t) = text("detectionTechnology", &self.detection_technology)? {
            h.keys.push(key(LookupKind::DetectionTechnology, &t.to_lowercase()));
        }
        if let Some(u) = text("url", &self.url)? {
            if u.contains("://") {
                let full = normalise_url("url", Some(&u)).map_err(AppError::BadInput)?;
                let host = crate::domain::email::url_host(&full)
                    .ok_or_else(|| AppError::bad(format!("url: {} has no host", excerpt(&u))))?;
                h.keys.push(key(LookupKind::UrlHost, &host));
                h.url_prefix = Some(full);
            } else {
                h.keys.push(key(LookupKind::UrlHost, &domain("url", &u)?));
            }
        }
        if let Some(s) = text("attachmentSha256", &self.attachment_sha256)? {
            let s = sha256("attachmentSha256", Some(&s)).map_err(AppError::BadInput)?;
            h.keys.push(key(LookupKind::AttachmentSha256, &s));
        }
        if let Some(n) = text("attachmentName", &self.attachment_name)? {
            h.keys.push(key(LookupKind::AttachmentName, &n.to_lowercase()));
        }
        if let Some(c) = text("clusterId", &self.cluster_id)? {
            h.keys.push(key(LookupKind::Cluster, &c));
        }
        if let Some(ip) = text("senderIp", &self.sender_ip)? {
            let ip = ip_address("senderIp", Some(&ip)).map_err(AppError::BadInput)?;
            h.keys.push(key(LookupKind::SenderIp, &ip));
        }
        h.network_message_id = text("networkMessageId", &self.network_message_id)?.map(|s| s.to_lowercase());
        if let Some(id) = &self.alert_id {
            h.alert_id = Some(uuid::Uuid::parse_str(id.as_str()).map_err(|_| {
                AppError::bad(format!("alertId: {} is not a valid id (a UUID)", excerpt(id.as_str())))
            })?);
        }
        h.keys.sort_unstable();
        h.keys.dedup();
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_become_the_right_keys() {
        let now = Utc::now();
        let f = |s: &str| EmailFilter { sender: Some(s.into()), ..EmailFilter::default() }.hunt("t", now);
        let exact = f("Contoso.com").expect("domain").keys;
        let tree = f("*.contoso.com").expect("tree").keys;
        let addr = f("A@Contoso.com").expect("address").keys;
        assert_ne!(exact, tree);
        assert_eq!(addr, vec![lookup_key("t", LookupKind::SenderAddress, "a@contoso.com")]);
        assert!(f("not a domain").is_err());
        assert!(f("").is_err());
    }

    #[test]
    fn the_window_is_clamped_to_thirty_days() {
        let now = Utc::now();
        let h = EmailFilter { received_after: Some(now - Duration::days(90)), ..EmailFilter::default() }
            .hunt("t", now)
            .expect("hunt");
        assert_eq!(h.from, now - Duration::days(RETENTION_DAYS));
        let bad = EmailFilter { attachment_sha256: Some("nope".into()), ..EmailFilter::default() };
        assert!(matches!(bad.hunt("t", now), Err(AppError::BadInput(_))));
    }
}
