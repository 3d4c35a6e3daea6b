//! A submission's result, decided from what Parapet knows of the item: the tenant allow/block list, the
//! verdicts (the copy's threats, alerts' evidence), and whether it was delivered. A pure function, so
//! every rule is tested on its own.

use crate::domain::enums::{SubmissionCategory, SubmissionResultCategory};

/// How strongly Parapet's data marks the item as a threat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threat {
    /// Nothing is known of the item.
    Unknown,
    /// Known, and no threat recorded.
    Clean,
    /// Spam only.
    Spam,
    /// Normal-confidence phish, or a suspicious verdict.
    Suspicious,
    /// Malware, high-confidence phish, or a malicious verdict.
    Malicious,
}

/// What the evaluation considers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A block entry that matches the item (`kind value`), if any.
    pub blocked_by: Option<String>,
    /// An allow entry that matches the item, if any.
    pub allowed_by: Option<String>,
    /// The verdicts' strength.
    pub threat: Option<Threat>,
    /// Whether the item reached a mailbox (an e-mail delivered to the inbox or another user folder;
    /// URLs and files: a copy carrying it did).
    pub delivered: bool,
    /// Where the e-mail is now, for the detail text.
    pub location: Option<String>,
}

/// The result: its category, the short text a submissions page shows, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Category.
    pub category: SubmissionResultCategory,
    /// Short text ("Should have been blocked").
    pub result: String,
    /// Why.
    pub detail: String,
}

fn outcome(category: SubmissionResultCategory, result: &str, detail: String) -> Outcome {
    Outcome { category, result: result.to_string(), detail }
}

/// Evaluates a submission of `category` on `facts`. Blocks win over allows, as in filtering.
pub fn evaluate(category: SubmissionCategory, facts: &Facts) -> Outcome {
    use SubmissionResultCategory as R;
    let threat = facts.threat.unwrap_or(Threat::Unknown);
    let where_ = facts.location.as_deref().map(|l| format!(" (now in {l})")).unwrap_or_default();
    if let Some(entry) = &facts.blocked_by {
        return outcome(
            R::BlockedByPolicy,
            "Blocked by tenant block list",
            format!("the block entry {entry} matches it{where_}"),
        );
    }
    let bad_claim = category != SubmissionCategory::NotJunk;
    if bad_claim {
        if let Some(entry) = &facts.allowed_by {
            return outcome(
                R::AllowedByPolicy,
                "Allowed by tenant allow list",
                format!("the allow entry {entry} let it through; remove it or let it expire to block it"),
            );
        }
        return match threat {
            Threat::Malicious | Threat::Suspicious | Threat::Spam if facts.delivered => outcome(
                R::ThreatsFound,
                "Should have been blocked",
                format!("Parapet's verdicts mark it as a threat, yet it was delivered{where_}"),
            ),
            Threat::Malicious | Threat::Suspicious | Threat::Spam => outcome(
                R::ThreatsFound,
                "Threats found: already blocked",
                format!("Parapet's verdicts mark it as a threat, and it was not delivered{where_}"),
            ),
            Threat::Clean | Threat::Unknown => outcome(
                R::NoThreatsFound,
                "No threats found",
                "no verdict, threat or block entry in Parapet marks it; a block entry would block items like it"
                    .to_string(),
            ),
        };
    }
    if let Some(entry) = &facts.allowed_by {
        return outcome(
            R::AllowedByPolicy,
            "Allowed by tenant allow list",
            format!("the allow entry {entry} matches it"),
        );
    }
    match threat {
        Threat::Malicious => outcome(
            R::ThreatsFound,
            "Should have been blocked",
            "malware or high-confidence phish: an allow entry cannot override that verdict".to_string(),
        ),
        Threat::Suspicious | Threat::Spam if !facts.delivered => outcome(
            R::NotJunk,
            "Should not have been blocked",
            format!("held for spam or normal-confidence phish only{where_}; an allow entry overrides that verdict"),
        ),
        Threat::Suspicious | Threat::Spam => outcome(
            R::NotJunk,
            "Should not have been blocked",
            "marked as spam or normal-confidence phish; an allow entry overrides that verdict".to_string(),
        ),
        Threat::Clean | Threat::Unknown => outcome(
            R::NoThreatsFound,
            "Not blocked",
            format!("no verdict or block entry in Parapet holds it back{where_}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubmissionCategory::*;
    use SubmissionResultCategory as R;

    fn facts(threat: Threat, delivered: bool) -> Facts {
        Facts { threat: Some(threat), delivered, ..Facts::default() }
    }

    #[test]
    fn false_negatives() {
        assert_eq!(evaluate(Phishing, &facts(Threat::Suspicious, true)).result, "Should have been blocked");
        assert_eq!(evaluate(Malware, &facts(Threat::Malicious, false)).category, R::ThreatsFound);
        assert_eq!(evaluate(Spam, &facts(Threat::Clean, true)).category, R::NoThreatsFound);
        let allowed = Facts { allowed_by: Some("SENDER x@y.z".into()), ..facts(Threat::Malicious, true) };
        assert_eq!(evaluate(Phishing, &allowed).result, "Allowed by tenant allow list");
    }

    #[test]
    fn false_positives() {
        assert_eq!(evaluate(NotJunk, &facts(Threat::Spam, false)).result, "Should not have been blocked");
        assert_eq!(evaluate(NotJunk, &facts(Threat::Malicious, false)).result, "Should have been blocked");
        assert_eq!(evaluate(NotJunk, &facts(Threat::Clean, true)).category, R::NoThreatsFound);
    }

    #[test]
    fn blocks_win() {
        let both = Facts {
            blocked_by: Some("URL https://x.example/".into()),
            allowed_by: Some("SENDER y.example".into()),
            ..facts(Threat::Clean, true)
        };
        for c in [NotJunk, Spam, Phishing, Malware] {
            assert_eq!(evaluate(c, &both).result, "Blocked by tenant block list");
        }
    }
}
