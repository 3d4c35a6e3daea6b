//! The `Email` type (one copy of a message, as Threat Explorer shows it) and its delivery timeline.

use crate::auth::Role;
use crate::db::models;
use crate::db::queries::emails;
use crate::db::queries::explorer::{GroupBy, Hunt};
use crate::domain::enums::*;
use crate::error::{AppError, GqlResult};
use crate::graphql::loaders::{
    self, EmailAlertsKey, EmailTimelineKey, EMAIL_ACTIONS_CAP, EMAIL_ALERTS_CAP, TIMELINE_CAP,
};
use crate::graphql::require;
use crate::graphql::state;
use crate::graphql::types::action::Action;
use crate::graphql::types::alert::Alert;
use crate::graphql::types::connection::page_size_within;
use crate::graphql::types::connection::{encode_cursor, PageInfo};
use crate::graphql::types::evidence::Attachment;
use crate::graphql::types::filters::OrderDirection;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// One copy of an e-mail message: the message as one recipient got it.
pub struct Email {
    row: models::Email,
    // The Explorer page it came in, whose copies load their nested lists together.
    page: Option<Arc<EmailPage>>,
}

impl Email {
    /// A copy read on its own (its nested lists batch through the DataLoader).
    pub fn new(row: models::Email) -> Self {
        Self { row, page: None }
    }
}

/// The copies of one Explorer page: the first copy asking for a nested list loads it for the whole
/// page in one statement, the others share it, so a page costs the same statements whatever its size.
pub struct EmailPage {
    tenant: String,
    ids: Vec<uuid::Uuid>,
    entity_keys: Vec<String>,
    timelines: tokio::sync::OnceCell<HashMap<uuid::Uuid, Vec<models::EmailEvent>>>,
    alerts: tokio::sync::OnceCell<HashMap<String, Vec<models::Alert>>>,
}

impl EmailPage {
    async fn timeline(&self, ctx: &Context<'_>, id: uuid::Uuid) -> GqlResult<Vec<models::EmailEvent>> {
        let all = self
            .timelines
            .get_or_try_init(|| async {
                let mut conn = state(ctx).pool.get().await?;
                let rows = emails::timelines(&mut conn, &self.tenant, &self.ids, TIMELINE_CAP).await?;
                let mut out: HashMap<uuid::Uuid, Vec<models::EmailEvent>> = HashMap::new();
                for e in rows {
                    out.entry(e.email_id).or_default().push(e);
                }
                Ok::<_, AppError>(out)
            })
            .await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }

    async fn alerts(&self, ctx: &Context<'_>, key: &str) -> GqlResult<Vec<models::Alert>> {
        let all = self
            .alerts
            .get_or_try_init(|| async {
                let mut conn = state(ctx).pool.get().await?;
                let rows =
                    emails::alerts_naming(&mut conn, &self.tenant, &self.entity_keys, EMAIL_ALERTS_CAP)
                        .await?;
                let mut out: HashMap<String, Vec<models::Alert>> = HashMap::new();
                for (k, a) in rows {
                    out.entry(k).or_default().push(a);
                }
                Ok::<_, AppError>(out)
            })
            .await?;
        Ok(all.get(key).cloned().unwrap_or_default())
    }
}

/// One event of a copy's delivery timeline.
pub struct DeliveryEvent(pub models::EmailEvent);

