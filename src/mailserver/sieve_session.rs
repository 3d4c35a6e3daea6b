//! A mailbox's Sieve scripts over ManageSieve, opened with the tenant's master login: the active script
//! read, and rewritten in place (`PUTSCRIPT` under its own name, then `SETACTIVE`). ManageSieve has no
//! TLS-first port, so a server configured for `TLS` or `STARTTLS` is upgraded with STARTTLS. Every
//! exchange is bounded by the server's timeout; errors never carry the password.

use super::imap::MailError;
use super::managesieve::{Capabilities, Client, SieveError};
use super::server::Server;
use super::transport::{self, Stream};
use crate::domain::enums::MailServerTls;
use std::future::Future;

/// An open ManageSieve session.
pub struct Session {
    client: Client<Stream>,
    /// What the server offers.
    pub capabilities: Capabilities,
    server: Server,
}

/// The active script of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveScript {
    /// Its name.
    pub name: String,
    /// Its text.
    pub text: String,
}

fn sieve_err(what: &str, e: SieveError) -> MailError {
    MailError(format!("{what}: {e}"))
}

async fn bounded<T>(
    server: &Server,
    what: &str,
    f: impl Future<Output = Result<T, SieveError>>,
) -> Result<T, MailError> {
    match tokio::time::timeout(server.timeout, f).await {
        Ok(r) => r.map_err(|e| sieve_err(what, e)),
        Err(_) => Err(MailError(format!("{what}: no answer within {} s", server.timeout.as_secs()))),
    }
}

/// Opens `mailbox`'s scripts on `server` (`mailbox` empty: the master's own).
pub async fn open(server: &Server, mailbox: &str) -> Result<Session, MailError> {
    let at = format!("{}:{}", server.sieve_host, server.sieve_port);
    let stream =
        transport::connect(&server.sieve_host, server.sieve_port, MailServerTls::None, server.timeout)
            .await
            .map_err(|e| MailError(format!("connecting to ManageSieve at {at}: {e}")))?;
    let (mut client, mut capabilities) =
        bounded(server, &format!("ManageSieve at {at}"), Client::greet(stream)).await?;
    if server.tls != MailServerTls::None {
        let plain = bounded(server, "STARTTLS", client.starttls()).await?;
        let tls = transport::upgrade(plain, &server.sieve_host, server.timeout)
            .await
            .map_err(|e| MailError(format!("STARTTLS with {at}: {e}")))?;
        (client, capabilities) =
            bounded(server, "ManageSieve after STARTTLS", Client::after_tls(tls)).await?;
    }
    let who = if mailbox.is_empty() { server.master_user.as_str() } else { mailbox };
    bounded(
        server,
        &format!("logging in to the scripts of {who}"),
        client.authenticate_plain(mailbox, &server.master_user, server.password()),
    )
    .await?;
    Ok(Session { client, capabilities, server: server.clone() })
}

impl Session {
    /// The active script, if the mailbox has one.
    pub async fn active(&mut self) -> Result<Option<ActiveScript>, MailError> {
        let server = self.server.clone();
        let scripts = bounded(&server, "LISTSCRIPTS", self.client.list_scripts()).await?;
        let Some((name, _)) = scripts.into_iter().find(|(_, active)| *active) else { return Ok(None) };
        let text = bounded(&server, &format!("GETSCRIPT {name}"), self.client.get_script(&name)).await?;
        Ok(Some(ActiveScript { name, text }))
    }

    /// Replaces script `name` with `text` and makes it the active one.
    pub async fn replace(&mut self, name: &str, text: &str) -> Result<(), MailError> {
        let server = self.server.clone();
        bounded(&server, &format!("PUTSCRIPT {name}"), self.client.put_script(name, text)).await?;
        bounded(&server, &format!("SETACTIVE {name}"), self.client.set_active(name)).await
    }

    /// Ends the session (errors ignored: the work is done or already failed).
    pub async fn logout(self) {
        let timeout = self.server.timeout;
        let _ = tokio::time::timeout(timeout, self.client.logout()).await;
    }
}
