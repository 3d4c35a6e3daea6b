//! The `MailServer` type (a tenant's own mail server, without its password) and its input.

use crate::db::models;
use crate::domain::enums::MailServerTls;
use crate::mailserver::Requested;
use async_graphql::{InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A tenant's own mail server: where remediation moves real mail (IMAP) and inbox rules are read
/// (ManageSieve). The master password is never read back.
pub struct MailServer(pub models::MailServer);

/// The folders actions move mail to.
#[derive(SimpleObject)]
pub struct MailServerFolders {
    /// `MOVE_TO_JUNK`.
    pub junk: String,
    /// `MOVE_TO_DELETED_ITEMS`.
    pub deleted_items: String,
    /// `SOFT_DELETE`.
    pub recoverable_items: String,
}

#[Object]
impl MailServer {
    /// IMAP host.
    async fn host(&self) -> &str {
        &self.0.host
    }
    /// IMAP port.
    async fn port(&self) -> i32 {
        self.0.port
    }
    /// Transport security.
    async fn tls(&self) -> MailServerTls {
        self.0.tls
    }
    /// The master login that opens every mailbox (Dovecot: `user*master`).
    async fn master_user(&self) -> &str {
        &self.0.master_user
    }
    /// Whether a master password is stored (it is never shown).
    async fn password_set(&self) -> bool {
        !self.0.password_sealed.is_empty()
    }
    /// ManageSieve host.
    async fn sieve_host(&self) -> Option<&str> {
        self.0.sieve_host.as_deref()
    }
    /// ManageSieve port.
    async fn sieve_port(&self) -> Option<i32> {
        self.0.sieve_port
    }
    /// The folders actions move mail to.
    async fn folders(&self) -> MailServerFolders {
        MailServerFolders {
            junk: self.0.junk_folder.clone(),
            deleted_items: self.0.deleted_items_folder.clone(),
            recoverable_items: self.0.recoverable_items_folder.clone(),
        }
    }
    /// Who last changed it.
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
    /// When.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Folder names (defaults: `Junk`, `Trash`, `Recoverable Items`).
#[derive(InputObject, Clone, Debug, Default)]
pub struct MailServerFoldersInput {
    /// For `MOVE_TO_JUNK`.
    pub junk: Option<String>,
    /// For `MOVE_TO_DELETED_ITEMS`.
    pub deleted_items: Option<String>,
    /// For `SOFT_DELETE`.
    pub recoverable_items: Option<String>,
}

/// A mail server's configuration.
#[derive(InputObject, Clone)]
pub struct ConfigureMailServerInput {
    /// IMAP host name or address.
    pub host: String,
    /// IMAP port (default 993 with `TLS`, else 143).
    pub port: Option<i32>,
    /// Transport security (default `TLS`).
    pub tls: Option<MailServerTls>,
    /// The master login.
    pub master_user: String,
    /// Its password: required the first time; left out, the stored one stays. Sealed at rest, never
    /// read back or logged.
    #[graphql(secret)]
    pub master_password: Option<String>,
    /// ManageSieve host (default: the IMAP host).
    pub sieve_host: Option<String>,
    /// ManageSieve port (default 4190).
    pub sieve_port: Option<i32>,
    /// Folder names.
    pub folders: Option<MailServerFoldersInput>,
}

impl std::fmt::Debug for ConfigureMailServerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigureMailServerInput")
            .field("host", &self.host)
            .field("masterPassword", &"<redacted>")
            .finish()
    }
}

impl ConfigureMailServerInput {
    /// The request the service checks.
    pub fn requested(self) -> Requested {
        let folders = self.folders.unwrap_or_default();
        Requested {
            host: self.host,
            port: self.port,
            tls: self.tls,
            master_user: self.master_user,
            master_password: self.master_password,
            sieve_host: self.sieve_host,
            sieve_port: self.sieve_port,
            junk: folders.junk,
            deleted_items: folders.deleted_items,
            recoverable_items: folders.recoverable_items,
        }
    }
}
