//! The rules a mail-server configuration must follow before anything is stored: a host name or
//! address, ports in range, names without control characters, defaults for what was left out.

use crate::domain::enums::MailServerTls;
use crate::domain::text::storable;
use crate::error::{AppError, AppResult};

/// Longest user name, folder name or password, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// ManageSieve's registered port.
pub const SIEVE_PORT: i32 = 4190;

/// A configuration as an admin typed it.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    /// IMAP host.
    pub host: String,
    /// IMAP port (default 993 with TLS, else 143).
    pub port: Option<i32>,
    /// Transport security.
    pub tls: Option<MailServerTls>,
    /// The master login.
    pub master_user: String,
    /// Its password (`None`: keep the stored one).
    pub master_password: Option<String>,
    /// ManageSieve host (default: the IMAP host).
    pub sieve_host: Option<String>,
    /// ManageSieve port (default 4190).
    pub sieve_port: Option<i32>,
    /// Folder for `MOVE_TO_JUNK` (default `Junk`).
    pub junk: Option<String>,
    /// Folder for `MOVE_TO_DELETED_ITEMS` (default `Trash`).
    pub deleted_items: Option<String>,
    /// Folder for `SOFT_DELETE` (default `Recoverable Items`).
    pub recoverable_items: Option<String>,
}

/// A configuration that passed the rules, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// IMAP host.
    pub host: String,
    /// IMAP port.
    pub port: i32,
    /// Transport security.
    pub tls: MailServerTls,
    /// The master login.
    pub master_user: String,
    /// Its new password, if one was given.
    pub master_password: Option<String>,
    /// ManageSieve host.
    pub sieve_host: String,
    /// ManageSieve port.
    pub sieve_port: i32,
    /// Junk folder.
    pub junk: String,
    /// Deleted Items folder.
    pub deleted_items: String,
    /// Recoverable Items folder.
    pub recoverable_items: String,
}

fn parse_host(field: &str, v: &str) -> AppResult<String> {
    let v = v.trim();
    storable(field, v).map_err(AppError::BadInput)?;
    if v.is_empty() || v.len() > 253 {
        return Err(AppError::bad(format!("{field} must be a host name or address of 1 to 253 characters")));
    }
    match url::Host::parse(v) {
        Ok(url::Host::Domain(d))
            if d.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')) =>
        {
            Err(AppError::bad(format!(
                "{field} is not a host name or address: {}",
                crate::domain::text::excerpt(v)
            )))
        }
        Ok(h) => Ok(h.to_string()),
        Err(_) => Err(AppError::bad(format!(
            "{field} is not a host name or address: {}",
            crate::domain::text::excerpt(v)
        ))),
    }
}

fn port(field: &str, v: Option<i32>, default: i32) -> AppResult<i32> {
    match v {
        None => Ok(default),
        Some(p) if (1..=65535).contains(&p) => Ok(p),
        Some(p) => Err(AppError::bad(format!("{field} must be between 1 and 65535, got {p}"))),
    }
}

fn name(field: &str, v: &str, max: usize) -> AppResult<String> {
    let n = v.chars().count();
    if v.trim().is_empty() || n > max {
        return Err(AppError::bad(format!("{field} must hold 1 to {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(AppError::bad(format!(
            "{field} may not hold control characters (NUL, line breaks, tabs)"
        )));
    }
    Ok(v.to_string())
}

/// Checks `r` and fills in the defaults.
pub fn validate(r: &Requested) -> AppResult<Valid> {
    let tls = r.tls.unwrap_or(MailServerTls::Tls);
    let host = parse_host("host", &r.host)?;
    let sieve_host = match &r.sieve_host {
        Some(h) => parse_host("sieveHost", h)?,
        None => host.clone(),
    };
    let folder = |field: &str, v: &Option<String>, default: &str| match v {
        Some(v) => name(field, v.trim(), MAX_NAME_CHARS),
        None => Ok(default.to_string()),
    };
    Ok(Valid {
        port: port("port", r.port, if tls == MailServerTls::Tls { 993 } else { 143 })?,
        tls,
        master_user: name("masterUser", r.master_user.trim(), MAX_NAME_CHARS)?,
        master_password: r
            .master_password
            .as_deref()
            .map(|p| name("masterPassword", p, MAX_PASSWORD_CHARS))
            .transpose()?,
        sieve_port: port("sievePort", r.sieve_port, SIEVE_PORT)?,
        sieve_host,
        host,
        junk: folder("folders.junk", &r.junk, "Junk")?,
        deleted_items: folder("folders.deletedItems", &r.deleted_items, "Trash")?,
        recoverable_items: folder("folders.recoverableItems", &r.recoverable_items, "Recoverable Items")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Requested {
        Requested { host: "imap.contoso.com".into(), master_user: "parapet".into(), ..Default::default() }
    }

    #[test]
    fn defaults_fill_what_was_left_out() {
        let v = validate(&req()).expect("valid");
        assert_eq!((v.port, v.tls, v.sieve_port), (993, MailServerTls::Tls, 4190));
        assert_eq!(v.sieve_host, "imap.contoso.com");
        assert_eq!((v.junk.as_str(), v.deleted_items.as_str()), ("Junk", "Trash"));
        let plain = validate(&Requested { tls: Some(MailServerTls::None), ..req() }).expect("valid");
        assert_eq!(plain.port, 143);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let bad = |r: Requested| match validate(&r) {
            Err(AppError::BadInput(m)) => m,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        };
        assert!(bad(Requested { host: "imap contoso".into(), ..req() }).starts_with("host"));
        assert!(bad(Requested { host: "".into(), ..req() }).starts_with("host"));
        assert!(bad(Requested { port: Some(70000), ..req() }).starts_with("port"));
        assert!(bad(Requested { master_user: "a\r\nb".into(), ..req() }).starts_with("masterUser"));
        assert!(bad(Requested { master_password: Some("x\0".into()), ..req() }).starts_with("masterPassword"));
        assert!(bad(Requested { junk: Some("".into()), ..req() }).starts_with("folders.junk"));
        assert!(validate(&Requested { host: "127.0.0.1".into(), ..req() }).is_ok());
        assert!(validate(&Requested { host: "[::1]".into(), ..req() }).is_ok());
    }
}
