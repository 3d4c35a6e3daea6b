//! Validation and normalisation of pushed alerts: each item either becomes a `PreparedAlert` with its
//! evidence and correlation keys, or is rejected with a reason that names the bad field.

use super::input::*;
use crate::domain::alert::{PreparedAlert, PreparedEvidence};
use crate::domain::enums::{EvidenceKind, KeyKind, RemediationStatus, Verdict};
use crate::domain::keys::Key;
use crate::domain::text::{excerpt, optional, required};
use crate::domain::time;
pub use crate::domain::values::{address, ip_address, normalise_url, optional_address, sha256};
use std::collections::BTreeSet;

const MAX_ID: usize = 256;
const MAX_NAME: usize = 1024;
const MAX_TEXT: usize = 30_000;
/// Most evidence items one alert may carry.
pub const MAX_EVIDENCE: usize = 200;
/// Longest part of an evidence entity key taken as given; a longer one is hashed, so the key stays well
/// inside what a PostgreSQL index entry can hold (about 2,700 bytes).
const MAX_ENTITY_PART_BYTES: usize = 256;

/// Validates one alert. `svc` is the ingestor token's service source, if it names one.
pub fn prepare(input: AlertInput, svc: Option<&str>) -> Result<PreparedAlert, String> {
    let provider_alert_id = required("providerAlertId", &input.provider_alert_id, MAX_ID)?;
    let service_source = required("serviceSource", &input.service_source, MAX_ID)?;
    if let Some(svc) = svc {
        if !svc.eq_ignore_ascii_case(&service_source) {
            return Err(format!(
                "serviceSource {service_source:?} is not allowed for this token (it may push {svc:?} only)"
            ));
        }
    }
    let title = required("title", &input.title, MAX_NAME)?;
    let description = optional("description", input.description.as_deref(), MAX_TEXT)?;
    let detection_source = optional("detectionSource", input.detection_source.as_deref(), MAX_ID)?;
    let alert_policy = optional("alertPolicy", input.alert_policy.as_deref(), MAX_NAME)?;
    let category = optional("category", input.category.as_deref(), MAX_ID)?;
    let mut mitre_techniques = vec![];
    for t in input.mitre_techniques.unwrap_or_default() {
        let t = t.trim().to_uppercase();
        if !is_mitre_technique(&t) {
            return Err(format!(
                "mitreTechniques: {} is not a MITRE technique id such as T1566 or T1566.002",
                excerpt(&t)
            ));
        }
        if !mitre_techniques.contains(&t) {
            mitre_techniques.push(t);
        }
    }
    let first_activity_at = time::check_opt("firstActivityAt", input.first_activity_at)?;
    let last_activity_at = time::check_opt("lastActivityAt", input.last_activity_at)?;
    if let (Some(first), Some(last)) = (first_activity_at, last_activity_at) {
        if last < first {
            return Err("lastActivityAt is before firstActivityAt".into());
        }
    }
    let evidence_in = input.evidence.unwrap_or_default();
    if evidence_in.len() > MAX_EVIDENCE {
        return Err(format!("evidence: at most {MAX_EVIDENCE} items per alert"));
    }
    let mut evidence = vec![];
    let mut keys = BTreeSet::new();
    for (i, e) in evidence_in.into_iter().enumerate() {
        let (ev, ks) = prepare_evidence(e).map_err(|m| format!("evidence[{i}]: {m}"))?;
        evidence.push(ev);
        keys.extend(ks);
    }
    Ok(PreparedAlert {
        provider_alert_id,
        service_source,
        detection_source,
        alert_policy,
        title,
        description,
        severity: input.severity,
        category,
        mitre_techniques,
        first_activity_at,
        last_activity_at,
        evidence,
        keys: keys.into_iter().collect(),
    })
}

