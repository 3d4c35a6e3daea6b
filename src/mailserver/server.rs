//! A tenant's mail server ready to connect to: its stored configuration with the master password
//! opened by the server's secret key, kept out of every `Debug` output and error. Also the bound on
//! connections each tenant may have open at once.

use crate::db::models::MailServer;
use crate::domain::enums::{DeliveryLocation, MailServerTls};
use crate::domain::secret::SecretKey;
use crate::error::{AppError, AppResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Mailbox sessions one tenant may have open at once on one Parapet process.
pub const CONNECTIONS_PER_TENANT: usize = 4;
/// Longest wait for a connect, a TLS handshake or one command's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait before the second try of a mailbox that could not be reached (doubled for each later one).
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// A mail server as sessions use it.
#[derive(Clone)]
pub struct Server {
    /// Whose it is.
    pub tenant_id: String,
    /// IMAP host.
    pub host: String,
    /// IMAP port.
    pub port: u16,
    /// Transport security (ManageSieve, which has no TLS-first port, upgrades with STARTTLS under `TLS`).
    pub tls: MailServerTls,
    /// The master login that opens every mailbox.
    pub master_user: String,
    password: String,
    /// ManageSieve host.
    pub sieve_host: String,
    /// ManageSieve port.
    pub sieve_port: u16,
    /// Folder for `MOVE_TO_JUNK`.
    pub junk: String,
    /// Folder for `MOVE_TO_DELETED_ITEMS`.
    pub deleted_items: String,
    /// Folder for `SOFT_DELETE`.
    pub recoverable_items: String,
    /// Bound on each connect and command.
    pub timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tenant_id", &self.tenant_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("master_user", &self.master_user)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn port(p: i32) -> u16 {
    u16::try_from(p).unwrap_or(143)
}

impl Server {
    /// Opens the stored configuration `row` with `key`.
    pub fn open(row: &MailServer, key: Option<&SecretKey>, timeout: Duration) -> AppResult<Server> {
        let Some(key) = key else {
            return Err(AppError::Unavailable(
                "this server has no PARAPET_SECRET_KEY to open the mail server's password with".into(),
            ));
        };
        let password = key.open(&row.tenant_id, &row.password_sealed)?;
        Ok(Server {
            tenant_id: row.tenant_id.clone(),
            host: row.host.clone(),
            port: port(row.port),
            tls: row.tls,
            master_user: row.master_user.clone(),
            password,
            sieve_host: row.sieve_host.clone().unwrap_or_else(|| row.host.clone()),
            sieve_port: row.sieve_port.map_or(crate::mailserver::settings::SIEVE_PORT as u16, port),
            junk: row.junk_folder.clone(),
            deleted_items: row.deleted_items_folder.clone(),
            recoverable_items: row.recoverable_items_folder.clone(),
            timeout,
        })
    }

    /// The master password, for the one place that sends it (SASL PLAIN).
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// The folder an action's destination is (`None`: a hard delete, which expunges).
    pub fn folder_for(&self, to: DeliveryLocation) -> Option<String> {
        match to {
            DeliveryLocation::Junk => Some(self.junk.clone()),
            DeliveryLocation::DeletedItems => Some(self.deleted_items.clone()),
            DeliveryLocation::SoftDeleted => Some(self.recoverable_items.clone()),
            DeliveryLocation::HardDeleted => None,
            _ => Some("INBOX".to_string()),
        }
    }
}

/// What every tenant's sessions share on this process: the secret key, the command timeout, and one
/// semaphore per tenant bounding its open sessions.
#[derive(Debug)]
pub struct MailAccess {
    key: Option<SecretKey>,
    timeout: Duration,
    retry: Duration,
    per_tenant: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl MailAccess {
    /// Access with `key` (none: no configured server can be opened), `timeout` per command.
    pub fn new(key: Option<SecretKey>, timeout: Duration, retry: Duration) -> Arc<MailAccess> {
        Arc::new(MailAccess {
            key,
            timeout,
            retry,
            per_tenant: CONNECTIONS_PER_TENANT,
            slots: Mutex::default(),
        })
    }

    /// The wait before try `next` (2 or more) of a mailbox that could not be reached: the retry base,
    /// doubled per try after the second (with 60 s, the five tries span about 15 minutes).
    pub fn retry_wait(&self, next: i32) -> Duration {
        let doublings = u32::try_from(next.saturating_sub(2)).unwrap_or(0).min(10);
        self.retry.saturating_mul(1 << doublings)
    }

    /// The retry base.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// The bound on each connect and command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens `row` for use.
    pub fn server(&self, row: &MailServer) -> AppResult<Server> {
        Server::open(row, self.key.as_ref(), self.timeout)
    }

    /// Waits for one of the tenant's session slots; the slot frees when the permit drops.
    pub async fn slot(&self, tenant_id: &str) -> AppResult<OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .entry(tenant_id.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        sem.acquire_owned()
            .await
            .map_err(|_| AppError::Internal("a tenant's session slots were closed".into()))
    }
}
