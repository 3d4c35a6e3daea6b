//! The write step of a round: the new incidents, where each alert went (one statement per table),
//! the merges, then the re-sends, with their activity rows and events collected into the batch.

use super::decide::{Decided, Decision};
use super::{Batch, Placement, Skipped, Staged};
use crate::db::models::{Alert, AlertKey, Evidence, Incident};
use crate::db::queries::{alerts as alert_q, correlation as q};
use crate::db::Conn;
use crate::domain::activity::{kind, CORRELATION_ACTOR};
use crate::domain::alert::PreparedAlert;
use crate::domain::enums::{AlertStatus, Classification, CorrelationKind, Determination, IncidentStatus};
use crate::domain::keys::Key;
use crate::error::AppResult;
use crate::events::NewEvent;
use crate::incidents;
use crate::incidents::merge::merge_into;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Writes what the round decided and returns each item's placement, in item order (`round_len` items).
pub(super) async fn write(
    conn: &mut Conn,
    tid: &str,
    round_len: usize,
    decision: Decision<'_>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Vec<Placement>> {
    let Decision { unchanged, created, merges, decided, hashes, incidents } = decision;
    // New incidents; where the staged alerts went (before the merges, which move only alerts stored
    // before this round, as each alert of the round records its own placement); the merges; then re-sends.
    let new_rows: Vec<Incident> = created
        .iter()
        .filter_map(|id| incidents.get(id))
        .map(|i| Incident { status: IncidentStatus::Active, ..i.clone() })
        .collect();
    q::insert_incidents(conn, &new_rows).await?;
    let mut rows = Vec::with_capacity(decided.len());
    for d in &decided {
        let final_incident = batch.resolve(d.incident_id);
        let kind = if final_incident != d.incident_id && d.existing.is_none() {
            CorrelationKind::Merged
        } else {
            d.kind
        };
        rows.push(alert_row(
            tid,
            d.alert_id,
            final_incident,
            d.p,
            d.at,
            now,
            kind,
            &d.matched,
            &d.skipped,
            d.existing.as_ref(),
            // Written for re-sends only (a staged alert's row has it already).
            hashes[d.index].clone(),
        )?);
    }
    let placed: Vec<&Alert> = decided
        .iter()
        .zip(&rows)
        .filter(|(d, row)| d.staged.is_some_and(|s| !as_staged(s, d, row)))
        .map(|(_, row)| row)
        .collect();
    alert_q::set_correlation_many(conn, tid, &placed).await?;
    let mut targets = BTreeSet::new();
    for m in &merges {
        let mut scratch = incidents.get(&m.target).cloned().unwrap_or_else(|| m.source.clone());
        merge_into(
            conn,
            &mut scratch,
            &m.source,
            &m.shared,
            CORRELATION_ACTOR,
            now,
            &mut batch.log,
            &mut batch.events,
        )
        .await?;
        targets.insert(batch.resolve(m.target));
    }
    for id in targets {
        if let Some(t) = incidents.get(&id) {
            // The owner, classification, determination and tags the target took from the others.
            q::save_merged_fields(conn, t).await?;
        }
    }

    let mut keys = vec![];
    let mut placements: Vec<Option<Placement>> = vec![None; round_len];
    for (i, p) in unchanged {
        placements[i] = Some(p);
    }
    for (d, row) in decided.into_iter().zip(rows) {
        let final_incident = row.incident_id;
        let kind = row.correlation_kind;
        match &d.existing {
            Some(e) => {
                alert_q::update_from_source(conn, &row).await?;
                q::delete_evidence_and_keys(conn, tid, d.alert_id).await?;
                let changed = alert_changes(e, &row);
                batch.events.push(NewEvent::alert_changed(
                    final_incident,
                    d.alert_id,
                    CORRELATION_ACTOR,
                    &changed,
                ));
                let (ev, ks) = evidence_rows(tid, d.alert_id, d.p, d.at, now);
                batch.evidence.extend(ev);
                keys.extend(ks);
            }
            None => {
                let how = match d.kind {
                    CorrelationKind::NewIncident => "created this incident",
                    _ => "joined",
                };
                let mut message = format!("Alert \"{}\" {how}", d.p.title);
                if !d.matched.is_empty() {
                    let ks: Vec<String> =
                        d.matched.iter().map(|k| format!("{} {}", k.kind, k.value)).collect();
                    message.push_str(&format!(" (shared keys: {})", ks.join(", ")));
                }
                batch.log.push(incidents::log_entry(
                    CORRELATION_ACTOR,
                    tid,
                    Some(final_incident),
                    Some(d.alert_id),
                    kind::ALERT_CORRELATED,
                    message,
                    now,
                ));
                batch.events.push(NewEvent::alert_correlated(
                    final_incident,
                    d.alert_id,
                    CORRELATION_ACTOR,
                    kind,
                    &d.matched,
                ));
            }
        }
        placements[d.index] = Some(Placement {
            alert_id: d.alert_id,
            incident_id: d.incident_id,
            created: d.existing.is_none(),
            kind,
            matched: d.matched,
        });
    }
    q::insert_keys(conn, &keys).await?;
    // Every item was decided or found unchanged.
    Ok(placements.into_iter().flatten().collect())
}