#[Object]
impl Email {
    /// Copy id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// Exchange's id of the message (shared by all its copies).
    async fn network_message_id(&self) -> &str {
        &self.row.network_message_id
    }
    /// The Message-ID header.
    async fn internet_message_id(&self) -> Option<&str> {
        self.row.internet_message_id.as_deref()
    }
    /// Recipient of this copy.
    async fn recipient(&self) -> &str {
        &self.row.recipient
    }
    /// The recipient's domain.
    async fn recipient_domain(&self) -> &str {
        &self.row.recipient_domain
    }
    /// SMTP MAIL FROM ("P1" sender).
    async fn envelope_sender(&self) -> Option<&str> {
        self.row.envelope_sender.as_deref()
    }
    /// The envelope sender's domain.
    async fn envelope_sender_domain(&self) -> Option<&str> {
        self.row.envelope_sender_domain.as_deref()
    }
    /// The From: header ("P2" sender).
    async fn header_from(&self) -> Option<&str> {
        self.row.header_from.as_deref()
    }
    /// Sender's display name.
    async fn sender_display_name(&self) -> Option<&str> {
        self.row.sender_display_name.as_deref()
    }
    /// The sender domain Explorer shows: the From: header's, else the envelope sender's.
    async fn sender_domain(&self) -> Option<&str> {
        self.row.sender_domain.as_deref()
    }
    /// Connecting IP address.
    async fn sender_ip(&self) -> Option<&str> {
        self.row.sender_ip.as_deref()
    }
    /// Subject.
    async fn subject(&self) -> Option<&str> {
        self.row.subject.as_deref()
    }
    /// When it was received.
    async fn received_at(&self) -> DateTime<Utc> {
        self.row.received_at
    }
    /// Direction relative to the tenant.
    async fn direction(&self) -> Direction {
        self.row.direction
    }
    /// What the filtering stack did.
    async fn delivery_action(&self) -> DeliveryAction {
        self.row.delivery_action
    }
    /// Where it was first delivered.
    async fn original_delivery_location(&self) -> DeliveryLocation {
        self.row.original_delivery_location
    }
    /// Where it is now.
    async fn latest_delivery_location(&self) -> DeliveryLocation {
        self.row.latest_delivery_location
    }
    /// Threats found.
    async fn threat_types(&self) -> &[ThreatType] {
        &self.row.threat_types
    }
    /// Confidence of a phish verdict.
    async fn phish_confidence(&self) -> Option<PhishConfidence> {
        self.row.phish_confidence
    }
    /// Technologies that detected it (including the tenant block list, when it overrode the verdict).
    async fn detection_technologies(&self) -> &[String] {
        &self.row.detection_technologies
    }
    /// What overrode the filtering verdict (the tenant allow/block list), if anything did.
    async fn override_source(&self) -> Option<&str> {
        self.row.override_source.as_deref()
    }
    /// URLs in the message.
    async fn urls(&self) -> &[String] {
        &self.row.urls
    }
    /// Hosts of its URLs.
    async fn url_domains(&self) -> &[String] {
        &self.row.url_domains
    }
    /// Attachments.
    async fn attachments(&self) -> Vec<Attachment> {
        serde_json::from_value(self.row.attachments.clone()).unwrap_or_default()
    }
    /// The mail cluster it belongs to, when the source knows it.
    async fn cluster_id(&self) -> Option<&str> {
        self.row.cluster_id.as_deref()
    }
    /// Where Parapet learned of it: a mail-flow record, or an alert's evidence (until a record arrives).
    async fn source(&self) -> EmailSource {
        self.row.source
    }
    /// When Parapet itself last moved it (remediation).
    async fn moved_at(&self) -> Option<DateTime<Utc>> {
        self.row.moved_at
    }
    /// When it was first stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
    /// Its delivery events in time order: original delivery, ZAP, remediation, release (at most 1,000).
    async fn timeline(&self, ctx: &Context<'_>) -> GqlResult<Vec<DeliveryEvent>> {
        if let Some(page) = &self.page {
            return Ok(page.timeline(ctx, self.row.id).await?.into_iter().map(DeliveryEvent).collect());
        }
        let key = EmailTimelineKey { tenant: self.row.tenant_id.clone(), email_id: self.row.id };
        let events = loaders::loaders(ctx).data().load_one(key).await?;
        Ok(events.map(|e| e.iter().cloned().map(DeliveryEvent).collect()).unwrap_or_default())
    }
    /// The alerts whose e-mail evidence names this copy, newest first. `first`: default and most 100.
    /// Readers and above (an ingestor reads only ids it pushed).
    async fn alerts(&self, ctx: &Context<'_>, first: Option<i32>) -> GqlResult<Vec<Alert>> {
        require(ctx, Role::Reader)?;
        let n = usize::try_from(page_size_within(first, EMAIL_ALERTS_CAP, EMAIL_ALERTS_CAP)?).unwrap_or(0);
        let alerts = match &self.page {
            Some(page) => page.alerts(ctx, &self.entity_key()).await?,
            None => {
                let key =
                    EmailAlertsKey { tenant: self.row.tenant_id.clone(), entity_key: self.entity_key() };
                let found = loaders::loaders(ctx).data().load_one(key).await?;
                found.map(|a| a.as_ref().clone()).unwrap_or_default()
            }
        };
        Ok(alerts.into_iter().take(n).map(Alert).collect())
    }
    /// The remediation actions that targeted this copy, newest first. `first`: default and most 100.
    async fn actions(&self, ctx: &Context<'_>, first: Option<i32>) -> GqlResult<Vec<Action>> {
        require(ctx, Role::Reader)?;
        let n = usize::try_from(page_size_within(first, EMAIL_ACTIONS_CAP, EMAIL_ACTIONS_CAP)?).unwrap_or(0);
        let key = loaders::EmailActionsKey { tenant: self.row.tenant_id.clone(), email_id: self.row.id };
        let found = loaders::loaders(ctx).data().load_one(key).await?;
        Ok(found.map(|a| a.iter().take(n).cloned().map(Action).collect()).unwrap_or_default())
    }
}

