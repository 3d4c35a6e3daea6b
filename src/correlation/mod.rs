//! Correlation of alerts into incidents (DOMAIN.md §4): keys, candidates, join and merge, race-free.

pub mod engine;
pub mod keys;
