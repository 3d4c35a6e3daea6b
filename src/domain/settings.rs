//! Tenant settings: the rules a change must follow (ranges, normalisation of the ignore list).
//! `crate::tenants` applies a change once it passed them.

use crate::error::{AppError, AppResult};

/// Shortest and longest correlation window, in hours (one hour to one year).
pub const WINDOW_HOURS: std::ops::RangeInclusive<i32> = 1..=8760;
/// Most entries the correlation ignore list may hold.
pub const MAX_IGNORE_ENTRIES: usize = 1000;
/// Longest entry of the ignore list, in characters.
pub const MAX_IGNORE_ENTRY_CHARS: usize = 255;
/// Highest `maxKeyPrevalence`: a key more common than this names no campaign, and checking it would
/// read that many rows per key.
pub const MAX_KEY_PREVALENCE: i32 = 10_000;

/// A requested change to the settings, as a person typed it; `None` leaves a setting unchanged.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    /// Correlation window for strong keys, in hours.
    pub strong_key_window_hours: Option<i32>,
    /// Correlation window for weak keys, in hours.
    pub weak_key_window_hours: Option<i32>,
    /// Prevalence above which a key stops correlating.
    pub max_key_prevalence: Option<i32>,
    /// The whole new ignore list (replaces the old one).
    pub correlation_ignore: Option<Vec<String>>,
    /// Auto-approval of automated remediation.
    pub auto_approve: Option<bool>,
    /// Four-eyes rule for approvals.
    pub four_eyes: Option<bool>,
    /// The whole new list of the tenant's own mail domains.
    pub accepted_domains: Option<Vec<String>>,
}

fn window(name: &str, v: Option<i32>) -> AppResult<Option<i32>> {
    match v {
        Some(h) if !WINDOW_HOURS.contains(&h) => Err(AppError::bad(format!(
            "{name} must be between {} and {} hours, got {h}",
            WINDOW_HOURS.start(),
            WINDOW_HOURS.end()
        ))),
        other => Ok(other),
    }
}

/// Trims and lower-cases every entry and drops repeats (keeping the first); refuses empty, over-long or
/// unstorable (NUL) entries and over-long lists.
pub fn normalise_ignore_list(entries: &[String]) -> AppResult<Vec<String>> {
    if entries.len() > MAX_IGNORE_ENTRIES {
        return Err(AppError::bad(format!(
            "correlationIgnore may hold at most {MAX_IGNORE_ENTRIES} entries, got {}",
            entries.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, raw) in entries.iter().enumerate() {
        let v = raw.trim().to_lowercase();
        super::text::storable(&format!("correlationIgnore entry {i}"), &v).map_err(AppError::BadInput)?;
        if v.is_empty() {
            return Err(AppError::bad(format!("correlationIgnore entry {i} is empty")));
        }
        if v.chars().count() > MAX_IGNORE_ENTRY_CHARS {
            return Err(AppError::bad(format!(
                "correlationIgnore entry {i} is longer than {MAX_IGNORE_ENTRY_CHARS} characters"
            )));
        }
        if seen.insert(v.clone()) {
            out.push(v);
        }
    }
    Ok(out)
}

/// Most domains `acceptedDomains` may hold.
pub const MAX_ACCEPTED_DOMAINS: usize = 1000;

/// Trims, lower-cases and de-duplicates the tenant's own domains; refuses what is not a domain name.
pub fn normalise_domains(entries: &[String]) -> AppResult<Vec<String>> {
    if entries.len() > MAX_ACCEPTED_DOMAINS {
        return Err(AppError::bad(format!(
            "acceptedDomains may hold at most {MAX_ACCEPTED_DOMAINS} domains, got {}",
            entries.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for (i, raw) in entries.iter().enumerate() {
        let d = raw.trim().trim_end_matches('.').to_lowercase();
        let labels_ok = d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        if d.len() > 253 || !d.contains('.') || !labels_ok {
            return Err(AppError::bad(format!(
                "acceptedDomains entry {i} is not a domain name: {}",
                super::text::excerpt(raw)
            )));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Checks and normalises a change; `BAD_USER_INPUT` says which value is wrong.
pub fn validate(u: &SettingsUpdate) -> AppResult<SettingsUpdate> {
    if let Some(p) = u.max_key_prevalence {
        if !(1..=MAX_KEY_PREVALENCE).contains(&p) {
            return Err(AppError::bad(format!(
                "maxKeyPrevalence must be between 1 and {MAX_KEY_PREVALENCE}, got {p}"
            )));
        }
    }
    Ok(SettingsUpdate {
        strong_key_window_hours: window("strongKeyWindowHours", u.strong_key_window_hours)?,
        weak_key_window_hours: window("weakKeyWindowHours", u.weak_key_window_hours)?,
        max_key_prevalence: u.max_key_prevalence,
        correlation_ignore: u.correlation_ignore.as_deref().map(normalise_ignore_list).transpose()?,
        auto_approve: u.auto_approve,
        four_eyes: u.four_eyes,
        accepted_domains: u.accepted_domains.as_deref().map(normalise_domains).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_list_is_trimmed_lowered_and_deduplicated() {
        let got = normalise_ignore_list(&[" Contoso.COM ".into(), "contoso.com".into(), "x@y.z".into()])
            .expect("valid");
        assert_eq!(got, vec!["contoso.com".to_string(), "x@y.z".to_string()]);
        assert!(normalise_ignore_list(&["  ".into()]).is_err());
        assert!(normalise_ignore_list(&["a".repeat(256)]).is_err());
        assert!(normalise_ignore_list(&["contoso.com\0".into()]).is_err());
        assert!(normalise_ignore_list(&vec!["a".to_string(); 1001]).is_err());
    }

    #[test]
    fn accepted_domains_are_domain_names() {
        let got =
            normalise_domains(&[" Contoso.COM. ".into(), "contoso.com".into(), "mail.fabrikam.co.uk".into()])
                .expect("valid");
        assert_eq!(got, vec!["contoso.com".to_string(), "mail.fabrikam.co.uk".to_string()]);
        for bad in ["", "contoso", "a b.com", "x@contoso.com", "-a.com", "contoso.com\0"] {
            assert!(normalise_domains(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(normalise_domains(&vec!["a.com".to_string(); 1001]).is_err());
    }

    #[test]
    fn windows_and_prevalence_are_range_checked() {
        let bad = SettingsUpdate { strong_key_window_hours: Some(0), ..Default::default() };
        assert!(validate(&bad).is_err());
        let bad = SettingsUpdate { weak_key_window_hours: Some(8761), ..Default::default() };
        assert!(validate(&bad).is_err());
        let bad = SettingsUpdate { max_key_prevalence: Some(0), ..Default::default() };
        assert!(validate(&bad).is_err());
        let bad = SettingsUpdate { max_key_prevalence: Some(10_001), ..Default::default() };
        assert!(validate(&bad).is_err());
        let ok = SettingsUpdate { max_key_prevalence: Some(10_000), ..Default::default() };
        assert!(validate(&ok).is_ok());
        let ok = SettingsUpdate { strong_key_window_hours: Some(8760), ..Default::default() };
        assert!(validate(&ok).is_ok());
    }
}
