//! The tenant's ignore list: which correlation keys ([`Key`]) never correlate.

use crate::domain::enums::KeyKind;
use crate::domain::keys::Key;

/// Whether the tenant's ignore list covers `key`: an entry equal to the value, or, for addresses and
/// URLs, the value's domain or a parent domain of it (so `contoso.com` covers `mail.contoso.com`).
/// Entries are compared as stored: they are normalised (trimmed, lower-case) when the list is saved.
pub fn is_ignored(key: &Key, ignore: &[String]) -> bool {
    if ignore.is_empty() {
        return false;
    }
    let domain = match key.kind {
        KeyKind::Sender | KeyKind::Mailbox => key.value.rsplit_once('@').map(|(_, d)| d.to_string()),
        KeyKind::Url => url::Url::parse(&key.value).ok().and_then(|u| u.host_str().map(str::to_string)),
        _ => None,
    };
    ignore.iter().any(|entry| {
        if entry.is_empty() {
            return false;
        }
        if key.value == *entry {
            return true;
        }
        match &domain {
            Some(d) => d == entry || d.strip_suffix(entry.as_str()).is_some_and(|rest| rest.ends_with('.')),
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_list_covers_domains_and_subdomains() {
        let ignore = vec!["contoso.com".to_string()];
        assert!(is_ignored(&Key::new(KeyKind::Sender, "it@contoso.com"), &ignore));
        assert!(is_ignored(&Key::new(KeyKind::Url, "https://mail.contoso.com/x"), &ignore));
        assert!(!is_ignored(&Key::new(KeyKind::Url, "https://notcontoso.com/x"), &ignore));
        assert!(!is_ignored(&Key::new(KeyKind::Sender, "a@evil.example"), &ignore));
    }
}
