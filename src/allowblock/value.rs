//! Entry values: each kind's syntax, checked and normalised before SQL sees them, so that one value is
//! always stored one way (duplicates are found, and matching compares values as stored).
//!
//! - `SENDER`: an address (`bob@contoso.com`), a domain (`contoso.com`, that domain only) or `*.domain`
//!   (the domain and every subdomain); lower-cased, compared as ingestion stores senders (no IDNA).
//! - `URL`: at most 250 characters. With a scheme (`https://evil.example/pay`) it matches URLs that
//!   equal it or continue it after a `/`, `?` or `&`; without one (`evil.example/pay`) the same under
//!   any scheme; a bare domain (`evil.example`) matches every URL on that host, `*.evil.example` every
//!   URL on that host and its subdomains. The host is lower-cased (IDNA, as URLs are on ingestion), the
//!   fragment dropped.
//! - `FILE_HASH`: a SHA-256 (64 hex digits), lower-cased.
//! - `IP`: an IPv4 or IPv6 address or CIDR range; host bits beyond the prefix are cleared
//!   (`10.1.2.3/8` is `10.0.0.0/8`) and a full-length prefix is written as the bare address.

use crate::domain::enums::AllowBlockKind;
use crate::domain::text::{self, excerpt};
use crate::error::{AppError, AppResult};
use std::net::IpAddr;

/// Longest URL entry, in characters, as given and once normalised (the real system's limit).
pub const MAX_URL_CHARS: usize = 250;
/// Longest value of any kind a client may send (the kinds' own limits are shorter).
const MAX_INPUT_CHARS: usize = 1024;
/// Longest e-mail address.
const MAX_ADDRESS_CHARS: usize = 254;
/// Longest domain name.
const MAX_DOMAIN_CHARS: usize = 253;

/// The normalised value of an entry of `kind`, or `BAD_USER_INPUT` naming the field and the rule.
pub fn normalise(kind: AllowBlockKind, raw: &str) -> AppResult<String> {
    let v = text::field("value", raw, MAX_INPUT_CHARS)?;
    let normalised = match kind {
        AllowBlockKind::Sender => sender(&v),
        AllowBlockKind::Url => url(&v),
        AllowBlockKind::FileHash => sha256(&v),
        AllowBlockKind::Ip => ip(&v),
    };
    normalised.map_err(AppError::BadInput)
}

fn sender(v: &str) -> Result<String, String> {
    let v = v.to_lowercase();
    let not_sender = || {
        format!(
            "value: {} is not a sender: give an e-mail address (bob@contoso.com), a domain (contoso.com) \
             or *.domain for a domain and its subdomains",
            excerpt(&v)
        )
    };
    if let Some((local, domain)) = v.rsplit_once('@') {
        let local_ok = !local.is_empty()
            && local.chars().count() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"@".contains(c));
        if !local_ok || v.chars().count() > MAX_ADDRESS_CHARS {
            return Err(not_sender());
        }
        return Ok(format!("{local}@{}", domain_name(domain).ok_or_else(not_sender)?));
    }
    if let Some(rest) = v.strip_prefix("*.") {
        return Ok(format!("*.{}", domain_name(rest).ok_or_else(not_sender)?));
    }
    domain_name(&v).ok_or_else(not_sender)
}

/// A domain as ingestion stores sender domains (lower-case), when it is one: dot-separated labels of
/// letters, digits, `-` and `_`, at least two of them, none empty or longer than 63 characters.
fn domain_name(d: &str) -> Option<String> {
    let labels: Vec<&str> = d.split('.').collect();
    let ok = d.chars().count() <= MAX_DOMAIN_CHARS
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && l.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
        && d.parse::<std::net::Ipv4Addr>().is_err();
    ok.then(|| d.to_lowercase())
}

