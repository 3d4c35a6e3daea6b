//! Query root parts.

pub mod me;
pub mod queue;
pub mod settings;
