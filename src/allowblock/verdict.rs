//! What the list does to one message copy, given the entries the batch matched: a pure function.
//!
//! - Blocks win over allows: one matching BLOCK decides, whatever allows match too.
//! - A SENDER, URL or IP block makes the copy PHISH with HIGH phish confidence; a FILE_HASH block makes
//!   it MALWARE. Each kind that blocked adds its detection technology
//!   (`Tenant Allow/Block List sender block`, `... URL block`, `... file block`, `... IP block`).
//! - An allow clears SPAM and normal-confidence PHISH, and never MALWARE or HIGH-confidence phish (the
//!   real system asks for a submission for those): a copy carrying either keeps its verdict, and the
//!   allow is reported as overruled and not used.
//! - The entries used (the blocks that decided, or the allows that applied) are returned for `touch`.

use super::keys::MatchKeys;
use super::matcher::{ActiveEntry, Probe};
use crate::domain::enums::{AllowBlockAction, AllowBlockKind, PhishConfidence, ThreatType};
use uuid::Uuid;

/// Where an override comes from, as Threat Explorer names it.
pub const OVERRIDE_SOURCE: &str = "Tenant Allow/Block List";

/// The facts of one message copy the list is matched against, and its verdict before the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyFacts {
    /// SMTP MAIL FROM.
    pub envelope_sender: Option<String>,
    /// The From: header.
    pub header_from: Option<String>,
    /// Sender domains (those of the two addresses are taken from them anyway).
    pub sender_domains: Vec<String>,
    /// URLs, normalised as ingestion normalises them.
    pub urls: Vec<String>,
    /// Hosts of the URLs (taken from the URLs anyway).
    pub url_hosts: Vec<String>,
    /// Attachment SHA-256s.
    pub attachment_sha256s: Vec<String>,
    /// The sending server's address.
    pub sender_ip: Option<String>,
    /// Threats found before the list.
    pub threat_types: Vec<ThreatType>,
    /// Phish confidence before the list.
    pub phish_confidence: Option<PhishConfidence>,
}

impl CopyFacts {
    /// Every stored value this copy matches.
    pub fn keys(&self) -> MatchKeys {
        Probe::from_copies([self]).keys()
    }
}

/// What the list decided for a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No entry matched.
    None,
    /// A BLOCK matched: the verdict became phish or malware.
    Blocked,
    /// Only ALLOWs matched, and they applied (SPAM and normal-confidence PHISH cleared).
    Allowed,
    /// Only ALLOWs matched, but the copy is MALWARE or HIGH-confidence phish, which an allow never clears.
    AllowOverruled,
}

/// The copy's verdict after the list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// What the list decided.
    pub decision: Decision,
    /// Threats after the list (sorted, no repeats).
    pub threat_types: Vec<ThreatType>,
    /// Phish confidence after the list.
    pub phish_confidence: Option<PhishConfidence>,
    /// Detection technologies the list adds (blocks only), one per kind that blocked.
    pub detection_technologies: Vec<&'static str>,
    /// [`OVERRIDE_SOURCE`] when the list changed or confirmed the verdict (blocked or allowed).
    pub source: Option<&'static str>,
    /// The entries used, sorted: what [`super::touch`] records.
    pub entry_ids: Vec<Uuid>,
}

/// The detection technology of a block of `kind`.
pub fn technology(kind: AllowBlockKind) -> &'static str {
    match kind {
        AllowBlockKind::Sender => "Tenant Allow/Block List sender block",
        AllowBlockKind::Url => "Tenant Allow/Block List URL block",
        AllowBlockKind::FileHash => "Tenant Allow/Block List file block",
        AllowBlockKind::Ip => "Tenant Allow/Block List IP block",
    }
}

