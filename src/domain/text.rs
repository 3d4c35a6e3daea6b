//! Client text, checked before SQL sees it: the one validator every layer uses for strings a client
//! sends (alert fields, evidence, comments, tags, names, filters, settings).
//!
//! Rules: surrounding whitespace is trimmed; the value is at most `max` characters; and it holds no NUL
//! (`\u0000`), the one character neither PostgreSQL `text` nor `jsonb` can store (a NUL reaching SQL
//! fails the whole statement, and with it every other item of a batch). Other control characters,
//! right-to-left marks and emoji are kept: they are storable, and phishing data legitimately carries
//! them. Messages name the field and never echo more than a short excerpt of the value.

use crate::error::{AppError, AppResult};

/// Most characters of a value that an error message quotes.
const EXCERPT_CHARS: usize = 64;

/// Longest comment or resolving comment, in characters (the portal's limit).
pub const MAX_COMMENT_LEN: usize = 30_000;
/// Longest display name or owner, in characters.
pub const MAX_NAME_LEN: usize = 256;

/// A value that must not be blank: trimmed, checked, or a message naming `field`.
pub fn required(field: &str, value: &str, max: usize) -> Result<String, String> {
    let v = bounded(field, value, max)?;
    if v.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    Ok(v)
}

/// [`required`] for a field of an operation that stores nothing when one field is bad: the message is
/// a `BAD_USER_INPUT` error.
pub fn field(field: &str, value: &str, max: usize) -> AppResult<String> {
    required(field, value, max).map_err(AppError::BadInput)
}

/// A comment an analyst writes (on an incident or alert, or with a manual operation): trimmed, not
/// blank, at most `MAX_COMMENT_LEN` characters.
pub fn comment(body: &str) -> AppResult<String> {
    field("comment", body, MAX_COMMENT_LEN)
}

/// A value that may be omitted: `None` or blank gives `None`; else as [`required`].
pub fn optional(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) => bounded(field, v, max).map(|v| (!v.is_empty()).then_some(v)),
    }
}

/// A value that may be blank (filters match on it as given): trimmed and checked.
pub fn bounded(field: &str, value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    storable(field, v)?;
    let len = v.chars().count();
    if len > max {
        return Err(format!("{field} is longer than {max} characters ({len} given)"));
    }
    Ok(v.to_string())
}

/// Refuses characters PostgreSQL cannot store in `text` or `jsonb` (NUL).
pub fn storable(field: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{field} contains a NUL character (\\u0000), which cannot be stored; remove it"));
    }
    Ok(())
}

/// A short, escaped quotation of `value` for an error message (a client may send megabytes).
pub fn excerpt(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}… ({} characters)", value.chars().count())
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_bounds_and_refuses_nul() {
        assert_eq!(required("f", "  x ", 3).as_deref(), Ok("x"));
        assert!(required("f", "   ", 3).is_err_and(|m| m.contains("must not be empty")));
        assert!(required("f", "abcd", 3).is_err_and(|m| m.contains("longer than 3")));
        assert!(required("f", "a\0b", 3).is_err_and(|m| m.contains("NUL") && !m.contains('\0')));
        assert!(required("f", "\0", 3).is_err());
        assert_eq!(optional("f", Some("  "), 3), Ok(None));
        assert_eq!(optional("f", None, 3), Ok(None));
        assert!(optional("f", Some("\0"), 3).is_err());
        assert_eq!(bounded("f", " ", 3).as_deref(), Ok(""));
        // Characters, not bytes; storable controls, marks and emoji are kept.
        assert_eq!(required("f", "😀\u{202e}\u{1}", 3).as_deref(), Ok("😀\u{202e}\u{1}"));
    }

    #[test]
    fn comments_are_trimmed_bounded_and_storable() {
        assert!(comment("   ").is_err());
        assert!(comment(&"x".repeat(MAX_COMMENT_LEN + 1)).is_err());
        assert_eq!(comment(" why ").ok().as_deref(), Some("why"));
        assert!(comment("why\0").is_err());
        assert!(matches!(field("f", "", 3), Err(AppError::BadInput(_))));
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("a\0"), "\"a\\0\"");
        let long = excerpt(&"x".repeat(100_000));
        assert!(long.len() < 100 && long.ends_with("(100000 characters)"), "{long}");
    }
}
