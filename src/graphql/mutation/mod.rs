//! Mutation root parts.

pub mod actions;
pub mod allowblock;
pub mod incidents;
pub mod ingest;
pub mod mail;
pub mod mailserver;
pub mod settings;
pub mod submissions;
pub mod triage;