/// What `entries` (the batch's active matches) do to `copy`.
pub fn verdict_for(entries: &[ActiveEntry], copy: &CopyFacts) -> Override {
    let keys = copy.keys();
    let matched: Vec<&ActiveEntry> = entries.iter().filter(|e| keys.holds(e.kind, &e.value)).collect();
    let of = |action| matched.iter().filter(move |e| e.action == action).copied();
    let ids = |es: &mut dyn Iterator<Item = &ActiveEntry>| {
        let mut v: Vec<Uuid> = es.map(|e| e.id).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let unchanged = |decision| Override {
        decision,
        threat_types: sorted(copy.threat_types.clone()),
        phish_confidence: copy.phish_confidence,
        detection_technologies: vec![],
        source: None,
        entry_ids: vec![],
    };

    if of(AllowBlockAction::Block).next().is_some() {
        let mut threats = copy.threat_types.clone();
        let mut confidence = copy.phish_confidence;
        let mut technologies = vec![];
        for kind in
            [AllowBlockKind::FileHash, AllowBlockKind::Url, AllowBlockKind::Sender, AllowBlockKind::Ip]
        {
            if !of(AllowBlockAction::Block).any(|e| e.kind == kind) {
                continue;
            }
            technologies.push(technology(kind));
            if kind == AllowBlockKind::FileHash {
                threats.push(ThreatType::Malware);
            } else {
                threats.push(ThreatType::Phish);
                confidence = Some(PhishConfidence::High);
            }
        }
        return Override {
            decision: Decision::Blocked,
            threat_types: sorted(threats),
            phish_confidence: confidence,
            detection_technologies: technologies,
            source: Some(OVERRIDE_SOURCE),
            entry_ids: ids(&mut of(AllowBlockAction::Block)),
        };
    }
    if of(AllowBlockAction::Allow).next().is_none() {
        return unchanged(Decision::None);
    }
    let malware = copy.threat_types.contains(&ThreatType::Malware);
    let high_phish = copy.threat_types.contains(&ThreatType::Phish)
        && copy.phish_confidence == Some(PhishConfidence::High);
    if malware || high_phish {
        return unchanged(Decision::AllowOverruled);
    }
    Override {
        decision: Decision::Allowed,
        threat_types: vec![],
        phish_confidence: None,
        detection_technologies: vec![],
        source: Some(OVERRIDE_SOURCE),
        entry_ids: ids(&mut of(AllowBlockAction::Allow)),
    }
}

fn sorted(mut v: Vec<ThreatType>) -> Vec<ThreatType> {
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowBlockAction::*;
    use AllowBlockKind::*;

    fn entry(n: u128, kind: AllowBlockKind, value: &str, action: AllowBlockAction) -> ActiveEntry {
        ActiveEntry { id: Uuid::from_u128(n), kind, value: value.into(), action, expires_at: None }
    }

    fn copy() -> CopyFacts {
        CopyFacts {
            envelope_sender: Some("bounce@mail.evil.example".into()),
            header_from: Some("billing@contoso.com".into()),
            urls: vec!["https://evil.example/pay?id=1".into()],
            attachment_sha256s: vec!["ab".repeat(32)],
            sender_ip: Some("203.0.113.7".into()),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_matching_changes_nothing() {
        let entries = [entry(1, Sender, "other.example", Block), entry(2, Url, "good.example", Allow)];
        let o = verdict_for(&entries, &CopyFacts { threat_types: vec![ThreatType::Spam], ..copy() });
        assert_eq!(o.decision, Decision::None);
        assert_eq!(o.threat_types, vec![ThreatType::Spam]);
        assert!(o.entry_ids.is_empty() && o.source.is_none());
    }

    #[test]
    fn sender_url_and_ip_blocks_make_high_confidence_phish() {
        for (kind, value, tech) in [
            (Sender, "*.evil.example", "Tenant Allow/Block List sender block"),
            (Sender, "billing@contoso.com", "Tenant Allow/Block List sender block"),
            (Url, "https://evil.example/pay", "Tenant Allow/Block List URL block"),
            (Url, "evil.example", "Tenant Allow/Block List URL block"),
            (Ip, "203.0.113.0/24", "Tenant Allow/Block List IP block"),
        ] {
            let o = verdict_for(&[entry(7, kind, value, Block)], &copy());
            assert_eq!(o.decision, Decision::Blocked, "{value}");
            assert_eq!(o.threat_types, vec![ThreatType::Phish]);
            assert_eq!(o.phish_confidence, Some(PhishConfidence::High));
            assert_eq!(o.detection_technologies, vec![tech]);
            assert_eq!((o.source, o.entry_ids), (Some(OVERRIDE_SOURCE), vec![Uuid::from_u128(7)]));
        }
    }

    #[test]
    fn a_file_block_makes_malware() {
        let o = verdict_for(&[entry(3, FileHash, &"ab".repeat(32), Block)], &copy());
        assert_eq!(o.threat_types, vec![ThreatType::Malware]);
        assert_eq!(o.phish_confidence, None);
        assert_eq!(o.detection_technologies, vec!["Tenant Allow/Block List file block"]);
    }

    #[test]
    fn blocks_win_over_allows() {
        let entries = [
            entry(1, Sender, "contoso.com", Allow),
            entry(2, Url, "evil.example", Block),
            entry(3, FileHash, &"ab".repeat(32), Block),
            entry(4, Ip, "203.0.113.7", Allow),
        ];
        let o = verdict_for(&entries, &copy());
        assert_eq!(o.decision, Decision::Blocked);
        assert_eq!(o.threat_types, vec![ThreatType::Malware, ThreatType::Phish]);
        assert_eq!(
            o.detection_technologies,
            vec!["Tenant Allow/Block List file block", "Tenant Allow/Block List URL block"]
        );
        assert_eq!(o.entry_ids, vec![Uuid::from_u128(2), Uuid::from_u128(3)], "only the blocks are used");
    }

    #[test]
    fn allows_clear_spam_and_normal_phish_only() {
        let allow = [entry(5, Sender, "contoso.com", Allow)];
        let spam = CopyFacts {
            threat_types: vec![ThreatType::Spam, ThreatType::Phish],
            phish_confidence: Some(PhishConfidence::Normal),
            ..copy()
        };
        let o = verdict_for(&allow, &spam);
        assert_eq!(o.decision, Decision::Allowed);
        assert!(o.threat_types.is_empty() && o.phish_confidence.is_none());
        assert_eq!((o.source, o.entry_ids), (Some(OVERRIDE_SOURCE), vec![Uuid::from_u128(5)]));

        let clean = verdict_for(&allow, &copy());
        assert_eq!(
            (clean.decision, clean.entry_ids.len()),
            (Decision::Allowed, 1),
            "an allow in use is used"
        );

        for overruled in [
            CopyFacts { threat_types: vec![ThreatType::Malware, ThreatType::Spam], ..copy() },
            CopyFacts {
                threat_types: vec![ThreatType::Phish],
                phish_confidence: Some(PhishConfidence::High),
                ..copy()
            },
        ] {
            let o = verdict_for(&allow, &overruled);
            assert_eq!(o.decision, Decision::AllowOverruled);
            assert_eq!(o.threat_types, sorted(overruled.threat_types.clone()));
            assert_eq!(o.phish_confidence, overruled.phish_confidence);
            assert!(o.entry_ids.is_empty() && o.source.is_none());
        }
    }

    #[test]
    fn only_entries_of_this_copy_count() {
        // The batch matched an entry for another copy's sender: not this copy's business.
        let entries = [entry(9, Sender, "someone@else.example", Block)];
        assert_eq!(verdict_for(&entries, &copy()).decision, Decision::None);
    }
}
