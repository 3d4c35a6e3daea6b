//! Correlation keys: what an alert's evidence says about it that another alert may share, normalised so
//! equal things compare equal. Validation makes them, correlation matches on them, events and the
//! activity log name them.

use super::enums::KeyKind;
use serde::{Deserialize, Serialize};

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