impl Email {
    /// The evidence entity key alerts name this copy by.
    pub fn entity_key(&self) -> String {
        crate::domain::email::entity_key(&self.row.network_message_id, &self.row.recipient)
    }
}

#[Object]
impl DeliveryEvent {
    /// What happened.
    async fn kind(&self) -> EmailEventKind {
        self.0.kind
    }
    /// When.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Where the copy was before (null for its original delivery, or when the source did not say).
    async fn from_location(&self) -> Option<DeliveryLocation> {
        self.0.from_location
    }
    /// Where it went.
    async fn to_location(&self) -> Option<DeliveryLocation> {
        self.0.to_location
    }
    /// Who did it: `mail flow`, a gateway's own name, `alert evidence`, a person, or an action.
    async fn actor(&self) -> Option<&str> {
        self.0.actor.as_deref()
    }
    /// Why, when known.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// The response action that moved it, if one did.
    async fn action_id(&self) -> Option<ID> {
        self.0.action_id.map(|id| ID(id.to_string()))
    }
}

/// Cursor scope of Explorer pages, newest first.
pub const EMAILS_DESC_SCOPE: &str = "emails.desc";
/// Cursor scope of Explorer pages, oldest first.
pub const EMAILS_ASC_SCOPE: &str = "emails.asc";

/// An edge: a copy and its cursor.
pub struct EmailEdge {
    /// Cursor of the copy.
    pub cursor: String,
    /// The copy.
    pub node: Email,
}

#[Object]
impl EmailEdge {
    /// Opaque position of the copy; pass it as `after` to continue after it.
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    /// The copy.
    async fn node(&self) -> &Email {
        &self.node
    }
}

/// A page of copies matching an Explorer filter.
pub struct EmailConnection {
    edges: Vec<EmailEdge>,
    page_info: PageInfo,
    tenant: String,
    hunt: Arc<Hunt>,
    total: tokio::sync::OnceCell<(i64, bool)>,
}