/// Whether a staged alert ended where `stage` put it: in the incident it created, nothing matched or skipped.
fn as_staged(s: Staged, d: &Decided, row: &Alert) -> bool {
    row.incident_id == s.incident_id
        && row.correlation_kind == CorrelationKind::NewIncident
        && d.matched.is_empty()
        && d.skipped.is_empty()
}

/// Names of the alert fields a re-send changed.
fn alert_changes(a: &Alert, b: &Alert) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 8] = [
        ("title", a.title != b.title),
        ("description", a.description != b.description),
        ("severity", a.severity != b.severity),
        ("category", a.category != b.category),
        ("mitreTechniques", a.mitre_techniques != b.mitre_techniques),
        ("alertPolicy", a.alert_policy != b.alert_policy),
        ("firstActivityAt", a.first_activity_at != b.first_activity_at),
        ("lastActivityAt", a.last_activity_at != b.last_activity_at),
    ];
    let mut out: Vec<&'static str> = pairs.iter().filter(|(_, d)| *d).map(|(n, _)| *n).collect();
    out.push("evidence");
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn alert_row(
    tid: &str,
    id: Uuid,
    incident_id: Uuid,
    p: &PreparedAlert,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    kind: CorrelationKind,
    matched: &[Key],
    skipped: &[Skipped],
    existing: Option<&Alert>,
    source_hash: Option<String>,
) -> AppResult<Alert> {
    let base = Alert {
        tenant_id: tid.to_string(),
        id,
        incident_id,
        provider_alert_id: p.provider_alert_id.clone(),
        service_source: p.service_source.clone(),
        detection_source: p.detection_source.clone(),
        alert_policy: p.alert_policy.clone(),
        title: p.title.clone(),
        description: p.description.clone(),
        severity: p.severity,
        status: AlertStatus::New,
        classification: Classification::Unknown,
        determination: Determination::Unknown,
        assigned_to: None,
        category: p.category.clone(),
        mitre_techniques: p.mitre_techniques.clone(),
        investigation_state: None,
        first_activity_at: p.first_activity_at,
        last_activity_at: p.last_activity_at,
        activity_at: at,
        created_at: now,
        last_update_at: now,
        resolved_at: None,
        correlation_kind: kind,
        correlation_matched: serde_json::to_value(matched)?,
        correlation_skipped: serde_json::to_value(skipped)?,
        correlated_at: now,
        mailboxes: p.mailboxes(),
        malicious_evidence: p.malicious_evidence(),
        source_hash,
    };
    Ok(match existing {
        None => base,
        Some(e) => Alert { created_at: e.created_at, ..base },
    })
}

pub(super) fn evidence_rows(
    tid: &str,
    alert_id: Uuid,
    p: &PreparedAlert,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<Evidence>, Vec<AlertKey>) {
    let ev = p
        .evidence
        .iter()
        .map(|e| Evidence {
            tenant_id: tid.to_string(),
            id: Uuid::now_v7(),
            alert_id,
            kind: e.kind,
            entity_key: e.entity_key.clone(),
            verdict: e.verdict,
            remediation_status: e.remediation_status,
            roles: e.roles.clone(),
            data: e.data.clone(),
            created_at: now,
        })
        .collect();
    let keys = p
        .keys
        .iter()
        .map(|k| AlertKey {
            tenant_id: tid.to_string(),
            alert_id,
            kind: k.kind,
            value: k.value.clone(),
            activity_at: at,
        })
        .collect();
    (ev, keys)
}
