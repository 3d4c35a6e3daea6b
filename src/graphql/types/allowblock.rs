//! The `AllowBlockEntry` type, and the inputs that create, change and filter entries.

use crate::allowblock::{EntryPatch, ExpiryRequest, NewEntry};
use crate::db::models;
use crate::domain::enums::{AllowBlockAction, AllowBlockKind};
use async_graphql::{InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};

/// An entry of the tenant allow/block list.
pub struct AllowBlockEntry {
    row: models::AllowBlockEntry,
    /// The instant `expired` is judged at (the request's).
    now: DateTime<Utc>,
}

impl AllowBlockEntry {
    /// The entry as seen at `now`.
    pub fn new(row: models::AllowBlockEntry, now: DateTime<Utc>) -> Self {
        Self { row, now }
    }
}

#[Object]
impl AllowBlockEntry {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The list: `SENDER`, `URL`, `FILE_HASH` or `IP`.
    async fn kind(&self) -> AllowBlockKind {
        self.row.kind
    }
    /// The value, normalised (lower-case addresses, domains and hashes; URL hosts lower-cased; IP
    /// ranges with their host bits cleared). It never changes.
    async fn value(&self) -> &str {
        &self.row.value
    }
    /// `ALLOW` or `BLOCK`. Blocks win over allows.
    async fn action(&self) -> AllowBlockAction {
        self.row.action
    }
    /// Notes.
    async fn notes(&self) -> Option<&str> {
        self.row.notes.as_deref()
    }
    /// When the entry stops applying (null when it never expires). For an ALLOW without an explicit
    /// date: 45 days after it was last used (counted from its creation, or from the last reset of its
    /// expiry, until it is first used), so it moves as the entry is used.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.row.expires_at
    }
    /// The entry never expires (BLOCK entries only).
    async fn never_expire(&self) -> bool {
        self.row.never_expire
    }
    /// For an ALLOW without an explicit date: the days after its last use it expires (45); else null.
    async fn remove_after_days(&self) -> Option<i32> {
        self.row.remove_after_days
    }
    /// Whether the entry has expired: it no longer applies to mail. Expired entries stay listed until
    /// deleted (or given a new expiry with `updateAllowBlockEntry`).
    async fn expired(&self) -> bool {
        self.row.expired_at(self.now)
    }
    /// When filtering last used the entry on a message.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.row.last_used_at
    }
    /// Who created it (a UPN).
    async fn created_by(&self) -> &str {
        &self.row.created_by
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When it was last changed by a person.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
    /// Who last changed it (a UPN).
    async fn updated_by(&self) -> Option<&str> {
        self.row.updated_by.as_deref()
    }
}

/// A new entry of the allow/block list.
#[derive(InputObject, Debug, Clone)]
pub struct CreateAllowBlockEntryInput {
    /// The list.
    pub kind: AllowBlockKind,
    /// `SENDER`: an address, a domain, or `*.domain` (the domain and its subdomains). `URL`: at most 250
    /// characters; a URL (a prefix of the URLs it matches, at a `/`, `?` or `&`), a URL without its
    /// scheme (any scheme), a domain (every URL on that host) or `*.domain`. `FILE_HASH`: a SHA-256
    /// (64 hex digits). `IP`: an IPv4 or IPv6 address or CIDR range.
    pub value: String,
    /// `ALLOW` or `BLOCK`.
    pub action: AllowBlockAction,
    /// At most 1000 characters.
    pub notes: Option<String>,
    /// A date in the future: at most 90 days ahead for a BLOCK, 30 for an ALLOW. Without it a BLOCK
    /// expires after 30 days, an ALLOW 45 days after it was last used.
    pub expires_at: Option<DateTime<Utc>>,
    /// `true`: the entry never expires (BLOCK only; not with `expiresAt`).
    pub never_expire: Option<bool>,
}

impl From<CreateAllowBlockEntryInput> for NewEntry {
    fn from(i: CreateAllowBlockEntryInput) -> Self {
        NewEntry {
            kind: i.kind,
            value: i.value,
            action: i.action,
            notes: i.notes,
            expiry: ExpiryRequest { expires_at: i.expires_at, never_expire: i.never_expire },
        }
    }
}

/// A change to an entry: its notes and expiry (its value, kind and action never change). Omitted fields
/// stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct UpdateAllowBlockEntryInput {
    /// New notes (at most 1000 characters); null or blank clears them.
    pub notes: MaybeUndefined<String>,
    /// A new date in the future (at most 90 days ahead for a BLOCK, 30 for an ALLOW).
    pub expires_at: Option<DateTime<Utc>>,
    /// `true`: never expires (BLOCK only); `false` without `expiresAt`: back to the default, counted
    /// from now (a BLOCK 30 days, an ALLOW 45 days after its last use).
    pub never_expire: Option<bool>,
}

impl From<UpdateAllowBlockEntryInput> for EntryPatch {
    fn from(i: UpdateAllowBlockEntryInput) -> Self {
        EntryPatch {
            notes: i.notes.into(),
            expiry: ExpiryRequest { expires_at: i.expires_at, never_expire: i.never_expire },
        }
    }
}

/// Which entries `allowBlockEntries` lists; all given conditions must hold.
#[derive(InputObject, Debug, Clone, Default)]
pub struct AllowBlockEntryFilterInput {
    /// Only this list.
    pub kind: Option<AllowBlockKind>,
    /// Only allows or only blocks.
    pub action: Option<AllowBlockAction>,
    /// Values containing this text (case-insensitive).
    pub value_contains: Option<String>,
    /// `true`: only expired entries; `false`: only those still applying.
    pub expired: Option<bool>,
}
