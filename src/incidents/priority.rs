//! The priority score (0-100) of an incident and the reasons that make it up, so an analyst can see why
//! one incident sits above another in the queue.

use crate::db::queries::incidents::IncidentStats;
use crate::domain::enums::Severity;

/// Score and reasons, e.g. `(65, ["High severity (+40)", "50 impacted mailboxes (+20)", ...])`.
pub fn score(severity: Severity, s: &IncidentStats) -> (i32, Vec<String>) {
    let mut parts: Vec<(i32, String)> = vec![];
    let sev = match severity {
        Severity::High => 40,
        Severity::Medium => 25,
        Severity::Low => 10,
        Severity::Informational => 5,
        Severity::Unknown => 0,
    };
    if sev > 0 {
        let name = severity.as_str().to_lowercase();
        let mut name_cap = name[..1].to_uppercase();
        name_cap.push_str(&name[1..]);
        parts.push((sev, format!("{name_cap} severity")));
    }
    if s.mailboxes > 0 {
        let pts = (s.mailboxes * 2).min(20);
        let what = if s.mailboxes == 1 {
            "1 impacted mailbox".to_string()
        } else {
            format!("{} impacted mailboxes", s.mailboxes)
        };
        parts.push((pts, what));
    }
    if s.malicious_evidence > 0 {
        parts.push((15, "Malicious evidence".to_string()));
    }
    if s.policies > 1 || s.sources > 1 || s.categories.len() > 1 {
        parts.push((15, "Multi-stage attack (several alert policies, sources or tactics)".to_string()));
    }
    if s.alerts > 1 {
        parts.push(((s.alerts - 1).min(10), format!("{} alerts", s.alerts)));
    }
    let total = parts.iter().map(|(p, _)| *p).sum::<i32>().clamp(0, 100);
    (total, parts.into_iter().map(|(p, r)| format!("{r} (+{p})")).collect())
}
