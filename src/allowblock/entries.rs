//! Writing and reading the list: create, update (notes and expiry; never the value), delete, and the
//! reads. Each write runs in one transaction that also writes its audit-log entry, takes the tenant's
//! list lock (so the duplicate and size checks hold until commit), and is retried on a collision.

use super::expiry::{self, ExpiryRequest};
use super::value;
use crate::auth::{Caller, Role};
use crate::db::models::{AllowBlockEntry, AuditEntry};
use crate::db::queries::allow_block::{self as q, EntryChange, EntryFilter};
use crate::db::queries::audit;
use crate::db::queries::queue::TimeKeyset;
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::enums::{AllowBlockAction, AllowBlockKind, AuditAction, AuditTargetKind};
use crate::domain::locks::lock_id;
use crate::domain::text::{self, excerpt};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

/// Longest note, in characters.
pub const MAX_NOTES_CHARS: usize = 1000;
/// Most BLOCK entries a tenant may hold per kind (the real system's Plan 2 limit).
pub const MAX_BLOCKS_PER_KIND: i64 = 10_000;
/// Most ALLOW entries a tenant may hold per kind.
pub const MAX_ALLOWS_PER_KIND: i64 = 5_000;

/// A new entry, as a person typed it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its list.
    pub kind: AllowBlockKind,
    /// The value (normalised before it is stored).
    pub value: String,
    /// Allow or block.
    pub action: AllowBlockAction,
    /// Notes (at most 1000 characters; blank is none).
    pub notes: Option<String>,
    /// Expiry asked for.
    pub expiry: ExpiryRequest,
}

/// A change to an entry; `None` leaves a field as it is; `notes: Some(None)` clears the notes.
#[derive(Debug, Clone, Default)]
pub struct EntryPatch {
    /// New notes, or `Some(None)` to clear them.
    pub notes: Option<Option<String>>,
    /// New expiry (a date, never, or `neverExpire: false` for the default again).
    pub expiry: ExpiryRequest,
}

/// The most entries of `action` a tenant may hold per kind.
pub fn limit_of(action: AllowBlockAction) -> i64 {
    match action {
        AllowBlockAction::Block => MAX_BLOCKS_PER_KIND,
        AllowBlockAction::Allow => MAX_ALLOWS_PER_KIND,
    }
}

fn notes(v: Option<&str>) -> AppResult<Option<String>> {
    text::optional("notes", v, MAX_NOTES_CHARS).map_err(AppError::BadInput)
}

fn not_found() -> AppError {
    AppError::not_found("allow/block entry")
}

fn list_lock(tenant_id: &str) -> i64 {
    lock_id(tenant_id, "ALLOW_BLOCK_LIST", "")
}

/// Adds an entry (admin): `BAD_USER_INPUT` for a bad value, note or expiry; `CONFLICT` when the list
/// already holds the value (whatever its action) or is full for that kind and action.
pub async fn create(pool: &Pool, caller: &Caller, input: &NewEntry) -> AppResult<AllowBlockEntry> {
    caller.require(Role::Admin)?;
    let value = value::normalise(input.kind, &input.value)?;
    let notes = notes(input.notes.as_deref())?;
    // Checked once more inside the transaction (against its own clock), here to fail before any work.
    expiry::on_create(input.action, input.expiry, Utc::now())?;
    retry_transient(pool, "createAllowBlockEntry", async |conn| {
        conn.transaction(async |c| create_tx(c, caller, input, &value, notes.clone()).await).await
    })
    .await
}

/// [`create`] inside the caller's transaction (a submission that creates its entry commits both or
/// neither); the caller retries collisions.
pub async fn create_in(c: &mut Conn, caller: &Caller, input: &NewEntry) -> AppResult<AllowBlockEntry> {
    caller.require(Role::Admin)?;
    let value = value::normalise(input.kind, &input.value)?;
    let notes = notes(input.notes.as_deref())?;
    create_tx(c, caller, input, &value, notes).await
}

async fn create_tx(
    c: &mut Conn,
    caller: &Caller,
    input: &NewEntry,
    value: &str,
    notes: Option<String>,
) -> AppResult<AllowBlockEntry> {
    let tenant = caller.tenant_id.as_str();
    let now = Utc::now();
    let expiry = expiry::on_create(input.action, input.expiry, now)?;
    q::lock_list(c, list_lock(tenant)).await?;
    if let Some(e) = q::find_value(c, tenant, input.kind, value).await? {
        return Err(AppError::Conflict(format!(
            "value: {} {} is already on the list as {} {} entry (id {}{}); update or delete that entry \
             instead",
            input.kind,
            excerpt(value),
            if e.action == AllowBlockAction::Allow { "an" } else { "a" },
            e.action,
            e.id,
            if e.expired_at(now) { ", expired" } else { "" },
        )));
    }
    let limit = limit_of(input.action);
    let held = q::count_list(c, tenant, input.kind, input.action).await?;
    if held >= limit {
        return Err(AppError::Conflict(format!(
            "the list is full: the tenant holds {held} {} entries of kind {} (at most {limit}); delete some \
             before adding more",
            input.action, input.kind
        )));
    }
    let row = AllowBlockEntry {
        tenant_id: tenant.to_string(),
        id: Uuid::now_v7(),
        kind: input.kind,
        value: value.to_string(),
        action: input.action,
        notes,
        expires_at: expiry.expires_at,
        never_expire: expiry.never_expire,
        remove_after_days: expiry.remove_after_days,
        last_used_at: None,
        created_by: caller.sub.clone(),
        created_at: now,
        updated_at: now,
        updated_by: Some(caller.sub.clone()),
    };
    let row = q::insert(c, &row).await?;
    record(c, caller, &row, AuditAction::Create, None, Some(snapshot(&row)), now).await?;
    tracing::info!(tenant, actor = %caller.sub, id = %row.id, kind = %row.kind, action = %row.action,
                   "allow/block entry created");
    Ok(row)
}

