//! What every request and worker shares: the pool, the token verifier, the settings.

use crate::auth::{Caller, JwtVerifier};
use crate::db::{self, Pool};
use crate::domain::secret::SecretKey;
use crate::error::{AppError, AppResult};
use crate::events::hub::Hub;
use crate::mailserver::server::{MailAccess, DEFAULT_RETRY, DEFAULT_TIMEOUT};
use crate::metrics::Metrics;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Database pool.
    pub pool: Pool,
    /// Verifies bearer tokens.
    pub verifier: Arc<JwtVerifier>,
    /// Fans committed events out to this process's subscribers.
    pub hub: Hub,
    /// What `/metrics` serves; this app's own registry.
    pub metrics: Metrics,
    /// Tenants known to exist, so a request creates its tenant row at most once per process.
    known_tenants: Arc<Mutex<HashSet<String>>>,
    /// Seals secrets at rest (mail servers' passwords); `None` when the server has no key.
    pub secret_key: Option<SecretKey>,
    /// Opens tenants' mail servers (the key, the command timeout, the per-tenant session bound).
    pub mail: Arc<MailAccess>,
}

impl AppState {
    /// Builds the state.
    pub fn new(pool: Pool, verifier: JwtVerifier) -> Self {
        Self {
            hub: Hub::new(pool.clone()),
            pool,
            verifier: Arc::new(verifier),
            metrics: Metrics::new(),
            known_tenants: Arc::default(),
            secret_key: None,
            mail: MailAccess::new(None, DEFAULT_TIMEOUT, DEFAULT_RETRY),
        }
    }

    /// The state with the key that seals secrets at rest.
    pub fn with_secret_key(mut self, key: Option<SecretKey>) -> Self {
        self.mail = MailAccess::new(key.clone(), self.mail.timeout(), self.mail.retry());
        self.secret_key = key;
        self
    }

    /// The state with `timeout` on each connect and command to a mail server, and `retry` before the
    /// second try of a mailbox that could not be reached.
    pub fn with_mail(mut self, timeout: Duration, retry: Duration) -> Self {
        self.mail = MailAccess::new(self.secret_key.clone(), timeout, retry);
        self
    }

    /// Verifies an `Authorization` header and makes sure the caller's tenant exists
    /// (the first valid token for a `tid` creates it with default settings).
    pub async fn authenticate(&self, header: &str) -> AppResult<Caller> {
        let caller = self.verifier.verify_header(header)?;
        self.ensure_tenant(&caller.tenant_id).await?;
        Ok(caller)
    }

    async fn ensure_tenant(&self, tenant_id: &str) -> AppResult<()> {
        let known = self
            .known_tenants
            .lock()
            .map_err(|_| AppError::Internal("tenant cache poisoned".into()))?
            .contains(tenant_id);
        if known {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        db::queries::tenants::ensure(&mut conn, tenant_id).await?;
        self.known_tenants
            .lock()
            .map_err(|_| AppError::Internal("tenant cache poisoned".into()))?
            .insert(tenant_id.to_string());
        Ok(())
    }
}
