//! Mutation root parts.

pub mod incidents;
pub mod ingest;
pub mod mail;
pub mod settings;
pub mod triage;