fn prepare_evidence(e: EvidenceInput) -> Result<(PreparedEvidence, Vec<Key>), String> {
    let set = [
        e.email.is_some(),
        e.mail_cluster.is_some(),
        e.mailbox.is_some(),
        e.mailbox_configuration.is_some(),
        e.user.is_some(),
        e.url.is_some(),
        e.file.is_some(),
        e.ip.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(format!(
            "exactly one of email, mailCluster, mailbox, mailboxConfiguration, user, url, file, ip must be set ({set} given)"
        ));
    }
    let mut keys = vec![];
    let (kind, entity_key, data) = if let Some(m) = e.email {
        let (entity, data) = email(m, &mut keys)?;
        (EvidenceKind::Email, entity, data)
    } else if let Some(c) = e.mail_cluster {
        let (entity, data) = mail_cluster(c, &mut keys)?;
        (EvidenceKind::MailCluster, entity, data)
    } else if let Some(mut m) = e.mailbox {
        let addr = address("mailbox.primaryAddress", m.primary_address.as_deref())?;
        m.upn = optional_address("mailbox.upn", m.upn.as_deref())?;
        m.display_name = optional("mailbox.displayName", m.display_name.as_deref(), MAX_NAME)?;
        keys.push(Key::new(KeyKind::Mailbox, addr.clone()));
        if let Some(upn) = &m.upn {
            keys.push(Key::new(KeyKind::Mailbox, upn.clone()));
        }
        m.primary_address = Some(addr.clone());
        (
            EvidenceKind::Mailbox,
            format!("MAILBOX:{addr}"),
            serde_json::to_value(m).map_err(|e| e.to_string())?,
        )
    } else if let Some(mut m) = e.mailbox_configuration {
        let addr =
            address("mailboxConfiguration.mailboxPrimaryAddress", m.mailbox_primary_address.as_deref())?;
        m.upn = optional_address("mailboxConfiguration.upn", m.upn.as_deref())?;
        m.forwarding_to = optional_address("mailboxConfiguration.forwardingTo", m.forwarding_to.as_deref())?;
        m.display_name = optional("mailboxConfiguration.displayName", m.display_name.as_deref(), MAX_NAME)?;
        keys.push(Key::new(KeyKind::Mailbox, addr.clone()));
        let entity = format!(
            "MAILBOX_CONFIGURATION:{addr}:{}:{}",
            m.configuration_type.map(|t| t.as_str()).unwrap_or(""),
            entity_part(&m.display_name.as_deref().unwrap_or("").to_lowercase())
        );
        m.mailbox_primary_address = Some(addr);
        (EvidenceKind::MailboxConfiguration, entity, serde_json::to_value(m).map_err(|e| e.to_string())?)
    } else if let Some(mut u) = e.user {
        let upn = address("user.upn", u.upn.as_deref())?;
        u.display_name = optional("user.displayName", u.display_name.as_deref(), MAX_NAME)?;
        u.account_name = optional("user.accountName", u.account_name.as_deref(), MAX_ID)?;
        u.domain_name = optional("user.domainName", u.domain_name.as_deref(), MAX_ID)?;
        u.aad_user_id = optional("user.aadUserId", u.aad_user_id.as_deref(), MAX_ID)?;
        keys.push(Key::new(KeyKind::Mailbox, upn.clone()));
        u.upn = Some(upn.clone());
        (EvidenceKind::User, format!("USER:{upn}"), serde_json::to_value(u).map_err(|e| e.to_string())?)
    } else if let Some(mut u) = e.url {
        let url = normalise_url("url.url", u.url.as_deref())?;
        keys.push(Key::new(KeyKind::Url, url.clone()));
        u.url = Some(url.clone());
        (EvidenceKind::Url, format!("URL:{url}"), serde_json::to_value(u).map_err(|e| e.to_string())?)
    } else if let Some(mut f) = e.file {
        let sha = sha256("file.sha256", f.sha256.as_deref())?;
        f.name = optional("file.name", f.name.as_deref(), MAX_NAME)?;
        size("file.size", f.size)?;
        keys.push(Key::new(KeyKind::FileSha256, sha.clone()));
        f.sha256 = Some(sha.clone());
        (EvidenceKind::File, format!("FILE:{sha}"), serde_json::to_value(f).map_err(|e| e.to_string())?)
    } else if let Some(mut ip) = e.ip {
        let addr = ip_address("ip.address", ip.address.as_deref())?;
        ip.country_code = optional("ip.countryCode", ip.country_code.as_deref(), 8)?;
        keys.push(Key::new(KeyKind::Ip, addr.clone()));
        ip.address = Some(addr.clone());
        (EvidenceKind::Ip, format!("IP:{addr}"), serde_json::to_value(ip).map_err(|e| e.to_string())?)
    } else {
        return Err("no evidence kind set".into());
    };
    let roles = e.roles.unwrap_or_default().iter().map(|r| r.as_str().to_string()).collect();
    Ok((
        PreparedEvidence {
            kind,
            entity_key,
            verdict: e.verdict.unwrap_or(Verdict::Unknown),
            remediation_status: e.remediation_status.unwrap_or(RemediationStatus::None),
            roles,
            data,
        },
        keys,
    ))
}

