//! The `TenantSettings` type and the input that changes it.

use crate::db::models;
use crate::domain::settings::SettingsUpdate;
use async_graphql::{InputObject, Object};
use chrono::{DateTime, Utc};

/// A tenant's settings: correlation windows and key hygiene, and remediation approval rules.
pub struct TenantSettings(pub models::Tenant);

#[Object]
impl TenantSettings {
    /// The tenant.
    async fn tenant_id(&self) -> &str {
        &self.0.id
    }
    /// Alerts sharing a strong key (message id, cluster, URL, file hash, sender) correlate when their
    /// activity times lie at most this many hours apart (default 72).
    async fn strong_key_window_hours(&self) -> i32 {
        self.0.strong_key_window_hours
    }
    /// Same for weak keys (mailbox, IP), which also need the same alert policy (default 24).
    async fn weak_key_window_hours(&self) -> i32 {
        self.0.weak_key_window_hours
    }
    /// A key carried by more alerts than this inside the window does not correlate (default 1000).
    async fn max_key_prevalence(&self) -> i32 {
        self.0.max_key_prevalence
    }
    /// Key values that never correlate (the tenant's own domains, well-known services), lower-case.
    async fn correlation_ignore(&self) -> &[String] {
        &self.0.correlation_ignore
    }
    /// Automated remediation runs without approval (off by default).
    async fn auto_approve(&self) -> bool {
        self.0.auto_approve
    }
    /// Whoever proposed an action may not approve it (on by default).
    async fn four_eyes(&self) -> bool {
        self.0.four_eyes
    }
    /// The tenant's own mail domains, lower-case: an inbox rule forwarding anywhere else is suspicious
    /// (empty, the default: each mailbox's own domain counts as the tenant's).
    async fn accepted_domains(&self) -> &[String] {
        &self.0.accepted_domains
    }
    /// When the settings last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A change to the tenant's settings; omitted fields stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct UpdateTenantSettingsInput {
    /// 1 to 8760 hours.
    pub strong_key_window_hours: Option<i32>,
    /// 1 to 8760 hours.
    pub weak_key_window_hours: Option<i32>,
    /// At least 1.
    pub max_key_prevalence: Option<i32>,
    /// Replaces the whole list: at most 1000 entries of at most 255 characters; trimmed, lower-cased and
    /// de-duplicated.
    pub correlation_ignore: Option<Vec<String>>,
    /// Automated remediation runs without approval.
    pub auto_approve: Option<bool>,
    /// Whoever proposed an action may not approve it.
    pub four_eyes: Option<bool>,
    /// Replaces the tenant's own mail domains: at most 1000 domain names; trimmed, lower-cased and
    /// de-duplicated.
    pub accepted_domains: Option<Vec<String>>,
}

impl From<UpdateTenantSettingsInput> for SettingsUpdate {
    fn from(i: UpdateTenantSettingsInput) -> Self {
        SettingsUpdate {
            strong_key_window_hours: i.strong_key_window_hours,
            weak_key_window_hours: i.weak_key_window_hours,
            max_key_prevalence: i.max_key_prevalence,
            correlation_ignore: i.correlation_ignore,
            auto_approve: i.auto_approve,
            four_eyes: i.four_eyes,
            accepted_domains: i.accepted_domains,
        }
    }
}