/// Changes an entry's notes or expiry (admin); its value, kind and action never change. Another
/// tenant's id, or none, is `NOT_FOUND`.
pub async fn update(
    pool: &Pool,
    caller: &Caller,
    id: Uuid,
    patch: &EntryPatch,
) -> AppResult<AllowBlockEntry> {
    caller.require(Role::Admin)?;
    let new_notes = patch.notes.as_ref().map(|n| notes(n.as_deref())).transpose()?;
    retry_transient(pool, "updateAllowBlockEntry", async |conn| {
        conn.transaction(async |c| {
            let tenant = caller.tenant_id.as_str();
            let now = Utc::now();
            let before = q::lock(c, tenant, id).await?.ok_or_else(not_found)?;
            let expiry = expiry::on_update(before.action, patch.expiry, now)?;
            let change = EntryChange {
                notes: new_notes.clone().unwrap_or_else(|| before.notes.clone()),
                expires_at: expiry.map_or(before.expires_at, |e| e.expires_at),
                never_expire: expiry.map_or(before.never_expire, |e| e.never_expire),
                remove_after_days: expiry.map_or(before.remove_after_days, |e| e.remove_after_days),
                updated_at: now,
                updated_by: Some(caller.sub.clone()),
            };
            let after = q::update(c, tenant, id, &change).await?;
            record(
                c,
                caller,
                &after,
                AuditAction::Update,
                Some(snapshot(&before)),
                Some(snapshot(&after)),
                now,
            )
            .await?;
            tracing::info!(tenant, actor = %caller.sub, %id, "allow/block entry updated");
            Ok(after)
        })
        .await
    })
    .await
}

/// Deletes an entry (admin) and returns it as it was. Another tenant's id, or none, is `NOT_FOUND`.
pub async fn delete(pool: &Pool, caller: &Caller, id: Uuid) -> AppResult<AllowBlockEntry> {
    caller.require(Role::Admin)?;
    retry_transient(pool, "deleteAllowBlockEntry", async |conn| {
        conn.transaction(async |c| {
            let tenant = caller.tenant_id.as_str();
            let now = Utc::now();
            let before = q::lock(c, tenant, id).await?.ok_or_else(not_found)?;
            q::delete(c, tenant, id).await?;
            record(c, caller, &before, AuditAction::Delete, Some(snapshot(&before)), None, now).await?;
            tracing::info!(tenant, actor = %caller.sub, %id, "allow/block entry deleted");
            Ok(before)
        })
        .await
    })
    .await
}

/// One entry of the tenant, or `None` (another tenant's id included).
pub async fn get(conn: &mut Conn, tenant_id: &str, id: Uuid) -> AppResult<Option<AllowBlockEntry>> {
    Ok(q::find(conn, tenant_id, id).await?)
}

/// Checks a list filter's text (`valueContains`: trimmed, at most 1024 characters, no NUL; blank is none).
pub fn filter(
    kind: Option<AllowBlockKind>,
    action: Option<AllowBlockAction>,
    value_contains: Option<&str>,
    expired: Option<bool>,
    now: DateTime<Utc>,
) -> AppResult<EntryFilter> {
    let value_contains = text::optional("valueContains", value_contains, 1024).map_err(AppError::BadInput)?;
    Ok(EntryFilter { kind, action, value_contains, expired, now })
}

/// A page of the tenant's entries matching `f`, newest first.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    f: &EntryFilter,
    after: Option<TimeKeyset>,
    limit: i64,
) -> AppResult<Vec<AllowBlockEntry>> {
    Ok(q::page(conn, tenant_id, f, after, limit).await?)
}

/// How many of the tenant's entries match `f`.
pub async fn count(conn: &mut Conn, tenant_id: &str, f: &EntryFilter) -> AppResult<i64> {
    Ok(q::count_matching(conn, tenant_id, f).await?)
}

/// An entry as the audit log shows it.
pub fn snapshot(e: &AllowBlockEntry) -> serde_json::Value {
    json!({
        "kind": e.kind,
        "value": e.value,
        "action": e.action,
        "notes": e.notes,
        "expiresAt": e.expires_at,
        "neverExpire": e.never_expire,
        "removeAfterDays": e.remove_after_days,
        "lastUsedAt": e.last_used_at,
    })
}

async fn record(
    c: &mut Conn,
    caller: &Caller,
    e: &AllowBlockEntry,
    action: AuditAction,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let row = AuditEntry {
        tenant_id: caller.tenant_id.clone(),
        id: Uuid::now_v7(),
        actor: caller.sub.clone(),
        actor_name: Some(caller.name.clone()),
        target_kind: AuditTargetKind::AllowBlockEntry,
        target_id: Some(e.id.to_string()),
        action,
        before,
        after,
        at,
    };
    Ok(audit::insert(c, &row).await?)
}
