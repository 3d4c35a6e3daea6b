//! Query root parts.

pub mod mail;
pub mod me;
pub mod queue;
pub mod settings;
