//! Query root parts.

pub mod actions;
pub mod allowblock;
pub mod audit;
pub mod mail;
pub mod mailserver;
pub mod me;
pub mod queue;
pub mod settings;
pub mod submissions;
