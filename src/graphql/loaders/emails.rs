//! The mail store's nested reads: a copy's timeline and alerts, and the copy an e-mail evidence names.
//! Plain DataLoader batching: siblings asking in the same tick share one statement per tenant.

use super::{group, QueueLoader};
use crate::db::models;
use crate::db::queries::emails;
use crate::error::AppError;
use crate::mail::ingest::window_start;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Most timeline events a copy lists.
pub const TIMELINE_CAP: i64 = 1_000;
/// Most alerts a copy lists.
pub const EMAIL_ALERTS_CAP: i64 = 100;

/// A copy's timeline (its first [`TIMELINE_CAP`] events).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailTimelineKey {
    /// Tenant.
    pub tenant: String,
    /// Copy id.
    pub email_id: Uuid,
}

impl Loader<EmailTimelineKey> for QueueLoader {
    type Value = Arc<Vec<models::EmailEvent>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[EmailTimelineKey],
    ) -> Result<HashMap<EmailTimelineKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out: HashMap<EmailTimelineKey, Vec<models::EmailEvent>> = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.email_id).collect();
            for e in emails::timelines(&mut conn, &tenant, &ids, TIMELINE_CAP).await? {
                out.entry(EmailTimelineKey { tenant: tenant.clone(), email_id: e.email_id })
                    .or_default()
                    .push(e);
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// The alerts whose e-mail evidence names a copy (by its entity key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAlertsKey {
    /// Tenant.
    pub tenant: String,
    /// `EMAIL:<network message id>:<recipient>`.
    pub entity_key: String,
}

impl Loader<EmailAlertsKey> for QueueLoader {
    type Value = Arc<Vec<models::Alert>>;
    type Error = AppError;

    async fn load(&self, keys: &[EmailAlertsKey]) -> Result<HashMap<EmailAlertsKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out: HashMap<EmailAlertsKey, Vec<models::Alert>> = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let entity_keys: Vec<String> = ks.iter().map(|k| k.entity_key.clone()).collect();
            for (key, alert) in
                emails::alerts_naming(&mut conn, &tenant, &entity_keys, EMAIL_ALERTS_CAP).await?
            {
                out.entry(EmailAlertsKey { tenant: tenant.clone(), entity_key: key })
                    .or_default()
                    .push(alert);
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// The copy a (network message id, recipient) names: the mail-flow record if there is one, else the
/// learned copy; the most recently received when several are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailCopyKey {
    /// Tenant.
    pub tenant: String,
    /// Network message id (lower-case).
    pub network_message_id: String,
    /// Recipient (lower-case).
    pub recipient: String,
}

impl Loader<EmailCopyKey> for QueueLoader {
    type Value = models::Email;
    type Error = AppError;

    async fn load(&self, keys: &[EmailCopyKey]) -> Result<HashMap<EmailCopyKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let since = window_start(chrono::Utc::now());
        let mut out: HashMap<EmailCopyKey, models::Email> = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let nmids: Vec<String> = ks.iter().map(|k| k.network_message_id.clone()).collect();
            let recipients: Vec<String> = ks.iter().map(|k| k.recipient.clone()).collect();
            // Newest first: the first row of a pair that is a mail-flow record wins.
            for r in emails::by_copies(&mut conn, &tenant, &nmids, &recipients, since).await? {
                let key = EmailCopyKey {
                    tenant: tenant.clone(),
                    network_message_id: r.network_message_id.clone(),
                    recipient: r.recipient.clone(),
                };
                let better = match out.get(&key) {
                    None => true,
                    Some(have) => {
                        have.source != crate::domain::enums::EmailSource::MailFlow
                            && r.source == crate::domain::enums::EmailSource::MailFlow
                    }
                };
                if better {
                    out.insert(key, r);
                }
            }
        }
        Ok(out)
    }
}

/// A copy by id, while it is in the 30-day store (a submission's `email`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailByIdKey {
    /// Tenant.
    pub tenant: String,
    /// Copy id.
    pub id: Uuid,
}

impl Loader<EmailByIdKey> for QueueLoader {
    type Value = models::Email;
    type Error = AppError;

    async fn load(&self, keys: &[EmailByIdKey]) -> Result<HashMap<EmailByIdKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let since = window_start(chrono::Utc::now());
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.id).collect();
            for r in emails::by_ids(&mut conn, &tenant, &ids, since).await? {
                out.insert(EmailByIdKey { tenant: tenant.clone(), id: r.id }, r);
            }
        }
        Ok(out)
    }
}

/// An allow/block entry by id, while it exists (a submission's `allowBlockEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowBlockEntryKey {
    /// Tenant.
    pub tenant: String,
    /// Entry id.
    pub id: Uuid,
}

impl Loader<AllowBlockEntryKey> for QueueLoader {
    type Value = models::AllowBlockEntry;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[AllowBlockEntryKey],
    ) -> Result<HashMap<AllowBlockEntryKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let ids: Vec<Uuid> = ks.iter().map(|k| k.id).collect();
            for r in crate::db::queries::allow_block::by_ids(&mut conn, &tenant, &ids).await? {
                out.insert(AllowBlockEntryKey { tenant: tenant.clone(), id: r.id }, r);
            }
        }
        Ok(out)
    }
}
