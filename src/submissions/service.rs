//! Filing a submission: validate the item, gather what Parapet knows of it (list entries, verdicts,
//! delivery), evaluate, and store the submission with the entry it creates, if any.

use super::result::{evaluate, Facts, Threat};
use crate::allowblock::entries::create_in;
use crate::allowblock::{active_matches, CopyFacts, ExpiryRequest, NewEntry, Probe};
use crate::auth::{Caller, Role};
use crate::db::models::{Email, Submission};
use crate::db::queries::explorer::{self, Hunt};
use crate::db::queries::{emails, submissions as q};
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::email::{lookup_key, url_host, LookupKind};
use crate::domain::enums::*;
use crate::domain::values::{normalise_url, sha256};
use crate::error::{AppError, AppResult};
use crate::mail::ingest::window_start;
use crate::mail::overrides;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use uuid::Uuid;

/// The allow/block entry a submission asks for.
#[derive(Debug, Clone)]
pub struct EntryRequest {
    /// Allow or block.
    pub action: AllowBlockAction,
    /// Expiry date (see the list's rules).
    pub expires_at: Option<DateTime<Utc>>,
    /// Never expire (blocks only).
    pub never_expire: Option<bool>,
    /// Notes (default: names the submission).
    pub notes: Option<String>,
}

/// A submission as a person files it.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// What is reported.
    pub content_type: SubmissionContentType,
    /// The e-mail copy (for `EMAIL`).
    pub email_id: Option<Uuid>,
    /// The URL (for `URL`).
    pub url: Option<String>,
    /// The file's SHA-256 (for `FILE`).
    pub file_sha256: Option<String>,
    /// What the submitter says it is.
    pub category: SubmissionCategory,
    /// The entry to create (admins only).
    pub create_entry: Option<EntryRequest>,
}

/// The item, validated, and the list entry it would become.
enum Item {
    Email(Box<Email>),
    Url(String),
    File(String),
}

fn only(content: SubmissionContentType, given: &[(&str, bool)]) -> AppResult<()> {
    for (name, present) in given {
        if *present {
            return Err(AppError::bad(format!("{name} does not go with contentType {content}")));
        }
    }
    Ok(())
}

async fn item(conn: &mut Conn, tenant_id: &str, r: &SubmitRequest, now: DateTime<Utc>) -> AppResult<Item> {
    use SubmissionContentType as C;
    match r.content_type {
        C::Email => {
            only(r.content_type, &[("url", r.url.is_some()), ("fileSha256", r.file_sha256.is_some())])?;
            let id = r.email_id.ok_or_else(|| AppError::bad("emailId is required for contentType EMAIL"))?;
            let row = emails::find(conn, tenant_id, id, window_start(now)).await?.ok_or_else(|| {
                AppError::NotFound(format!("no e-mail {id} in the last 30 days of this tenant's mail"))
            })?;
            Ok(Item::Email(Box::new(row)))
        }
        C::Url => {
            only(
                r.content_type,
                &[("emailId", r.email_id.is_some()), ("fileSha256", r.file_sha256.is_some())],
            )?;
            let url = r.url.as_deref().ok_or_else(|| AppError::bad("url is required for contentType URL"))?;
            Ok(Item::Url(normalise_url("url", Some(url)).map_err(AppError::BadInput)?))
        }
        C::File => {
            only(r.content_type, &[("emailId", r.email_id.is_some()), ("url", r.url.is_some())])?;
            let s = r
                .file_sha256
                .as_deref()
                .ok_or_else(|| AppError::bad("fileSha256 is required for contentType FILE"))?;
            Ok(Item::File(sha256("fileSha256", Some(s)).map_err(AppError::BadInput)?))
        }
    }
}

fn strength(threats: &[ThreatType], confidence: Option<PhishConfidence>) -> Threat {
    if threats.contains(&ThreatType::Malware)
        || (threats.contains(&ThreatType::Phish) && confidence == Some(PhishConfidence::High))
    {
        Threat::Malicious
    } else if threats.contains(&ThreatType::Phish) {
        Threat::Suspicious
    } else if threats.contains(&ThreatType::Spam) {
        Threat::Spam
    } else {
        Threat::Clean
    }
}

fn verdict_strength(verdicts: &[String]) -> Option<Threat> {
    verdicts
        .iter()
        .filter_map(|v| match v.as_str() {
            "MALICIOUS" => Some(Threat::Malicious),
            "SUSPICIOUS" => Some(Threat::Suspicious),
            "NO_THREATS_FOUND" => Some(Threat::Clean),
            _ => None,
        })
        .max()
}

