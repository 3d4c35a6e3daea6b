//! Evidence: the `Evidence` interface and one object type per kind (DOMAIN.md §3), read from the row's
//! JSON `data` (camelCase, as ingestion writes it). Missing or unreadable fields are null, never errors:
//! evidence is context, and one odd field must not hide the rest. An incident's evidence is merged by
//! entity (`from_entity`) and listed a page at a time.

use crate::db::models;
use crate::domain::enums::*;
use crate::graphql::loaders::Entity;
use async_graphql::{Interface, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use std::str::FromStr;
use uuid::Uuid;

/// Lenient readers: a value that does not parse becomes null (or is left out of a list).
mod lenient {
    use super::*;

    pub fn opt_enum<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(v.and_then(|v| v.as_str().and_then(|s| s.trim().to_uppercase().parse().ok())))
    }

    pub fn enum_list<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Vec<T>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(match v {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().and_then(|s| s.trim().to_uppercase().parse().ok()))
                .collect(),
            _ => vec![],
        })
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(match v {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }

    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(match v {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect()
            }
            _ => vec![],
        })
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(v.and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))))
    }

    pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        Ok(v.and_then(|v| {
            v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
        }))
    }
}

/// An attachment of an e-mail message.
#[derive(SimpleObject, Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
#[graphql(name = "EmailAttachment")]
pub struct Attachment {
    /// File name.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// SHA-256 of the content (hex).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

fn attachments<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Attachment>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Array(items)) => {
            items.into_iter().filter_map(|i| serde_json::from_value(i).ok()).collect()
        }
        _ => vec![],
    })
}

/// What every evidence row has, whatever its kind.
#[derive(Debug, Clone)]
pub struct Common {
    tenant_id: String,
    id: Uuid,
    kind: EvidenceKind,
    entity_key: String,
    verdict: Verdict,
    remediation_status: RemediationStatus,
    roles: Vec<EvidenceRole>,
    created_at: DateTime<Utc>,
    alert_ids: Vec<Uuid>,
    alert_count: i64,
}