fn url(v: &str) -> Result<String, String> {
    let chars = v.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(format!("value: a URL entry may be at most {MAX_URL_CHARS} characters ({chars} given)"));
    }
    let not_url = || {
        format!(
            "value: {} is not a URL: give a URL (https://evil.example/pay), a URL without its scheme \
             (evil.example/pay), a domain (evil.example) or *.domain",
            excerpt(v)
        )
    };
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(not_url());
    }
    if let Some(rest) = v.strip_prefix("*.") {
        let host = url_host(rest).ok_or_else(not_url)?;
        return bounded(format!("*.{host}"));
    }
    let has_scheme = v.contains("://");
    let mut u = if has_scheme { url::Url::parse(v) } else { url::Url::parse(&format!("http://{v}")) }
        .map_err(|_| not_url())?;
    if !matches!(u.scheme(), "http" | "https" | "ftp") {
        return Err(format!("value: {} is not an http, https or ftp URL", excerpt(v)));
    }
    let host_ok = match u.host() {
        Some(url::Host::Domain(d)) => d.contains('.') && !d.starts_with('.') && !d.ends_with('.'),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        None => false,
    };
    if !host_ok {
        return Err(not_url());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "value: {} holds a user name (an e-mail address is a SENDER entry, not a URL)",
            excerpt(v)
        ));
    }
    u.set_fragment(None);
    let full = u.to_string();
    if has_scheme {
        return bounded(full);
    }
    if u.path() == "/" && u.query().is_none() && u.port().is_none() {
        // A bare domain: every URL on that host.
        return bounded(u.host_str().unwrap_or_default().to_string());
    }
    bounded(full.strip_prefix("http://").unwrap_or(&full).to_string())
}

/// The host of `*.host`: a domain, lower-cased as URL hosts are (IDNA).
fn url_host(rest: &str) -> Option<String> {
    match url::Host::parse(rest).ok()? {
        url::Host::Domain(d) if d.contains('.') && !d.ends_with('.') && !d.contains('*') => Some(d),
        _ => None,
    }
}

fn bounded(normalised: String) -> Result<String, String> {
    let n = normalised.chars().count();
    if n > MAX_URL_CHARS {
        return Err(format!(
            "value: the URL is longer than {MAX_URL_CHARS} characters once normalised ({n}; characters \
             outside ASCII are percent-encoded)"
        ));
    }
    Ok(normalised)
}

fn sha256(v: &str) -> Result<String, String> {
    if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("value: {} is not a SHA-256 file hash (64 hex digits)", excerpt(v)))
    }
}