fn email(mut m: EmailEvidenceInput, keys: &mut Vec<Key>) -> Result<(String, serde_json::Value), String> {
    let nmid = required("email.networkMessageId", m.network_message_id.as_deref().unwrap_or(""), MAX_ID)?
        .to_lowercase();
    let recipient = address("email.recipient", m.recipient.as_deref())?;
    m.internet_message_id = optional("email.internetMessageId", m.internet_message_id.as_deref(), MAX_NAME)?;
    m.envelope_sender = optional_address("email.envelopeSender", m.envelope_sender.as_deref())?;
    m.header_from = optional_address("email.headerFrom", m.header_from.as_deref())?;
    m.sender_display_name = optional("email.senderDisplayName", m.sender_display_name.as_deref(), MAX_NAME)?;
    m.subject = optional("email.subject", m.subject.as_deref(), MAX_NAME)?;
    m.cluster_id = optional("email.clusterId", m.cluster_id.as_deref(), MAX_ID)?;
    m.received_at = time::check_opt("email.receivedAt", m.received_at)?;
    m.sender_ip = match m.sender_ip.as_deref() {
        Some(ip) if !ip.trim().is_empty() => Some(ip_address("email.senderIp", Some(ip))?),
        _ => None,
    };
    let norm_urls = crate::mail::validate::urls("email.urls", m.urls.take())?;
    let attachments: Vec<AttachmentInput> =
        crate::mail::validate::attachments("email.attachments", m.attachments.take())?
            .into_iter()
            .map(|a| AttachmentInput { name: a.name, sha256: a.sha256, size: a.size })
            .collect();
    let techs =
        crate::mail::validate::technologies("email.detectionTechnologies", m.detection_technologies.take())?;
    keys.push(Key::new(KeyKind::NetworkMessageId, nmid.clone()));
    keys.push(Key::new(KeyKind::Mailbox, recipient.clone()));
    for s in [&m.envelope_sender, &m.header_from].into_iter().flatten() {
        keys.push(Key::new(KeyKind::Sender, s.clone()));
    }
    for u in &norm_urls {
        keys.push(Key::new(KeyKind::Url, u.clone()));
    }
    for a in &attachments {
        if let Some(s) = &a.sha256 {
            keys.push(Key::new(KeyKind::FileSha256, s.clone()));
        }
    }
    if let Some(ip) = &m.sender_ip {
        keys.push(Key::new(KeyKind::Ip, ip.clone()));
    }
    if let Some(c) = &m.cluster_id {
        keys.push(Key::new(KeyKind::MailCluster, c.clone()));
    }
    let entity = crate::domain::email::entity_key(&nmid, &recipient);
    m.network_message_id = Some(nmid);
    m.recipient = Some(recipient);
    m.urls = Some(norm_urls);
    m.attachments = Some(attachments);
    m.detection_technologies = Some(techs);
    Ok((entity, serde_json::to_value(m).map_err(|e| e.to_string())?))
}

fn mail_cluster(
    mut c: MailClusterEvidenceInput,
    keys: &mut Vec<Key>,
) -> Result<(String, serde_json::Value), String> {
    let id = required("mailCluster.clusterId", c.cluster_id.as_deref().unwrap_or(""), MAX_ID)?;
    c.cluster_by = optional("mailCluster.clusterBy", c.cluster_by.as_deref(), MAX_NAME)?;
    c.query = optional("mailCluster.query", c.query.as_deref(), MAX_TEXT)?;
    if c.email_count.is_some_and(|n| n < 0) {
        return Err("mailCluster.emailCount must not be negative".into());
    }
    let ids = c.network_message_ids.take().unwrap_or_default();
    if ids.len() > 10_000 {
        return Err("mailCluster.networkMessageIds: at most 10000".into());
    }
    let mut norm = vec![];
    for n in ids {
        let n = required("mailCluster.networkMessageIds", &n, MAX_ID)?.to_lowercase();
        keys.push(Key::new(KeyKind::NetworkMessageId, n.clone()));
        norm.push(n);
    }
    keys.push(Key::new(KeyKind::MailCluster, id.clone()));
    c.cluster_id = Some(id.clone());
    c.network_message_ids = Some(norm);
    Ok((format!("MAIL_CLUSTER:{id}"), serde_json::to_value(c).map_err(|e| e.to_string())?))
}

/// `part` as given when short, else `sha256:<hex>` of it: an entity key names an entity, and equal parts
/// still give equal keys.
fn entity_part(part: &str) -> String {
    if part.len() <= MAX_ENTITY_PART_BYTES {
        return part.to_string();
    }
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(part.as_bytes())))
}

fn size(field: &str, v: Option<i64>) -> Result<(), String> {
    match v {
        Some(n) if n < 0 => Err(format!("{field} must not be negative")),
        _ => Ok(()),
    }
}

fn is_mitre_technique(t: &str) -> bool {
    let b = t.as_bytes();
    let base = b.len() >= 5 && b[0] == b'T' && b[1..5].iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => base,
        9 => base && b[5] == b'.' && b[6..9].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_urls_hashes() {
        assert_eq!(address("f", Some(" Alice@Contoso.com ")).as_deref(), Ok("alice@contoso.com"));
        assert!(address("f", Some("not an address")).is_err());
        assert!(address("f", Some("a@b")).is_err());
        assert_eq!(
            normalise_url("f", Some("HTTPS://Evil.Example/a#x")).as_deref(),
            Ok("https://evil.example/a")
        );
        assert!(normalise_url("f", Some("javascript:alert(1)")).is_err());
        assert!(sha256("f", Some("abc")).is_err());
        assert!(is_mitre_technique("T1566.002") && is_mitre_technique("T1566") && !is_mitre_technique("X1"));
    }
}
