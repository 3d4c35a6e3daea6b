//! Types of the model shared by every layer, and the checks every layer applies to client input.

pub mod enums;
pub mod settings;
pub mod text;
pub mod time;
