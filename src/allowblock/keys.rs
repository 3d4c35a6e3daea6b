//! The values a message's facts are looked up by: every stored entry value that would match them, so
//! the database compares with `=` on its `(tenant_id, kind, value)` index and Rust ([`MatchKeys::holds`])
//! compares the same way.
//!
//! - senders: each address; each domain (of the addresses too); `*.p` for the domain and each parent `p`;
//! - URLs: each URL, with and without its scheme, cut after the host at each `/`, `?` and `&` (with and
//!   without the `/`), as far as an entry can reach ([`MAX_URL_CHARS`]); each host and `*.p` for the
//!   host and each parent;
//! - file hashes as given; IP addresses parsed (IPv4-mapped IPv6 addresses also as IPv4).

use super::value::{ip_entry_contains, MAX_URL_CHARS};
use crate::domain::enums::AllowBlockKind;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Lookup values of some message facts, one set per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchKeys {
    /// SENDER values that match.
    pub sender: BTreeSet<String>,
    /// URL values that match.
    pub url: BTreeSet<String>,
    /// FILE_HASH values that match.
    pub file_hash: BTreeSet<String>,
    /// Addresses IP entries are checked against (by containment).
    pub ips: BTreeSet<IpAddr>,
}

impl MatchKeys {
    /// Adds a sender address (`local@domain`), and its domain.
    pub fn add_address(&mut self, address: &str) {
        let a = address.trim().to_lowercase();
        if a.is_empty() {
            return;
        }
        if let Some((_, domain)) = a.rsplit_once('@') {
            self.add_domain(domain);
        }
        self.sender.insert(a);
    }

    /// Adds a sender domain: it, and `*.p` for it and each parent `p`.
    pub fn add_domain(&mut self, domain: &str) {
        let d = domain.trim().to_lowercase();
        if d.is_empty() {
            return;
        }
        wildcards(&d, &mut self.sender);
        self.sender.insert(d);
    }

    /// Adds a URL (normalised as ingestion normalises it) and its host.
    pub fn add_url(&mut self, url: &str) {
        let Some((_, rest)) = url.split_once("://") else { return };
        for form in [url, rest] {
            let host_start = form.len() - rest.len();
            prefixes(form, host_start, &mut self.url);
        }
        if let Some(host) = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)) {
            self.add_host(&host);
        }
    }

    /// Adds a URL host: it, and `*.p` for it and each parent `p` (domains only).
    pub fn add_host(&mut self, host: &str) {
        let h = host.trim().to_lowercase();
        if h.is_empty() {
            return;
        }
        if !h.starts_with('[') && h.parse::<IpAddr>().is_err() {
            wildcards(&h, &mut self.url);
        }
        self.url.insert(h);
    }

    /// Adds a file's SHA-256.
    pub fn add_file_hash(&mut self, sha256: &str) {
        let h = sha256.trim().to_ascii_lowercase();
        if !h.is_empty() {
            self.file_hash.insert(h);
        }
    }

    /// Adds a sending IP address; anything else is ignored (it can match no entry).
    pub fn add_ip(&mut self, ip: &str) {
        if let Ok(a) = ip.trim().parse::<IpAddr>() {
            self.ips.insert(a);
            self.ips.insert(a.to_canonical());
        }
    }

    /// Whether an entry of `kind` with the stored `value` matches these facts.
    pub fn holds(&self, kind: AllowBlockKind, value: &str) -> bool {
        match kind {
            AllowBlockKind::Sender => self.sender.contains(value),
            AllowBlockKind::Url => self.url.contains(value),
            AllowBlockKind::FileHash => self.file_hash.contains(value),
            AllowBlockKind::Ip => self.ips.iter().any(|a| ip_entry_contains(value, *a)),
        }
    }

    /// Whether there is nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.sender.is_empty() && self.url.is_empty() && self.file_hash.is_empty() && self.ips.is_empty()
    }
}