fn ip(v: &str) -> Result<String, String> {
    let not_ip = || format!("value: {} is not an IPv4 or IPv6 address or CIDR range", excerpt(v));
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| not_ip())?;
    let max = max_prefix(addr);
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(format!(
                    "value: {} is not a CIDR range: the prefix length of an {family} range is /1 to /{max}",
                    excerpt(v)
                ));
            }
        },
    };
    if len == 0 {
        return Err("value: a /0 range would match every address; name a narrower range".into());
    }
    let net = network(addr, len);
    Ok(if len == max { net.to_string() } else { format!("{net}/{len}") })
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// `addr` with every bit past the first `len` cleared.
fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Whether the stored IP entry `value` (an address or range, as [`normalise`] writes it) holds `addr`:
/// what `ip_range >>= addr` says in SQL.
pub fn ip_entry_contains(value: &str, addr: IpAddr) -> bool {
    let (net, len) = match value.split_once('/') {
        Some((a, l)) => match (a.parse::<IpAddr>(), l.parse::<u8>()) {
            (Ok(a), Ok(l)) => (a, l),
            _ => return false,
        },
        None => match value.parse::<IpAddr>() {
            Ok(a) => (a, max_prefix(a)),
            Err(_) => return false,
        },
    };
    net.is_ipv4() == addr.is_ipv4() && len <= max_prefix(addr) && network(addr, len) == net
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowBlockKind::*;

    fn ok(kind: AllowBlockKind, v: &str) -> String {
        normalise(kind, v).unwrap_or_else(|e| panic!("{v}: {}", e.public_message()))
    }

    fn err(kind: AllowBlockKind, v: &str) -> String {
        match normalise(kind, v) {
            Err(AppError::BadInput(m)) => m,
            other => panic!("{v}: expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn senders_are_addresses_domains_or_wildcards() {
        assert_eq!(ok(Sender, " Bob@Contoso.COM "), "bob@contoso.com");
        assert_eq!(ok(Sender, "Contoso.com"), "contoso.com");
        assert_eq!(ok(Sender, "*.Contoso.com"), "*.contoso.com");
        assert_eq!(ok(Sender, "bücher.example"), "bücher.example");
        for bad in [
            "contoso",
            "bob@",
            "@contoso.com",
            "a b@contoso.com",
            "*.com",
            "a*.contoso.com",
            "1.2.3.4",
            "bob@contoso..com",
            "*contoso.com",
            "bob@*.contoso.com",
        ] {
            assert!(err(Sender, bad).starts_with("value:"), "{bad}");
        }
        assert!(err(Sender, "   ").contains("must not be empty"));
        assert!(err(Sender, "a\0b.com").contains("NUL"));
    }

    #[test]
    fn urls_keep_their_scheme_or_match_any() {
        assert_eq!(ok(Url, "HTTPS://Evil.Example/Pay#frag"), "https://evil.example/Pay");
        assert_eq!(ok(Url, "https://evil.example"), "https://evil.example/");
        assert_eq!(ok(Url, "Evil.Example/pay?id=1"), "evil.example/pay?id=1");
        assert_eq!(ok(Url, "Evil.Example"), "evil.example");
        assert_eq!(ok(Url, "evil.example/"), "evil.example");
        assert_eq!(ok(Url, "*.Evil.Example"), "*.evil.example");
        assert_eq!(ok(Url, "evil.example:8080"), "evil.example:8080/");
        assert_eq!(ok(Url, "203.0.113.9/x"), "203.0.113.9/x");
        assert!(err(Url, &format!("https://evil.example/{}", "a".repeat(240))).contains("at most 250"));
        assert!(err(Url, &format!("evil.example/{}", "é".repeat(100))).contains("once normalised"));
        assert!(err(Url, "javascript:alert(1)").starts_with("value:"));
        assert!(err(Url, "mailto://x@y.z").contains("http, https or ftp"));
        assert!(err(Url, "bob@evil.example").contains("SENDER"));
        assert!(err(Url, "not a url").starts_with("value:"));
        assert!(err(Url, "evil").starts_with("value:"));
        assert!(err(Url, "*.evil.example/x").starts_with("value:"));
    }

    #[test]
    fn hashes_are_sha256() {
        let h = "AB".repeat(32);
        assert_eq!(ok(FileHash, &h), "ab".repeat(32));
        assert!(err(FileHash, "abc").contains("SHA-256"));
        assert!(err(FileHash, &"g".repeat(64)).contains("SHA-256"));
    }

    #[test]
    fn ips_are_addresses_or_ranges() {
        assert_eq!(ok(Ip, "203.0.113.7"), "203.0.113.7");
        assert_eq!(ok(Ip, "203.0.113.7/32"), "203.0.113.7");
        assert_eq!(ok(Ip, "10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(ok(Ip, "2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(ok(Ip, "2001:db8::1/32"), "2001:db8::/32");
        assert!(err(Ip, "10.0.0.0/33").contains("/33"));
        assert!(err(Ip, "2001:db8::/129").contains("IPv6"));
        assert!(err(Ip, "10.0.0.0/0").contains("/0"));
        assert!(err(Ip, "10.0.0.256").contains("not an IPv4"));
        assert!(err(Ip, "10.0.0.0/x").contains("prefix length"));
    }

    #[test]
    fn ranges_contain_what_sql_would() {
        let a = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert!(ip_entry_contains("10.0.0.0/8", a("10.200.3.4")));
        assert!(!ip_entry_contains("10.0.0.0/8", a("11.0.0.1")));
        assert!(ip_entry_contains("203.0.113.7", a("203.0.113.7")));
        assert!(!ip_entry_contains("203.0.113.7", a("203.0.113.8")));
        assert!(ip_entry_contains("2001:db8::/32", a("2001:db8:ffff::1")));
        assert!(!ip_entry_contains("2001:db8::/32", a("10.0.0.1")));
        assert!(!ip_entry_contains("10.0.0.0/8", a("::ffff:10.0.0.1")));
    }
}
