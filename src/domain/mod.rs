//! Types of the model shared by every layer.

pub mod enums;
pub mod settings;
