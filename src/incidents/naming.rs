//! The generated incident name, in the style analysts know from Defender: the alert title when all its
//! alerts share one, else "Multi-stage incident", followed by who is involved.

use crate::db::queries::incidents::IncidentStats;

/// The name an incident with these alerts gets.
pub fn display_name(s: &IncidentStats) -> String {
    let head = match (&s.a_title, s.titles) {
        (Some(t), 1) => t.clone(),
        _ if s.categories.len() > 1 => {
            let mut cats: Vec<String> = s.categories.iter().map(|c| humanise(c)).collect();
            cats.sort();
            format!("Multi-stage incident involving {}", cats.join(" & "))
        }
        _ => "Multi-stage incident".to_string(),
    };
    let involving = if head.contains(" involving ") { " on " } else { " involving " };
    match (s.mailboxes, &s.a_mailbox) {
        (0, _) | (_, None) => head,
        (1, Some(m)) => format!("{head}{involving}{m}"),
        (n, _) => format!("{head}{involving}{n} mailboxes"),
    }
}

/// `InitialAccess` → `Initial access`.
fn humanise(category: &str) -> String {
    let mut out = String::new();
    for (i, ch) in category.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(titles: i32, title: &str, mailboxes: i32, categories: &[&str]) -> IncidentStats {
        IncidentStats {
            alerts: 1,
            open_alerts: 1,
            severity_rank: 1,
            titles,
            a_title: Some(title.into()),
            policies: 1,
            sources: 1,
            categories: categories.iter().map(|c| c.to_string()).collect(),
            mailboxes,
            a_mailbox: Some("alice@contoso.com".into()),
            malicious_evidence: 0,
        }
    }

    #[test]
    fn names_read_like_defender() {
        let t = "Email messages containing malicious URL removed after delivery";
        assert_eq!(display_name(&stats(1, t, 50, &[])), format!("{t} involving 50 mailboxes"));
        assert_eq!(display_name(&stats(1, t, 1, &[])), format!("{t} involving alice@contoso.com"));
        assert_eq!(
            display_name(&stats(2, t, 3, &["InitialAccess", "Exfiltration"])),
            "Multi-stage incident involving Exfiltration & Initial access on 3 mailboxes"
        );
    }
}
