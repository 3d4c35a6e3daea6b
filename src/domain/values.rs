//! Checks of the values several inputs share (e-mail addresses, URLs, SHA-256 hashes, IP addresses):
//! alert evidence, mail-flow records and hunting filters normalise them alike, so equal values match.

use super::text::excerpt;

const MAX_URL: usize = 2048;

/// A lower-cased e-mail address, or an error naming the field.
pub fn address(field: &str, v: Option<&str>) -> Result<String, String> {
    let v = v.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(format!("{field} is required"));
    }
    let v = v.to_lowercase();
    let ok = v.len() <= 254
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
        && match v.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !local.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if ok {
        Ok(v)
    } else {
        Err(format!("{field}: {} is not an e-mail address", excerpt(&v)))
    }
}

/// [`address`] for a field that may be blank.
pub fn optional_address(field: &str, v: Option<&str>) -> Result<Option<String>, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => address(field, Some(s)).map(Some),
    }
}

/// A normalised URL (lower-case scheme and host, no fragment), or an error naming the field.
pub fn normalise_url(field: &str, v: Option<&str>) -> Result<String, String> {
    let v = v.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(format!("{field} is required"));
    }
    // The URL parser would percent-encode a NUL; refuse it as every other client string is refused.
    super::text::storable(field, v)?;
    if v.len() > MAX_URL {
        return Err(format!("{field} is longer than {MAX_URL} characters"));
    }
    let mut u = url::Url::parse(v).map_err(|_| format!("{field}: {} is not a URL", excerpt(v)))?;
    if !matches!(u.scheme(), "http" | "https" | "ftp") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{field}: {} is not an http, https or ftp URL", excerpt(v)));
    }
    u.set_fragment(None);
    // Normalising percent-encodes non-ASCII characters (up to 12 bytes each): bound the stored form too,
    // which becomes a correlation key and an index entry.
    let normalised = u.to_string();
    if normalised.len() > MAX_URL {
        return Err(format!(
            "{field} is longer than {MAX_URL} bytes once normalised ({} given)",
            normalised.len()
        ));
    }
    Ok(normalised)
}

/// A lower-case SHA-256, or an error naming the field.
pub fn sha256(field: &str, v: Option<&str>) -> Result<String, String> {
    let v = v.map(str::trim).unwrap_or("");
    if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(v.to_lowercase())
    } else if v.is_empty() {
        Err(format!("{field} is required"))
    } else {
        Err(format!("{field}: {} is not a SHA-256 (64 hex digits)", excerpt(v)))
    }
}

/// An IPv4 or IPv6 address in its canonical form, or an error naming the field.
pub fn ip_address(field: &str, v: Option<&str>) -> Result<String, String> {
    let v = v.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(format!("{field} is required"));
    }
    v.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{field}: {} is not an IP address", excerpt(v)))
}
