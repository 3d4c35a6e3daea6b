//! Event cursors: opaque to clients, a position in one tenant's event stream.

use crate::error::AppError;

const PREFIX: &str = "ev1:";

/// Encodes a position.
pub fn encode(seq: i64) -> String {
    hex::encode(format!("{PREFIX}{seq}"))
}

/// Decodes a cursor a client sent back; a malformed one is `BAD_USER_INPUT`.
pub fn decode(cursor: &str) -> Result<i64, AppError> {
    let bad = || AppError::bad("the `after` cursor is not one this server issued");
    let bytes = hex::decode(cursor.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(PREFIX).and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_garbage() {
        assert_eq!(super::decode(&super::encode(42)).ok(), Some(42));
        assert!(super::decode("zz").is_err());
        assert!(super::decode(&hex::encode("ev1:-3")).is_err());
    }
}
