//! A mailbox's inbox rules as `mailboxRules` shows them: its active Sieve script read over ManageSieve,
//! parsed into rules, each judged suspicious or not against the tenant's own domains and the senders of
//! its incidents.

use super::server::{MailAccess, Server};
use super::sieve_session::{self, ActiveScript};
use crate::auth::{Caller, Role};
use crate::db::queries::{correlation, mail_servers, tenants};
use crate::db::Pool;
use crate::domain::sieve::{self, Rule};
use crate::error::{AppError, AppResult};
use std::collections::BTreeSet;

/// One rule of a mailbox, judged.
#[derive(Debug, Clone)]
pub struct InboxRule {
    /// The mailbox.
    pub mailbox: String,
    /// The script it is in.
    pub script: String,
    /// The rule, parsed.
    pub rule: Rule,
    /// Why it looks like an attacker's, if it does.
    pub reason: Option<String>,
}

/// `mailbox` as an address, lower-cased, or a clear refusal.
pub fn mailbox_address(field: &str, mailbox: &str) -> AppResult<String> {
    crate::domain::values::address(field, Some(mailbox)).map_err(AppError::BadInput)
}

/// The tenant's mail server, opened; `NOT_FOUND` when it has none.
pub async fn server(pool: &Pool, access: &MailAccess, tenant_id: &str) -> AppResult<Server> {
    let mut conn = pool.get().await?;
    match mail_servers::find(&mut conn, tenant_id).await? {
        Some(row) => access.server(&row),
        None => Err(AppError::NotFound(
            "this tenant has no mail server: an admin configures one with configureMailServer".into(),
        )),
    }
}

/// Reads `mailbox`'s active script; `UNAVAILABLE` naming what failed when the server can't be reached.
pub async fn active_script(
    access: &MailAccess,
    server: &Server,
    mailbox: &str,
) -> AppResult<Option<ActiveScript>> {
    let _slot = access.slot(&server.tenant_id).await?;
    let mut session = sieve_session::open(server, mailbox).await.map_err(|e| AppError::Unavailable(e.0))?;
    let active = session.active().await.map_err(|e| AppError::Unavailable(e.0));
    session.logout().await;
    active
}

/// Parses `script`, or says why the mailbox's script can't be read as rules.
pub fn parse(mailbox: &str, script: &ActiveScript) -> AppResult<Vec<Rule>> {
    sieve::parse(&script.text).map(|s| s.rules).map_err(|e| {
        AppError::Unavailable(format!(
            "the active Sieve script {:?} of {mailbox} is not Sieve Parapet can read: {e}",
            script.name
        ))
    })
}

/// Judges `rules` of `mailbox`: forwarding outside the tenant's domains (its `acceptedDomains` and the
/// mailbox's own), or hiding mail from a sender of one of its incidents.
pub async fn judge(
    pool: &Pool,
    tenant_id: &str,
    mailbox: &str,
    script: &str,
    rules: Vec<Rule>,
) -> AppResult<Vec<InboxRule>> {
    let values: BTreeSet<String> = rules.iter().flat_map(sieve::sender_values).collect();
    let values: Vec<String> = values.into_iter().collect();
    let mut conn = pool.get().await?;
    let mut own = tenants::get(&mut conn, tenant_id).await?.accepted_domains;
    if let Some((_, d)) = mailbox.rsplit_once('@') {
        own.push(d.to_string());
    }
    let known: BTreeSet<String> = if values.is_empty() {
        BTreeSet::new()
    } else {
        correlation::incident_senders(&mut conn, tenant_id, &values).await?.into_iter().collect()
    };
    Ok(rules
        .into_iter()
        .map(|rule| {
            let reason = sieve::suspicious(&rule, &own, &|v: &str| known.contains(&v.to_lowercase()));
            InboxRule { mailbox: mailbox.to_string(), script: script.to_string(), rule, reason }
        })
        .collect())
}

/// `mailbox`'s rules, judged (analysts and above).
pub async fn list(
    pool: &Pool,
    access: &MailAccess,
    caller: &Caller,
    mailbox: &str,
) -> AppResult<Vec<InboxRule>> {
    caller.require(Role::Analyst)?;
    let mailbox = mailbox_address("mailbox", mailbox)?;
    let server = server(pool, access, &caller.tenant_id).await?;
    let Some(script) = active_script(access, &server, &mailbox).await? else { return Ok(Vec::new()) };
    let rules = parse(&mailbox, &script)?;
    judge(pool, &caller.tenant_id, &mailbox, &script.name, rules).await
}
