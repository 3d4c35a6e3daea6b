//! The tenant allow/block list (DOMAIN.md "Allow/block entry", reference §1.8): admins keep entries of
//! four kinds (senders, URLs, file hashes, IPs) that allow or block matching mail; entries expire; values
//! never change after creation; every write lands in the tenant audit log in its own transaction.
//!
//! - [`value`]: each kind's syntax and normal form; [`expiry`]: when entries stop applying;
//! - [`entries`]: create, update, delete and the reads;
//! - the matcher ingestion calls: [`active_matches`] (one statement per batch, over the batch's values
//!   as [`keys`] derives them), [`verdict_for`] (pure, per copy: blocks win; allows never clear malware
//!   or high-confidence phish), and [`touch`] (moves `lastUsedAt` of the entries used).

pub mod entries;
pub mod expiry;
pub mod keys;
pub mod matcher;
pub mod value;
pub mod verdict;

pub use entries::{EntryPatch, NewEntry};
pub use expiry::ExpiryRequest;
pub use matcher::{active_matches, touch, ActiveEntry, Probe};
pub use verdict::{verdict_for, CopyFacts, Decision, Override};
