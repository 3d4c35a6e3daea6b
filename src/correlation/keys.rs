//! Correlation keys: what an alert's evidence says about it that another alert may share, normalised so
//! equal things compare equal, and the tenant's ignore list.

use crate::domain::enums::KeyKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One key of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Kind.
    pub kind: KeyKind,
    /// Normalised value.
    pub value: String,
}

impl Key {
    /// A key; `value` must already be normalised.
    pub fn new(kind: KeyKind, value: impl Into<String>) -> Self {
        Self { kind, value: value.into() }
    }
}

/// Advisory-lock id of a key within a tenant: batches that share a key serialise on it.
pub fn lock_id(tenant_id: &str, kind: &str, value: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update([0x1f]);
    h.update(kind.as_bytes());
    h.update([0x1f]);
    h.update(value.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

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

    #[test]
    fn lock_ids_differ_by_tenant() {
        assert_ne!(lock_id("a", "URL", "x"), lock_id("b", "URL", "x"));
        assert_eq!(lock_id("a", "URL", "x"), lock_id("a", "URL", "x"));
    }
}
