//! A tenant's own mail server: its configuration (admins only), with the master password sealed by the
//! server's secret key and never read back, and every change in the tenant audit log; and what is done
//! on it: IMAP mailbox sessions (`imap`), Sieve scripts over ManageSieve (`managesieve`, `sieve_session`),
//! inbox rules judged (`rules`), and `testMailServer` (`check`).

pub mod check;
pub mod imap;
pub mod managesieve;
pub mod rules;
pub mod server;
pub mod settings;
pub mod sieve_session;
pub mod transport;

use crate::auth::{Caller, Role};
use crate::db::models::{AuditEntry, MailServer};
use crate::db::queries::{actions, audit, mail_servers as q, tenants};
use crate::db::{Conn, Pool};
use crate::domain::enums::{AuditAction, AuditTargetKind};
use crate::domain::secret::SecretKey;
use crate::error::{AppError, AppResult};
use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::json;
pub use settings::Requested;

/// The configuration as the audit log and `mailServer` show it: everything but the password.
pub fn snapshot(m: &MailServer) -> serde_json::Value {
    json!({
        "host": m.host, "port": m.port, "tls": m.tls, "masterUser": m.master_user,
        "sieveHost": m.sieve_host, "sievePort": m.sieve_port,
        "folders": { "junk": m.junk_folder, "deletedItems": m.deleted_items_folder,
                     "recoverableItems": m.recoverable_items_folder },
    })
}

/// The audit-log row of a change to the caller's tenant's mail server.
fn audit_entry(
    caller: &Caller,
    action: AuditAction,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    at: chrono::DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        tenant_id: caller.tenant_id.clone(),
        id: uuid::Uuid::now_v7(),
        actor: caller.sub.clone(),
        actor_name: Some(caller.name.clone()),
        target_kind: AuditTargetKind::MailServer,
        target_id: None,
        action,
        before,
        after,
        at,
    }
}

/// The caller's tenant's mail server (admins only).
pub async fn get(pool: &Pool, caller: &Caller) -> AppResult<Option<MailServer>> {
    caller.require(Role::Admin)?;
    let mut conn = pool.get().await?;
    Ok(q::find(&mut conn, &caller.tenant_id).await?)
}

/// Configures (or reconfigures) the caller's tenant's mail server. The password is required the first
/// time; later, leaving it out keeps the stored one. Needs the server's secret key.
pub async fn configure(
    pool: &Pool,
    key: Option<&SecretKey>,
    caller: &Caller,
    r: &Requested,
) -> AppResult<MailServer> {
    caller.require(Role::Admin)?;
    let v = settings::validate(r)?;
    let tid = caller.tenant_id.as_str();
    let sealed =
        match (&v.master_password, key) {
            (Some(_), None) => return Err(AppError::Unavailable(
                "this server has no PARAPET_SECRET_KEY to seal the password with: an operator must set one"
                    .into(),
            )),
            (Some(p), Some(k)) => Some(k.seal(tid, p)?),
            (None, _) => None,
        };
    let mut conn = pool.get().await?;
    let saved = conn
        .transaction::<_, AppError, _>(async |c| {
            tenants::ensure(c, tid).await?;
            let before = q::lock(c, tid).await?;
            let now = Utc::now();
            let password_sealed = match (sealed.clone(), &before) {
                (Some(s), _) => s,
                (None, Some(b)) => b.password_sealed.clone(),
                (None, None) => {
                    return Err(AppError::bad(
                        "masterPassword is required the first time a mail server is configured",
                    ))
                }
            };
            let row = MailServer {
                tenant_id: tid.to_string(),
                host: v.host.clone(),
                port: v.port,
                tls: v.tls,
                master_user: v.master_user.clone(),
                password_sealed,
                sieve_host: Some(v.sieve_host.clone()),
                sieve_port: Some(v.sieve_port),
                junk_folder: v.junk.clone(),
                deleted_items_folder: v.deleted_items.clone(),
                recoverable_items_folder: v.recoverable_items.clone(),
                updated_by: caller.sub.clone(),
                created_at: before.as_ref().map_or(now, |b| b.created_at),
                updated_at: now,
            };
            q::upsert(c, &row).await?;
            let mut after = snapshot(&row);
            after["passwordChanged"] = json!(sealed.is_some());
            let action = if before.is_some() { AuditAction::Update } else { AuditAction::Create };
            let entry = audit_entry(caller, action, before.as_ref().map(snapshot), Some(after), now);
            audit::insert(c, &entry).await?;
            Ok(row)
        })
        .await?;
    tracing::info!(tenant = tid, actor = %caller.sub, host = %saved.host, "mail server configured");
    Ok(saved)
}

/// Removes the caller's tenant's mail server; whether there was one.
pub async fn remove(pool: &Pool, caller: &Caller) -> AppResult<bool> {
    caller.require(Role::Admin)?;
    let tid = caller.tenant_id.as_str();
    let mut conn = pool.get().await?;
    conn.transaction::<_, AppError, _>(async |c| {
        let Some(before) = q::lock(c, tid).await? else { return Ok(false) };
        // An action running there would go on in the built-in store alone, moving nothing real.
        if actions::any_active(c, tid).await? {
            return Err(AppError::Conflict(
                "actions are approved or running on this mail server: wait for them to end before removing it"
                    .into(),
            ));
        }
        q::delete(c, tid).await?;
        audit::insert(
            c,
            &audit_entry(caller, AuditAction::Delete, Some(snapshot(&before)), None, Utc::now()),
        )
        .await?;
        Ok(true)
    })
    .await
}

/// Whether any tenant has a mail server configured (a production server refuses to start without a
/// secret key then: it could not open the passwords).
pub async fn any_configured(conn: &mut Conn) -> AppResult<bool> {
    Ok(q::any(conn).await?)
}
