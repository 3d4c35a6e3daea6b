//! A message copy as ingestion prepares it, and the values hunting finds it by. Derived values (sender
//! and recipient domains, URL hosts, the lookup keys) are computed here once, at ingest, so no query
//! computes them per row.

use super::enums::{
    DeliveryAction, DeliveryLocation, Direction, EmailEventKind, PhishConfidence, ThreatType,
};
use super::locks::lock_id;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long copies are kept and hunted over.
pub const RETENTION_DAYS: i64 = 30;

/// An attachment of a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// File name.
    pub name: Option<String>,
    /// Lower-case SHA-256.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: Option<i64>,
}

/// A validated, normalised message copy (a mail-flow record, or what an alert's evidence says of one).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEmail {
    /// Lower-case network message id.
    pub network_message_id: String,
    /// Message-ID header.
    pub internet_message_id: Option<String>,
    /// Lower-case recipient address.
    pub recipient: String,
    /// SMTP MAIL FROM ("P1").
    pub envelope_sender: Option<String>,
    /// From: header ("P2").
    pub header_from: Option<String>,
    /// Sender display name.
    pub sender_display_name: Option<String>,
    /// Connecting IP (canonical form).
    pub sender_ip: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// Direction.
    pub direction: Direction,
    /// What filtering did.
    pub delivery_action: DeliveryAction,
    /// Where it was first delivered.
    pub original_delivery_location: DeliveryLocation,
    /// Where it is now, as the sender of the record knows it.
    pub latest_delivery_location: DeliveryLocation,
    /// Threats found (sorted, unique).
    pub threat_types: Vec<ThreatType>,
    /// Phish confidence.
    pub phish_confidence: Option<PhishConfidence>,
    /// Detection technologies (unique, as given).
    pub detection_technologies: Vec<String>,
    /// Normalised URLs (unique).
    pub urls: Vec<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Cluster of similar messages.
    pub cluster_id: Option<String>,
    /// When the state this record reports began (`eventAt`); `None`: now, or delivery for a new copy.
    pub event_at: Option<DateTime<Utc>>,
    /// What kind of change an update reports; `None`: inferred from the locations.
    pub event_kind: Option<EmailEventKind>,
    /// Who made the change, as the source names it.
    pub event_actor: Option<String>,
    /// Why.
    pub event_reason: Option<String>,
}

/// The evidence entity key of a copy: how alerts' e-mail evidence names it (ingestion writes it, the
/// mail store's readers look alerts up by it).
pub fn entity_key(network_message_id: &str, recipient: &str) -> String {
    format!("EMAIL:{network_message_id}:{recipient}")
}

/// The part of an address after its last `@`.
pub fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d).filter(|d| !d.is_empty())
}

/// The host of a normalised URL, lower-case, without a trailing dot.
pub fn url_host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(|h| h.trim_end_matches('.').to_lowercase())
}

/// `domain` and each domain above it (`a.b.c`, `b.c`, `c`): what `*.b.c` matches.
pub fn parent_domains(domain: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(domain);
    std::iter::from_fn(move || {
        let d = rest?;
        rest = d.split_once('.').map(|(_, r)| r).filter(|r| !r.is_empty());
        Some(d)
    })
}

/// The kinds of value a copy is looked up by; each becomes a key of `(tenant, kind, value)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// An envelope or header sender address.
    SenderAddress,
    /// A sender's domain, exactly.
    SenderDomain,
    /// A sender's domain or any domain above it (what `*.domain` matches).
    SenderDomainTree,
    /// The recipient address.
    Recipient,
    /// The recipient's domain.
    RecipientDomain,
    /// A URL's host.
    UrlHost,
    /// An attachment's SHA-256.
    AttachmentSha256,
    /// An attachment's name, lower-case.
    AttachmentName,
    /// A detection technology, lower-case.
    DetectionTechnology,
    /// The cluster id.
    Cluster,
    /// The sender IP.
    SenderIp,
}

impl LookupKind {
    fn tag(self) -> &'static str {
        match self {
            LookupKind::SenderAddress => "MAIL_SENDER",
            LookupKind::SenderDomain => "MAIL_SENDER_DOMAIN",
            LookupKind::SenderDomainTree => "MAIL_SENDER_TREE",
            LookupKind::Recipient => "MAIL_RECIPIENT",
            LookupKind::RecipientDomain => "MAIL_RECIPIENT_DOMAIN",
            LookupKind::UrlHost => "MAIL_URL_HOST",
            LookupKind::AttachmentSha256 => "MAIL_SHA256",
            LookupKind::AttachmentName => "MAIL_ATTACHMENT_NAME",
            LookupKind::DetectionTechnology => "MAIL_DETECTION",
            LookupKind::Cluster => "MAIL_CLUSTER",
            LookupKind::SenderIp => "MAIL_SENDER_IP",
        }
    }
}

/// The key of `value` of `kind` within a tenant (the ingest side and the filter side compute it alike).
pub fn lookup_key(tenant_id: &str, kind: LookupKind, value: &str) -> i64 {
    lock_id(tenant_id, kind.tag(), value)
}

