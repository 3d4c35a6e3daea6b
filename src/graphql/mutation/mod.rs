//! Mutation root parts.

pub mod ingest;
pub mod settings;
pub mod triage;