impl EmailConnection {
    /// A connection from a page of rows (`has_next`: rows follow; `has_previous`: `after` was given).
    pub fn new(
        rows: Vec<models::Email>,
        has_next: bool,
        has_previous: bool,
        scope: &str,
        tenant: String,
        hunt: Hunt,
    ) -> Self {
        let page = Arc::new(EmailPage {
            tenant: tenant.clone(),
            ids: rows.iter().map(|r| r.id).collect(),
            entity_keys: rows
                .iter()
                .map(|r| crate::domain::email::entity_key(&r.network_message_id, &r.recipient))
                .collect(),
            timelines: tokio::sync::OnceCell::new(),
            alerts: tokio::sync::OnceCell::new(),
        });
        let edges: Vec<EmailEdge> = rows
            .into_iter()
            .map(|r| EmailEdge {
                cursor: encode_cursor(scope, r.received_at.timestamp_micros(), r.id),
                node: Email { row: r, page: Some(page.clone()) },
            })
            .collect();
        let page_info = PageInfo {
            has_next_page: has_next,
            has_previous_page: has_previous,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Self { edges, page_info, tenant, hunt: Arc::new(hunt), total: tokio::sync::OnceCell::new() }
    }

    async fn total(&self, ctx: &Context<'_>) -> GqlResult<(i64, bool)> {
        let v = self
            .total
            .get_or_try_init(|| async {
                let mut conn = state(ctx).pool.get().await?;
                crate::explorer::hunt::count(&mut conn, &self.tenant, &self.hunt).await
            })
            .await?;
        Ok(*v)
    }
}

#[Object]
impl EmailConnection {
    /// The page's copies with their cursors.
    async fn edges(&self) -> &[EmailEdge] {
        &self.edges
    }
    /// The page's copies.
    async fn nodes(&self) -> Vec<&Email> {
        self.edges.iter().map(|e| &e.node).collect()
    }
    /// Where the page lies in the list.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// How many copies match the filter: exact up to 10,000; past that, an estimate (see
    /// `totalCountIsEstimate`). Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        Ok(self.total(ctx).await?.0)
    }
    /// Whether `totalCount` is an estimate (more than 10,000 copies match).
    async fn total_count_is_estimate(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        Ok(self.total(ctx).await?.1)
    }
}

/// What Explorer pages are ordered by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EmailOrderField {
    /// Receive time.
    ReceivedAt,
}

/// The order of an Explorer page (default: newest first).
#[derive(InputObject, Clone, Copy, Debug)]
pub struct EmailOrder {
    /// Field.
    pub field: EmailOrderField,
    /// Direction.
    pub direction: OrderDirection,
}

/// What `emailAggregate` groups copies by: the charts Explorer shows.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EmailGroupBy {
    /// Delivery action.
    DeliveryAction,
    /// Sender domain (the From: header's, else the envelope sender's).
    SenderDomain,
    /// Sender IP.
    SenderIp,
    /// Detection technology (a copy counts once under each of its technologies).
    DetectionTechnology,
    /// URL domain (a copy counts once under each host its URLs name).
    UrlDomain,
    /// Latest delivery location.
    LatestDeliveryLocation,
    /// Threat type (a copy counts once under each of its threats).
    ThreatType,
    /// UTC day, `YYYY-MM-DD` (buckets in time order).
    Day,
    /// UTC hour, `YYYY-MM-DDTHH:00:00Z` (buckets in time order).
    Hour,
}

impl From<EmailGroupBy> for GroupBy {
    fn from(g: EmailGroupBy) -> Self {
        match g {
            EmailGroupBy::DeliveryAction => GroupBy::DeliveryAction,
            EmailGroupBy::SenderDomain => GroupBy::SenderDomain,
            EmailGroupBy::SenderIp => GroupBy::SenderIp,
            EmailGroupBy::DetectionTechnology => GroupBy::DetectionTechnology,
            EmailGroupBy::UrlDomain => GroupBy::UrlDomain,
            EmailGroupBy::LatestDeliveryLocation => GroupBy::LatestDeliveryLocation,
            EmailGroupBy::ThreatType => GroupBy::ThreatType,
            EmailGroupBy::Day => GroupBy::Day,
            EmailGroupBy::Hour => GroupBy::Hour,
        }
    }
}

/// One bucket of a grouped count.
#[derive(SimpleObject, Debug, Clone)]
pub struct EmailBucket {
    /// The value grouped on (a delivery action, a domain, a day...).
    pub key: String,
    /// Copies in the bucket.
    pub count: i64,
}