/// Values derived from a copy at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The recipient's domain.
    pub recipient_domain: String,
    /// The envelope sender's domain.
    pub envelope_sender_domain: Option<String>,
    /// The sender domain Explorer shows: the From: header's, else the envelope sender's.
    pub sender_domain: Option<String>,
    /// Hosts of the URLs (unique, in order).
    pub url_domains: Vec<String>,
    /// Lookup keys (sorted, unique).
    pub keys: Vec<i64>,
}

impl PreparedEmail {
    /// The derived values of this copy in `tenant_id`.
    pub fn derive(&self, tenant_id: &str) -> Derived {
        let key = |kind, v: &str| lookup_key(tenant_id, kind, v);
        let recipient_domain = domain_of(&self.recipient).unwrap_or_default().to_string();
        let envelope_sender_domain = self.envelope_sender.as_deref().and_then(domain_of).map(str::to_string);
        let header_domain = self.header_from.as_deref().and_then(domain_of).map(str::to_string);
        let sender_domain = header_domain.clone().or_else(|| envelope_sender_domain.clone());
        let mut url_domains: Vec<String> = vec![];
        let mut seen = std::collections::HashSet::new();
        for h in self.urls.iter().filter_map(|u| url_host(u)) {
            if seen.insert(h.clone()) {
                url_domains.push(h);
            }
        }
        let mut keys = vec![
            key(LookupKind::Recipient, &self.recipient),
            key(LookupKind::RecipientDomain, &recipient_domain),
        ];
        for a in [&self.envelope_sender, &self.header_from].into_iter().flatten() {
            keys.push(key(LookupKind::SenderAddress, a));
        }
        for d in [&envelope_sender_domain, &header_domain].into_iter().flatten() {
            keys.push(key(LookupKind::SenderDomain, d));
            for p in parent_domains(d) {
                keys.push(key(LookupKind::SenderDomainTree, p));
            }
        }
        for h in &url_domains {
            keys.push(key(LookupKind::UrlHost, h));
        }
        for a in &self.attachments {
            if let Some(s) = &a.sha256 {
                keys.push(key(LookupKind::AttachmentSha256, s));
            }
            if let Some(n) = &a.name {
                keys.push(key(LookupKind::AttachmentName, &n.to_lowercase()));
            }
        }
        for t in &self.detection_technologies {
            keys.push(key(LookupKind::DetectionTechnology, &t.to_lowercase()));
        }
        if let Some(c) = &self.cluster_id {
            keys.push(key(LookupKind::Cluster, c));
        }
        if let Some(ip) = &self.sender_ip {
            keys.push(key(LookupKind::SenderIp, ip));
        }
        keys.sort_unstable();
        keys.dedup();
        Derived { recipient_domain, envelope_sender_domain, sender_domain, url_domains, keys }
    }
}

/// Where a copy was first delivered when the source does not say: where its delivery action puts it.
pub fn default_original_location(action: DeliveryAction) -> DeliveryLocation {
    match action {
        DeliveryAction::Delivered | DeliveryAction::Replaced => DeliveryLocation::Inbox,
        DeliveryAction::DeliveredToJunk => DeliveryLocation::Junk,
        DeliveryAction::Blocked => DeliveryLocation::Quarantine,
    }
}

/// The kind of change a move from `from` to `to` most likely was, when the source does not say.
pub fn inferred_kind(from: DeliveryLocation, to: DeliveryLocation) -> EmailEventKind {
    use DeliveryLocation::*;
    match (from, to) {
        (Quarantine, Inbox | Junk) => EmailEventKind::QuarantineRelease,
        (Inbox | Junk | DeletedItems | Unknown, Quarantine | Junk | DeletedItems | SoftDeleted) => {
            EmailEventKind::Zap
        }
        _ => EmailEventKind::DeliveryUpdate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_parents() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("nobody"), None);
        assert_eq!(parent_domains("a.b.c").collect::<Vec<_>>(), vec!["a.b.c", "b.c", "c"]);
        assert_eq!(url_host("https://Evil.Example./x").as_deref(), Some("evil.example"));
    }

    #[test]
    fn keys_are_per_tenant() {
        assert_ne!(
            lookup_key("a", LookupKind::Recipient, "x@y.z"),
            lookup_key("b", LookupKind::Recipient, "x@y.z")
        );
        assert_ne!(
            lookup_key("a", LookupKind::SenderDomain, "y.z"),
            lookup_key("a", LookupKind::SenderDomainTree, "y.z")
        );
    }

    #[test]
    fn moves_are_named() {
        use DeliveryLocation::*;
        assert_eq!(inferred_kind(Inbox, Quarantine), EmailEventKind::Zap);
        assert_eq!(inferred_kind(Quarantine, Inbox), EmailEventKind::QuarantineRelease);
        assert_eq!(inferred_kind(Inbox, Failed), EmailEventKind::DeliveryUpdate);
    }
}
