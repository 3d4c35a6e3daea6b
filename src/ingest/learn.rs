//! Copies learned from alerts: an alert's e-mail evidence that names a copy the mail store does not hold
//! creates it (source `ALERT`), in the alert batch's transaction, so tenants that push only alerts can
//! still hunt. A mail-flow record for the same (network message id, recipient) later adopts it.

use super::input::EmailEvidenceInput;
use crate::db::queries::emails as q;
use crate::db::Conn;
use crate::domain::alert::PreparedAlert;
use crate::domain::email::{default_original_location, PreparedEmail};
use crate::domain::enums::{DeliveryAction, Direction, EmailSource, EvidenceKind};
use crate::error::AppResult;
use crate::mail::decide::event;
use crate::mail::ingest::{learn_lock, new_row, window_start};
use crate::mail::overrides;
use crate::mail::validate::MAX_SKEW_HOURS;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use uuid::Uuid;

/// Who the original-delivery event of a learned copy names.
pub const ALERT_ACTOR: &str = "alert evidence";

/// The copies the alerts' e-mail evidence names, one per (network message id, recipient), received
/// inside the hunting window. A copy's receive time is the evidence's, else the alert's first (or last)
/// activity, else now.
pub fn learnable(alerts: &[&PreparedAlert], now: DateTime<Utc>) -> Vec<PreparedEmail> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    for a in alerts {
        for e in a.evidence.iter().filter(|e| e.kind == EvidenceKind::Email) {
            let Ok(m) = serde_json::from_value::<EmailEvidenceInput>(e.data.clone()) else { continue };
            let (Some(nmid), Some(recipient)) = (m.network_message_id.clone(), m.recipient.clone()) else {
                continue;
            };
            let received_at = m.received_at.or(a.first_activity_at).or(a.last_activity_at).unwrap_or(now);
            if received_at < window_start(now) || received_at > now + Duration::hours(MAX_SKEW_HOURS) {
                continue;
            }
            if !seen.insert((nmid.clone(), recipient.clone())) {
                continue;
            }
            out.push(prepared(m, nmid, recipient, received_at));
        }
    }
    out
}

fn prepared(
    m: EmailEvidenceInput,
    nmid: String,
    recipient: String,
    received_at: DateTime<Utc>,
) -> PreparedEmail {
    let delivery_action = m.delivery_action.unwrap_or(DeliveryAction::Delivered);
    let original = m.original_delivery_location.unwrap_or(default_original_location(delivery_action));
    let mut threat_types = m.threat_types.unwrap_or_default();
    threat_types.sort();
    threat_types.dedup();
    // The evidence was validated and normalised when its alert was.
    let attachments = m
        .attachments
        .unwrap_or_default()
        .into_iter()
        .map(|a| crate::domain::email::Attachment { name: a.name, sha256: a.sha256, size: a.size })
        .collect();
    PreparedEmail {
        network_message_id: nmid,
        internet_message_id: m.internet_message_id,
        recipient,
        envelope_sender: m.envelope_sender,
        header_from: m.header_from,
        sender_display_name: m.sender_display_name,
        sender_ip: m.sender_ip,
        subject: m.subject,
        received_at,
        direction: m.direction.unwrap_or(Direction::Inbound),
        delivery_action,
        original_delivery_location: original,
        latest_delivery_location: m.latest_delivery_location.unwrap_or(original),
        threat_types,
        phish_confidence: m.phish_confidence,
        detection_technologies: m.detection_technologies.unwrap_or_default(),
        urls: m.urls.unwrap_or_default(),
        attachments,
        cluster_id: m.cluster_id,
        event_at: None,
        event_kind: None,
        event_actor: Some(ALERT_ACTOR.to_string()),
        event_reason: None,
    }
}

/// Stores the copies no copy of the tenant already stands for, with their original-delivery events;
/// returns how many it created. Runs in the alert batch's transaction, holding the tenant's learning
/// lock alone so no mail-flow batch delivers the same copy unseen meanwhile.
pub async fn learn(
    conn: &mut Conn,
    tenant_id: &str,
    copies: &[PreparedEmail],
    now: DateTime<Utc>,
) -> AppResult<usize> {
    if copies.is_empty() {
        return Ok(0);
    }
    // Copies already stored (committed, as copies stay until retention) need no lock at all.
    let since = window_start(now) - Duration::days(1);
    let nmids: Vec<String> = copies.iter().map(|c| c.network_message_id.clone()).collect();
    let recipients: Vec<String> = copies.iter().map(|c| c.recipient.clone()).collect();
    let stored: std::collections::HashSet<(String, String)> =
        q::by_copies(conn, tenant_id, &nmids, &recipients, since)
            .await?
            .into_iter()
            .map(|e| (e.network_message_id, e.recipient))
            .collect();
    let copies: Vec<&PreparedEmail> = copies
        .iter()
        .filter(|c| !stored.contains(&(c.network_message_id.clone(), c.recipient.clone())))
        .collect();
    if copies.is_empty() {
        return Ok(0);
    }
    q::learn_lock(conn, learn_lock(tenant_id), true).await?;
    let mut rows: Vec<_> = copies.iter().map(|p| new_row(tenant_id, p, EmailSource::Alert, now)).collect();
    let used = overrides::apply(conn, tenant_id, &mut rows.iter_mut().collect::<Vec<_>>(), now).await?;
    let inserted = q::insert_learned(conn, &rows, since).await?;
    let events: Vec<_> = inserted
        .iter()
        .map(|r| {
            let mut e = event(
                r,
                crate::domain::enums::EmailEventKind::OriginalDelivery,
                r.received_at,
                None,
                r.original_delivery_location,
                ALERT_ACTOR,
                None,
                now,
            );
            e.reason = Some("learned from an alert's e-mail evidence".into());
            e
        })
        .collect();
    q::insert_events(conn, &events).await?;
    let entry_ids: Vec<Uuid> = inserted.iter().filter_map(|r| used.get(&r.id)).flatten().copied().collect();
    crate::allowblock::touch(conn, tenant_id, &entry_ids, now).await?;
    Ok(inserted.len())
}
