//! Client dates, checked before SQL or date arithmetic sees them. Accepted: 1970-01-01T00:00:00Z to
//! 9999-12-31T23:59:59.999999Z. Outside it, PostgreSQL's `timestamptz` refuses some values (before
//! 4713 BC), and correlation windows (`at - 72 h`) near chrono's own limits would overflow; no real alert,
//! e-mail or filter bound lies there.

use chrono::{DateTime, TimeZone, Utc};

/// The earliest date accepted.
pub fn earliest() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The latest date accepted.
pub fn latest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .and_then(|t| t.checked_add_signed(chrono::TimeDelta::microseconds(999_999)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether `at` lies in the accepted range.
pub fn in_range(at: DateTime<Utc>) -> bool {
    (earliest()..=latest()).contains(&at)
}

/// `at` if it lies in the accepted range, else a message naming `field`.
pub fn check(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if in_range(at) {
        Ok(at)
    } else {
        Err(format!(
            "{field} must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z ({} given)",
            at.to_rfc3339()
        ))
    }
}

/// [`check`] for an optional date.
pub fn check_opt(field: &str, at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, String> {
    at.map(|t| check(field, t)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_1970_to_9999() {
        assert!(check("d", earliest()).is_ok());
        assert!(check("d", latest()).is_ok());
        assert!(check("d", earliest() - chrono::Duration::microseconds(1)).is_err());
        assert!(check("d", DateTime::<Utc>::MIN_UTC).is_err_and(|m| m.starts_with("d must lie")));
        assert!(check("d", DateTime::<Utc>::MAX_UTC).is_err());
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999999+00:00");
    }
}