/// `*.p` for `d` and each of its parents (`a.b.c` gives `*.a.b.c`, `*.b.c`, `*.c`).
fn wildcards(d: &str, out: &mut BTreeSet<String>) {
    let mut rest = d;
    loop {
        out.insert(format!("*.{rest}"));
        match rest.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => rest = parent,
            _ => break,
        }
    }
}

/// The prefixes of `form` an entry can equal: the whole (when short enough), and every cut at a `/`,
/// `?` or `&` from the end of the host on (with and without the `/`), at most `MAX_URL_CHARS` long.
fn prefixes(form: &str, host_start: usize, out: &mut BTreeSet<String>) {
    if form.chars().count() <= MAX_URL_CHARS {
        out.insert(form.to_string());
    }
    let tail = form.get(host_start..).unwrap_or("");
    let Some(host_end) = tail.find(['/', '?']).map(|i| host_start + i) else { return };
    for (i, c) in form.char_indices().filter(|(i, _)| *i >= host_end) {
        if i >= MAX_URL_CHARS {
            break;
        }
        if matches!(c, '/' | '?' | '&') {
            out.extend(form.get(..i).map(str::to_string));
            if c == '/' {
                out.extend(form.get(..=i).map(str::to_string));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowBlockKind::*;

    #[test]
    fn senders_match_addresses_domains_and_wildcards() {
        let mut k = MatchKeys::default();
        k.add_address("Bob@Mail.Contoso.com");
        for v in ["bob@mail.contoso.com", "mail.contoso.com", "*.mail.contoso.com", "*.contoso.com", "*.com"]
        {
            assert!(k.holds(Sender, v), "{v}");
        }
        assert!(!k.holds(Sender, "contoso.com"), "an exact domain does not cover its subdomains");
        assert!(!k.holds(Url, "mail.contoso.com"), "kinds are kept apart");
    }

    #[test]
    fn urls_match_prefixes_at_boundaries_and_hosts() {
        let mut k = MatchKeys::default();
        k.add_url("https://www.evil.example/pay/now?id=1&x=2");
        for v in [
            "https://www.evil.example/",
            "https://www.evil.example/pay",
            "https://www.evil.example/pay/",
            "https://www.evil.example/pay/now",
            "https://www.evil.example/pay/now?id=1",
            "https://www.evil.example/pay/now?id=1&x=2",
            "www.evil.example/pay",
            "www.evil.example/pay/now?id=1",
            "www.evil.example",
            "*.evil.example",
            "*.www.evil.example",
        ] {
            assert!(k.holds(Url, v), "{v}");
        }
        for v in [
            "https://www.evil.example/pa",
            "http://www.evil.example/pay",
            "evil.example",
            "www.evil.example/p",
        ] {
            assert!(!k.holds(Url, v), "{v}");
        }
        let mut ip = MatchKeys::default();
        ip.add_url("http://203.0.113.9/x");
        assert!(ip.holds(Url, "203.0.113.9") && ip.holds(Url, "203.0.113.9/x"));
        assert!(!ip.url.iter().any(|v| v.starts_with("*.")), "no wildcards of an address");
    }

    #[test]
    fn long_urls_give_bounded_keys() {
        let mut k = MatchKeys::default();
        k.add_url(&format!("https://evil.example/{}", "a/".repeat(1000)));
        assert!(k.url.iter().all(|v| v.len() <= MAX_URL_CHARS), "no key longer than an entry can be");
        assert!(k.url.len() < 600, "{}", k.url.len());
    }

    #[test]
    fn ips_match_by_containment() {
        let mut k = MatchKeys::default();
        k.add_ip("::ffff:10.1.2.3");
        k.add_ip("not an ip");
        assert!(k.holds(Ip, "10.0.0.0/8"));
        assert!(k.holds(Ip, "::ffff:10.1.2.3"));
        assert!(!k.holds(Ip, "11.0.0.0/8"));
        assert_eq!(k.ips.len(), 2);
    }
}
