//! The tenant allow/block list applied to copies as they are written: one lookup per batch, then each
//! copy's verdict after the list (a block makes it phish with high confidence or malware and says so in
//! its detection technologies and override source; an allow clears spam and normal phish only).

use crate::allowblock::{active_matches, verdict_for, CopyFacts, Decision, Probe};
use crate::db::models::Email;
use crate::db::Conn;
use crate::domain::email::{lookup_key, LookupKind};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// The list's facts of a stored row.
pub fn facts(row: &Email) -> CopyFacts {
    let attachment_sha256s = row
        .attachments
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("sha256").and_then(|s| s.as_str()).map(str::to_string))
        .collect();
    CopyFacts {
        envelope_sender: row.envelope_sender.clone(),
        header_from: row.header_from.clone(),
        sender_domains: row.envelope_sender_domain.iter().chain(&row.sender_domain).cloned().collect(),
        urls: row.urls.clone(),
        url_hosts: row.url_domains.clone(),
        attachment_sha256s,
        sender_ip: row.sender_ip.clone(),
        threat_types: row.threat_types.clone(),
        phish_confidence: row.phish_confidence,
    }
}

/// Applies the list to `rows` (changing their verdicts in place) and returns, per row id, the entries it
/// used: the caller records their use for the rows it really writes (`allowblock::touch`).
pub async fn apply(
    conn: &mut Conn,
    tenant_id: &str,
    rows: &mut [&mut Email],
    now: DateTime<Utc>,
) -> AppResult<HashMap<Uuid, Vec<Uuid>>> {
    let all: Vec<CopyFacts> = rows.iter().map(|r| facts(r)).collect();
    let entries = active_matches(conn, tenant_id, &Probe::from_copies(&all), now).await?;
    let mut used = HashMap::new();
    if entries.is_empty() {
        return Ok(used);
    }
    for (row, facts) in rows.iter_mut().zip(&all) {
        let o = verdict_for(&entries, facts);
        if matches!(o.decision, Decision::None | Decision::AllowOverruled) {
            continue;
        }
        row.threat_types = o.threat_types;
        row.phish_confidence = o.phish_confidence;
        for t in o.detection_technologies {
            if !row.detection_technologies.iter().any(|d| d == t) {
                row.detection_technologies.push(t.to_string());
                // Hunting by detection technology finds the copies the list marked, too.
                row.keys.push(lookup_key(tenant_id, LookupKind::DetectionTechnology, &t.to_lowercase()));
            }
        }
        row.keys.sort_unstable();
        row.keys.dedup();
        row.override_source = o.source.map(str::to_string);
        used.insert(row.id, o.entry_ids);
    }
    Ok(used)
}