/// Defines the data of one evidence kind (read from JSON) and its GraphQL object (common fields + its own).
macro_rules! evidence_object {
    ($(#[$m:meta])* $name:ident, $data:ident {
        $( $(#[$fm:meta])* $field:ident : $ty:ty = $with:literal ),* $(,)?
    } $(, extra { $($extra:tt)* })?) => {
        #[derive(Deserialize, Debug, Clone, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct $data {
            $( #[serde(deserialize_with = $with)] $field: $ty ),*
        }

        $(#[$m])*
        pub struct $name {
            common: Common,
            // Boxed: the kinds' data differ much in size, and the interface enum holds any of them.
            data: Box<$data>,
        }

        #[Object]
        impl $name {
            /// Evidence UUID (for an incident's merged evidence, the entity's first row).
            async fn id(&self) -> ID {
                ID(self.common.id.to_string())
            }
            /// Kind of evidence.
            async fn kind(&self) -> EvidenceKind {
                self.common.kind
            }
            /// Identifies the entity across alerts (e.g. `MAILBOX:alice@contoso.com`).
            async fn entity_key(&self) -> &str {
                &self.common.entity_key
            }
            /// Verdict (for merged evidence, the strongest of its rows).
            async fn verdict(&self) -> Verdict {
                self.common.verdict
            }
            /// Remediation state (for merged evidence, the latest row's).
            async fn remediation_status(&self) -> RemediationStatus {
                self.common.remediation_status
            }
            /// Roles the entity played (for merged evidence, all of them).
            async fn roles(&self) -> &[EvidenceRole] {
                &self.common.roles
            }
            /// When it was first recorded.
            async fn created_at(&self) -> DateTime<Utc> {
                self.common.created_at
            }
            /// The alerts that name this entity (for an incident's entity, at most 100 of them).
            async fn alert_ids(&self) -> Vec<ID> {
                self.common.alert_ids.iter().map(|id| ID(id.to_string())).collect()
            }
            /// How many alerts name this entity.
            async fn alert_count(&self) -> i64 {
                self.common.alert_count
            }
            $( $(#[$fm])* async fn $field(&self) -> &$ty { &self.data.$field } )*
            $($($extra)*)?
        }
    };
}

evidence_object!(
    /// One copy of an e-mail message (one recipient).
    EmailEvidence, EmailData {
        /// Exchange's id of the message (shared by all its copies).
        network_message_id: Option<String> = "lenient::opt_string",
        /// The Message-ID header.
        internet_message_id: Option<String> = "lenient::opt_string",
        /// Recipient of this copy.
        recipient: Option<String> = "lenient::opt_string",
        /// SMTP MAIL FROM ("P1" sender).
        envelope_sender: Option<String> = "lenient::opt_string",
        /// The From: header ("P2" sender).
        header_from: Option<String> = "lenient::opt_string",
        /// Sender's display name.
        sender_display_name: Option<String> = "lenient::opt_string",
        /// Sending IP address.
        sender_ip: Option<String> = "lenient::opt_string",
        /// Subject.
        subject: Option<String> = "lenient::opt_string",
        /// When it was received.
        received_at: Option<DateTime<Utc>> = "lenient::opt_time",
        /// Direction relative to the tenant.
        direction: Option<Direction> = "lenient::opt_enum",
        /// What the filtering stack did.
        delivery_action: Option<DeliveryAction> = "lenient::opt_enum",
        /// Where it was first delivered.
        original_delivery_location: Option<DeliveryLocation> = "lenient::opt_enum",
        /// Where it is now.
        latest_delivery_location: Option<DeliveryLocation> = "lenient::opt_enum",
        /// Threats found.
        threat_types: Vec<ThreatType> = "lenient::enum_list",
        /// Confidence of a phish verdict.
        phish_confidence: Option<PhishConfidence> = "lenient::opt_enum",
        /// Technologies that detected it.
        detection_technologies: Vec<String> = "lenient::string_list",
        /// URLs in the message.
        urls: Vec<String> = "lenient::string_list",
        /// Attachments.
        attachments: Vec<Attachment> = "attachments",
        /// The mail cluster it belongs to, when the source knows it.
        cluster_id: Option<String> = "lenient::opt_string",
    }, extra {
        /// The copy in the mail store this evidence names (its mail-flow record, or the copy learned
        /// from the evidence), whichever arrived first; null once the copy is past the 30-day window.
        async fn email(&self, ctx: &async_graphql::Context<'_>) -> crate::error::GqlResult<Option<crate::graphql::types::email::Email>> {
            let (Some(nmid), Some(recipient)) = (&self.data.network_message_id, &self.data.recipient) else {
                return Ok(None);
            };
            let key = crate::graphql::loaders::EmailCopyKey {
                tenant: self.common.tenant_id.clone(),
                network_message_id: nmid.to_lowercase(),
                recipient: recipient.to_lowercase(),
            };
            let row = crate::graphql::loaders::loaders(ctx).data().load_one(key).await?;
            Ok(row.map(crate::graphql::types::email::Email::new))
        }
    }
);

evidence_object!(
    /// A set of similar messages.
    MailClusterEvidence, MailClusterData {
        /// Cluster id.
        cluster_id: Option<String> = "lenient::opt_string",
        /// What the messages share (sender, URL, attachment hash, subject...).
        cluster_by: Option<String> = "lenient::opt_string",
        /// The query that finds the messages.
        query: Option<String> = "lenient::opt_string",
        /// Number of messages.
        email_count: Option<i64> = "lenient::opt_i64",
        /// The messages' network message ids.
        network_message_ids: Vec<String> = "lenient::string_list",
    }
);

evidence_object!(
    /// A mailbox.
    MailboxEvidence, MailboxData {
        /// Primary SMTP address.
        primary_address: Option<String> = "lenient::opt_string",
        /// Display name.
        display_name: Option<String> = "lenient::opt_string",
        /// User principal name.
        upn: Option<String> = "lenient::opt_string",
    }
);

evidence_object!(
    /// A mailbox configuration: inbox rule, forwarding rule, delegation.
    MailboxConfigurationEvidence, MailboxConfigurationData {
        /// Kind of configuration.
        configuration_type: Option<MailboxConfigurationType> = "lenient::opt_enum",
        /// The mailbox's primary address.
        mailbox_primary_address: Option<String> = "lenient::opt_string",
        /// The mailbox's display name.
        display_name: Option<String> = "lenient::opt_string",
        /// The mailbox owner's UPN.
        upn: Option<String> = "lenient::opt_string",
        /// Where the configuration forwards mail, if it does.
        forwarding_to: Option<String> = "lenient::opt_string",
    }
);

evidence_object!(
    /// A user account.
    UserEvidence, UserData {
        /// User principal name.
        upn: Option<String> = "lenient::opt_string",
        /// Display name.
        display_name: Option<String> = "lenient::opt_string",
        /// Account name.
        account_name: Option<String> = "lenient::opt_string",
        /// Domain name.
        domain_name: Option<String> = "lenient::opt_string",
        /// Entra ID object id.
        aad_user_id: Option<String> = "lenient::opt_string",
    }
);

evidence_object!(
    /// A URL.
    UrlEvidence, UrlData {
        /// The URL.
        url: Option<String> = "lenient::opt_string",
    }
);

evidence_object!(
    /// A file.
    FileEvidence, FileData {
        /// SHA-256 (hex).
        sha256: Option<String> = "lenient::opt_string",
        /// File name.
        name: Option<String> = "lenient::opt_string",
        /// Size in bytes.
        size: Option<i64> = "lenient::opt_i64",
    }
);

evidence_object!(
    /// An IP address.
    IpEvidence, IpData {
        /// The address.
        address: Option<String> = "lenient::opt_string",
        /// Country code, when known.
        country_code: Option<String> = "lenient::opt_string",
    }
);

/// A piece of evidence; query kind-specific fields with fragments (`... on EmailEvidence { recipient }`).
#[derive(Interface)]
#[graphql(
    field(
        name = "id",
        ty = "ID",
        desc = "Evidence UUID (for an incident's merged evidence, the entity's first row)."
    ),
    field(name = "kind", ty = "EvidenceKind", desc = "Kind of evidence."),
    field(name = "entity_key", ty = "&str", desc = "Identifies the entity across alerts."),
    field(name = "verdict", ty = "Verdict", desc = "Verdict (for merged evidence, the strongest)."),
    field(
        name = "remediation_status",
        ty = "RemediationStatus",
        desc = "Remediation state (for merged evidence, the latest row's)."
    ),
    field(name = "roles", ty = "&[EvidenceRole]", desc = "Roles the entity played."),
    field(name = "created_at", ty = "DateTime<Utc>", desc = "When it was first recorded."),
    field(
        name = "alert_ids",
        ty = "Vec<ID>",
        desc = "The alerts that name this entity (for an incident's entity, at most 100 of them)."
    ),
    field(name = "alert_count", ty = "i64", desc = "How many alerts name this entity.")
)]
pub enum Evidence {
    /// E-mail message copy.
    Email(EmailEvidence),
    /// Mail cluster.
    MailCluster(MailClusterEvidence),
    /// Mailbox.
    Mailbox(MailboxEvidence),
    /// Mailbox configuration.
    MailboxConfiguration(MailboxConfigurationEvidence),
    /// User.
    User(UserEvidence),
    /// URL.
    Url(UrlEvidence),
    /// File.
    File(FileEvidence),
    /// IP address.
    Ip(IpEvidence),
}

fn read<T: for<'de> Deserialize<'de> + Default>(id: Uuid, data: &serde_json::Value) -> T {
    match T::deserialize(data) {
        Ok(v) => v,
        Err(e) => {
            // Only a `data` that is not an object gets here (fields are read leniently).
            tracing::warn!(evidence = %id, error = %e, "evidence data unreadable; showing common fields only");
            T::default()
        }
    }
}

impl Evidence {
    fn build(common: Common, data: &serde_json::Value) -> Self {
        let id = common.id;
        match common.kind {
            EvidenceKind::Email => Evidence::Email(EmailEvidence { data: Box::new(read(id, data)), common }),
            EvidenceKind::MailCluster => {
                Evidence::MailCluster(MailClusterEvidence { data: Box::new(read(id, data)), common })
            }
            EvidenceKind::Mailbox => {
                Evidence::Mailbox(MailboxEvidence { data: Box::new(read(id, data)), common })
            }
            EvidenceKind::MailboxConfiguration => {
                Evidence::MailboxConfiguration(MailboxConfigurationEvidence {
                    data: Box::new(read(id, data)),
                    common,
                })
            }
            EvidenceKind::User => Evidence::User(UserEvidence { data: Box::new(read(id, data)), common }),
            EvidenceKind::Url => Evidence::Url(UrlEvidence { data: Box::new(read(id, data)), common }),
            EvidenceKind::File => Evidence::File(FileEvidence { data: Box::new(read(id, data)), common }),
            EvidenceKind::Ip => Evidence::Ip(IpEvidence { data: Box::new(read(id, data)), common }),
        }
    }

    /// One evidence row as it is (an alert's evidence).
    pub fn from_row(row: &models::Evidence) -> Self {
        let common = Common {
            tenant_id: row.tenant_id.clone(),
            id: row.id,
            kind: row.kind,
            entity_key: row.entity_key.clone(),
            verdict: row.verdict,
            remediation_status: row.remediation_status,
            roles: parse_roles(&row.roles),
            created_at: row.created_at,
            alert_ids: vec![row.alert_id],
            alert_count: 1,
        };
        Self::build(common, &row.data)
    }
}

fn parse_roles(raw: &[String]) -> Vec<EvidenceRole> {
    let mut out = vec![];
    for r in raw {
        if let Ok(role) = r.trim().to_uppercase().parse::<EvidenceRole>() {
            if !out.contains(&role) {
                out.push(role);
            }
        }
    }
    out
}

/// How strong a verdict is when several alerts judge one entity: MALICIOUS > SUSPICIOUS >
/// NO_THREATS_FOUND > UNKNOWN (a definite "clean" says more than no verdict at all).
pub fn verdict_strength(v: Verdict) -> u8 {
    match v {
        Verdict::Malicious => 3,
        Verdict::Suspicious => 2,
        Verdict::NoThreatsFound => 1,
        Verdict::Unknown => 0,
    }
}

/// One entity of an incident: its alerts' rows merged (done by the database, see
/// `db::queries::evidence::entities_by_incidents`). It keeps its first row's id and time, the
/// strongest verdict, every role, the alerts naming it (at most 100 listed, all counted), and the
/// latest row's data and remediation state (the freshest view of the entity).
pub fn from_entity(e: &Entity) -> Evidence {
    let verdict = e
        .summary
        .verdicts
        .iter()
        .filter_map(|v| v.parse::<Verdict>().ok())
        .max_by_key(|v| verdict_strength(*v))
        .unwrap_or(e.latest.verdict);
    let common = Common {
        tenant_id: e.latest.tenant_id.clone(),
        id: e.summary.first_id,
        kind: e.latest.kind,
        entity_key: e.summary.entity_key.clone(),
        verdict,
        remediation_status: e.latest.remediation_status,
        roles: parse_roles(&e.summary.roles),
        created_at: e.summary.first_at,
        alert_ids: e.summary.alert_ids.clone(),
        alert_count: e.summary.alert_count,
    };
    Evidence::build(common, &e.latest.data)
}
