//! `testMailServer`: logs in to the tenant's IMAP and ManageSieve servers with the stored master login
//! and reports what they offer and what is missing, so an admin sees a wrong password, a closed port
//! or a missing folder before an action fails on it. Failures are part of the report, not errors.

use super::imap;
use super::rules::{mailbox_address, server};
use super::server::MailAccess;
use super::sieve_session;
use crate::auth::{Caller, Role};
use crate::db::Pool;
use crate::error::AppResult;
use std::time::Instant;

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// The mailbox it logged in to (empty: the master's own).
    pub mailbox: String,
    /// The IMAP side.
    pub imap: imap::Probe,
    /// Configured folders the mailbox lacks (actions create them when first needed).
    pub missing_folders: Vec<String>,
    /// Whether the ManageSieve login worked.
    pub sieve_logged_in: bool,
    /// The ManageSieve server's implementation string.
    pub sieve_implementation: Option<String>,
    /// The Sieve extensions it supports.
    pub sieve_extensions: Vec<String>,
    /// What failed on the ManageSieve side.
    pub sieve_error: Option<String>,
    /// Milliseconds the whole check took.
    pub elapsed_ms: u64,
}

impl Check {
    /// Whether everything Parapet needs works: IMAP login, MOVE or UIDPLUS, ManageSieve login.
    pub fn ok(&self) -> bool {
        self.imap.logged_in && self.sieve_logged_in
    }
}

/// Checks the caller's tenant's mail server (admins), logged in to `mailbox` when given.
pub async fn run(
    pool: &Pool,
    access: &MailAccess,
    caller: &Caller,
    mailbox: Option<&str>,
) -> AppResult<Check> {
    caller.require(Role::Admin)?;
    let mailbox = match mailbox.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => mailbox_address("mailbox", m)?,
        None => String::new(),
    };
    let server = server(pool, access, &caller.tenant_id).await?;
    let start = Instant::now();
    // The check's two sessions count against the tenant's bound like any other.
    let _slots = (access.slot(&server.tenant_id).await?, access.slot(&server.tenant_id).await?);
    let (probe, sieve) = tokio::join!(imap::probe(&server, &mailbox), async {
        match sieve_session::open(&server, &mailbox).await {
            Ok(s) => {
                let caps = s.capabilities.clone();
                s.logout().await;
                Ok(caps)
            }
            Err(e) => Err(e.0),
        }
    });
    let names: Vec<&str> = probe.folders.iter().map(|f| f.name.as_str()).collect();
    let missing_folders = if probe.logged_in {
        [&server.junk, &server.deleted_items, &server.recoverable_items]
            .into_iter()
            .filter(|f| !names.contains(&f.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut check = Check { mailbox, imap: probe, missing_folders, ..Default::default() };
    match sieve {
        Ok(caps) => {
            check.sieve_logged_in = true;
            check.sieve_implementation = caps.implementation;
            check.sieve_extensions = caps.sieve;
        }
        Err(e) => check.sieve_error = Some(e),
    }
    check.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        tenant = %caller.tenant_id, actor = %caller.sub, imap = check.imap.logged_in, sieve = check.sieve_logged_in,
        "mail server checked"
    );
    Ok(check)
}
