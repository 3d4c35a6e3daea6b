//! Direct-to-database fixtures for tests that need exact timestamps or states. Tests of the full loop
//! seed through `ingestAlerts` instead.

use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl;
use parapet::db::models::{Alert, Evidence, Incident};
use parapet::db::schema::{alerts, evidence, incidents};
use parapet::domain::enums::*;
use uuid::Uuid;

/// An incident with defaults a new one has; change fields before `insert_incident`.
pub fn incident(tenant: &str, name: &str, severity: Severity) -> Incident {
    Incident {
        display_name: name.into(),
        severity,
        last_modified_by: None,
        version: 1,
        ..Incident::new(tenant, Uuid::now_v7(), "", Utc::now())
    }
}

/// An alert in `incident` with defaults; change fields before `insert_alert`.
pub fn alert(inc: &Incident, title: &str, severity: Severity) -> Alert {
    let now = Utc::now();
    Alert {
        tenant_id: inc.tenant_id.clone(),
        id: Uuid::now_v7(),
        incident_id: inc.id,
        provider_alert_id: Uuid::new_v4().to_string(),
        service_source: "microsoftDefenderForOffice365".into(),
        detection_source: Some("microsoftDefenderForOffice365".into()),
        alert_policy: Some(title.into()),
        title: title.into(),
        description: None,
        severity,
        status: AlertStatus::New,
        classification: Classification::Unknown,
        determination: Determination::Unknown,
        assigned_to: None,
        category: Some("InitialAccess".into()),
        mitre_techniques: vec![],
        investigation_state: None,
        first_activity_at: Some(now),
        last_activity_at: Some(now),
        activity_at: now,
        created_at: now,
        last_update_at: now,
        resolved_at: None,
        correlation_kind: CorrelationKind::NewIncident,
        correlation_matched: serde_json::json!([]),
        correlation_skipped: serde_json::json!([]),
        correlated_at: now,
        mailboxes: vec![],
        malicious_evidence: 0,
        source_hash: None,
    }
}

/// Mailbox evidence for `alert`.
pub fn mailbox_evidence(a: &Alert, address: &str) -> Evidence {
    Evidence {
        tenant_id: a.tenant_id.clone(),
        id: Uuid::now_v7(),
        alert_id: a.id,
        kind: EvidenceKind::Mailbox,
        entity_key: format!("MAILBOX:{}", address.to_lowercase()),
        verdict: Verdict::Unknown,
        remediation_status: RemediationStatus::None,
        roles: vec![],
        data: serde_json::json!({ "primaryAddress": address, "upn": address, "displayName": address }),
        created_at: Utc::now(),
    }
}

/// Inserts an incident row as given (set `alert_count` yourself, or insert alerts and call `recount`).
pub async fn insert_incident(app: &super::TestApp, i: &Incident) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(incidents::table).values(i).execute(&mut conn).await.expect("insert incident");
}

/// Inserts alerts and sets their incidents' `alert_count`.
pub async fn insert_alerts(app: &super::TestApp, rows: &[Alert]) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(alerts::table).values(rows).execute(&mut conn).await.expect("insert alerts");
    diesel::sql_query(
        "UPDATE incidents i SET alert_count = (SELECT count(*) FROM alerts a \
         WHERE a.tenant_id = i.tenant_id AND a.incident_id = i.id)",
    )
    .execute(&mut conn)
    .await
    .expect("recount");
}

/// Inserts evidence rows.
pub async fn insert_evidence(app: &super::TestApp, rows: &[Evidence]) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(evidence::table).values(rows).execute(&mut conn).await.expect("insert evidence");
    refresh_rollup_inputs(&mut conn).await;
}

/// Sets each alert's mailboxes and malicious-evidence count from its keys and evidence, as ingestion
/// does, so roll-ups of seeded incidents count what was seeded.
async fn refresh_rollup_inputs(conn: &mut parapet::db::Conn) {
    diesel::sql_query(
        "UPDATE alerts a SET \
             mailboxes = COALESCE((SELECT array_agg(DISTINCT k.value ORDER BY k.value) FROM alert_keys k \
                 WHERE k.tenant_id = a.tenant_id AND k.alert_id = a.id AND k.kind = 'MAILBOX'), '{}'), \
             malicious_evidence = (SELECT count(*) FROM evidence e \
                 WHERE e.tenant_id = a.tenant_id AND e.alert_id = a.id AND e.verdict = 'MALICIOUS')",
    )
    .execute(conn)
    .await
    .expect("refresh roll-up inputs");
}

/// Shifts a timestamp by hours, for ordering tests.
pub fn hours_ago(h: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(h)
}

