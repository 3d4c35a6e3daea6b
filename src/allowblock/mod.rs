//! The tenant allow/block list (DOMAIN.md "Allow/block entry", reference §1.8): admins keep entries of
//! four kinds (senders, URLs, file hashes, IPs) that allow or block matching mail; entries expire; values
//! never change after creation; every write lands in the tenant audit log in its own transaction.
//!
//! - [`value`]: each kind's syntax and normal form; [`expiry`]: when entries stop applying;
//! - [`entries`]: create, update, delete and the reads.

pub mod entries;
pub mod expiry;
pub mod value;

pub use entries::{EntryPatch, NewEntry};
pub use expiry::ExpiryRequest;
