//! Mutation root parts.

pub mod allowblock;
pub mod incidents;
pub mod ingest;
pub mod settings;
pub mod triage;