/// What Parapet knows of the item.
async fn facts(conn: &mut Conn, tenant_id: &str, item: &Item, now: DateTime<Utc>) -> AppResult<Facts> {
    let (copy, entity_key) = match item {
        Item::Email(e) => {
            (overrides::facts(e), crate::domain::email::entity_key(&e.network_message_id, &e.recipient))
        }
        Item::Url(u) => (
            CopyFacts {
                urls: vec![u.clone()],
                url_hosts: url_host(u).into_iter().collect(),
                ..CopyFacts::default()
            },
            format!("URL:{u}"),
        ),
        Item::File(h) => {
            (CopyFacts { attachment_sha256s: vec![h.clone()], ..CopyFacts::default() }, format!("FILE:{h}"))
        }
    };
    let keys = copy.keys();
    let entries = active_matches(conn, tenant_id, &Probe::from_copies([&copy]), now).await?;
    let named = |action| {
        entries
            .iter()
            .find(|e| e.action == action && keys.holds(e.kind, &e.value))
            .map(|e| format!("{} {} ({})", e.kind, e.value, e.id))
    };
    let mut f = Facts {
        blocked_by: named(AllowBlockAction::Block),
        allowed_by: named(AllowBlockAction::Allow),
        ..Facts::default()
    };
    let from_evidence = verdict_strength(&q::evidence_verdicts(conn, tenant_id, &entity_key).await?);
    match item {
        Item::Email(e) => {
            // The verdict before the list: the list's own part is reported as the policy.
            f.threat = Some(
                strength(&e.threat_types, e.phish_confidence).max(from_evidence.unwrap_or(Threat::Clean)),
            );
            f.delivered = matches!(
                e.latest_delivery_location,
                DeliveryLocation::Inbox | DeliveryLocation::OnPremExternal
            );
            f.location = Some(e.latest_delivery_location.to_string());
        }
        Item::Url(_) | Item::File(_) => {
            let mut hunt = Hunt { from: window_start(now), ..Hunt::default() };
            match item {
                Item::Url(u) => {
                    hunt.keys = url_host(u)
                        .map(|h| vec![lookup_key(tenant_id, LookupKind::UrlHost, &h)])
                        .unwrap_or_default();
                    hunt.url_prefix = Some(u.clone());
                }
                Item::File(h) => hunt.keys = vec![lookup_key(tenant_id, LookupKind::AttachmentSha256, h)],
                Item::Email(_) => {}
            }
            let (copies, _) = explorer::count(conn, tenant_id, &hunt).await?;
            let threats =
                explorer::aggregate(conn, tenant_id, &hunt, explorer::GroupBy::ThreatType, 3).await?;
            let threat_types: Vec<ThreatType> = threats.iter().filter_map(|b| b.key.parse().ok()).collect();
            let from_copies = (copies > 0).then(|| match strength(&threat_types, None) {
                Threat::Clean => Threat::Clean,
                t if threat_types.contains(&ThreatType::Malware) => t,
                _ => Threat::Suspicious,
            });
            f.threat = from_copies.max(from_evidence);
            hunt.latest_locations = vec![DeliveryLocation::Inbox.to_string()];
            f.delivered = explorer::count(conn, tenant_id, &hunt).await?.0 > 0;
        }
    }
    Ok(f)
}

/// The list entry a submission of `item` asks for.
fn entry_for(item: &Item, req: &EntryRequest, submission: Uuid) -> AppResult<NewEntry> {
    let (kind, value) = match item {
        Item::Email(e) => {
            let sender =
                e.header_from.clone().or_else(|| e.envelope_sender.clone()).ok_or_else(|| {
                    AppError::bad("createEntry: this e-mail names no sender to allow or block")
                })?;
            (AllowBlockKind::Sender, sender)
        }
        Item::Url(u) => (AllowBlockKind::Url, u.clone()),
        Item::File(h) => (AllowBlockKind::FileHash, h.clone()),
    };
    Ok(NewEntry {
        kind,
        value,
        action: req.action,
        notes: Some(req.notes.clone().unwrap_or_else(|| format!("Created by submission {submission}"))),
        expiry: ExpiryRequest { expires_at: req.expires_at, never_expire: req.never_expire },
    })
}

/// Files a submission for the caller (readers and above; `createEntry` needs an admin) and returns it,
/// evaluated.
pub async fn submit(pool: &Pool, caller: &Caller, req: SubmitRequest) -> AppResult<Submission> {
    caller.require(Role::Reader)?;
    if req.create_entry.is_some() && !caller.has(Role::Admin) {
        return Err(AppError::Forbidden(
            "createEntry needs the admin role (allow/block list writes); submit without it".into(),
        ));
    }
    let tid = caller.tenant_id.as_str();
    retry_transient(pool, "submit", async |conn| {
        conn.transaction::<_, AppError, _>(async |conn| {
            let now = Utc::now();
            let item = item(conn, tid, &req, now).await?;
            let facts = facts(conn, tid, &item, now).await?;
            let outcome = evaluate(req.category, &facts);
            let id = Uuid::now_v7();
            let entry = match &req.create_entry {
                Some(e) => Some(create_in(conn, caller, &entry_for(&item, e, id)?).await?.id),
                None => None,
            };
            let (email_id, nmid, recipient, sender, subject, url, file) = match &item {
                Item::Email(e) => (
                    Some(e.id),
                    Some(e.network_message_id.clone()),
                    Some(e.recipient.clone()),
                    e.header_from.clone().or_else(|| e.envelope_sender.clone()),
                    e.subject.clone(),
                    None,
                    None,
                ),
                Item::Url(u) => (None, None, None, None, None, Some(u.clone()), None),
                Item::File(h) => (None, None, None, None, None, None, Some(h.clone())),
            };
            let row = Submission {
                tenant_id: tid.to_string(),
                id,
                content_type: req.content_type,
                category: req.category,
                email_id,
                network_message_id: nmid,
                recipient,
                sender,
                subject,
                url,
                file_sha256: file,
                submitted_by: caller.sub.clone(),
                submitted_by_name: Some(caller.name.clone()),
                status: SubmissionStatus::Completed,
                result_category: Some(outcome.category),
                result: Some(outcome.result),
                result_detail: Some(outcome.detail),
                allow_block_entry_id: entry,
                created_at: now,
                completed_at: Some(now),
            };
            q::insert(conn, &row).await?;
            Ok(row)
        })
        .await
    })
    .await
}