// ---- Read-side fixtures (queue, nested fields, isolation) --------------------------------------------

/// Creates the tenant row (as the first token naming it would) so rows can be inserted directly.
pub async fn tenant(app: &super::TestApp, id: &str) {
    let mut conn = app.state.pool.get().await.expect("conn");
    parapet::db::queries::tenants::ensure(&mut conn, id).await.expect("ensure tenant");
}

/// Evidence of any kind for `alert`, with `data` as ingestion would store it.
pub fn evidence_row(a: &Alert, kind: EvidenceKind, entity_key: &str, data: serde_json::Value) -> Evidence {
    Evidence {
        tenant_id: a.tenant_id.clone(),
        id: Uuid::now_v7(),
        alert_id: a.id,
        kind,
        entity_key: entity_key.into(),
        verdict: Verdict::Unknown,
        remediation_status: RemediationStatus::None,
        roles: vec![],
        data,
        created_at: Utc::now(),
    }
}

/// E-mail evidence (one copy: `recipient`) for `alert`.
pub fn email_evidence(a: &Alert, network_message_id: &str, recipient: &str, sender: &str) -> Evidence {
    evidence_row(
        a,
        EvidenceKind::Email,
        &format!("EMAIL:{}:{}", network_message_id.to_lowercase(), recipient.to_lowercase()),
        serde_json::json!({
            "networkMessageId": network_message_id,
            "recipient": recipient,
            "envelopeSender": sender,
            "headerFrom": sender,
            "subject": "Invoice overdue",
            "receivedAt": "2026-11-20T10:00:00Z",
            "direction": "INBOUND",
            "deliveryAction": "DELIVERED",
            "latestDeliveryLocation": "INBOX",
            "threatTypes": ["PHISH"],
            "urls": ["https://evil.example/login"],
            "attachments": [{ "name": "invoice.html", "sha256": "ab".repeat(32), "size": 1234 }]
        }),
    )
}

/// A correlation key of `alert` (value normalised to lower case, as ingestion stores it).
pub fn key(a: &Alert, kind: KeyKind, value: &str) -> parapet::db::models::AlertKey {
    parapet::db::models::AlertKey {
        tenant_id: a.tenant_id.clone(),
        alert_id: a.id,
        kind,
        value: value.to_lowercase(),
        activity_at: a.activity_at,
    }
}

/// Inserts alert keys.
pub async fn insert_keys(app: &super::TestApp, rows: &[parapet::db::models::AlertKey]) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(parapet::db::schema::alert_keys::table)
        .values(rows)
        .execute(&mut conn)
        .await
        .expect("insert keys");
    refresh_rollup_inputs(&mut conn).await;
}

/// A comment on an incident or an alert, written at `at`.
pub fn comment(
    tenant: &str,
    incident: Option<Uuid>,
    alert: Option<Uuid>,
    body: &str,
    at: DateTime<Utc>,
) -> parapet::db::models::Comment {
    parapet::db::models::Comment {
        tenant_id: tenant.into(),
        id: Uuid::now_v7(),
        incident_id: incident,
        alert_id: alert,
        author: "alice@contoso.com".into(),
        author_name: Some("Alice".into()),
        body: body.into(),
        created_at: at,
    }
}

/// Inserts comments.
pub async fn insert_comments(app: &super::TestApp, rows: &[parapet::db::models::Comment]) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(parapet::db::schema::comments::table)
        .values(rows)
        .execute(&mut conn)
        .await
        .expect("insert comments");
}

/// An activity-log entry about an incident (and maybe an alert), at `at`.
pub fn activity(
    tenant: &str,
    incident: Option<Uuid>,
    alert: Option<Uuid>,
    message: &str,
    at: DateTime<Utc>,
) -> parapet::db::models::Activity {
    parapet::db::models::Activity {
        tenant_id: tenant.into(),
        id: Uuid::now_v7(),
        incident_id: incident,
        alert_id: alert,
        actor: "alice@contoso.com".into(),
        kind: "UPDATED".into(),
        field: Some("status".into()),
        before: Some(serde_json::json!("ACTIVE")),
        after: Some(serde_json::json!("IN_PROGRESS")),
        message: message.into(),
        created_at: at,
    }
}

/// Inserts activity-log entries.
pub async fn insert_activity(app: &super::TestApp, rows: &[parapet::db::models::Activity]) {
    let mut conn = app.state.pool.get().await.expect("conn");
    diesel::insert_into(parapet::db::schema::activity::table)
        .values(rows)
        .execute(&mut conn)
        .await
        .expect("insert activity");
}
