//! The neutral low home every layer may import: the model's types (enums, correlation keys, event
//! types, the validated alert, activity kinds), the ids several layers compute alike (lock ids), the data dir, and the
//! checks every layer applies to client input. It imports nothing of the crate but `error`.

pub mod actions;
pub mod activity;
pub mod alert;
pub mod data_dir;
pub mod email;
pub mod enums;
pub mod events;
pub mod fingerprint;
pub mod keys;
pub mod locks;
pub mod secret;
pub mod settings;
pub mod sieve;
pub mod text;
pub mod time;
pub mod values;
