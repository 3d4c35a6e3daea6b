//! Incidents.

use crate::db::models::Incident;
use crate::db::schema::incidents;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// One incident of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Incident>> {
    incidents::table.find((tenant_id, id)).select(Incident::as_select()).first(conn).await.optional()
}

/// What an incident's alerts add up to: the input of its generated name, severity and priority.
#[derive(Debug, Clone, QueryableByName)]
pub struct IncidentStats {
    /// Number of alerts.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub alerts: i32,
    /// Alerts not resolved.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub open_alerts: i32,
    /// Highest alert severity as a rank (0 UNKNOWN .. 4 HIGH).
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub severity_rank: i32,
    /// Distinct alert titles.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub titles: i32,
    /// One of the titles (the only one when `titles == 1`).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub a_title: Option<String>,
    /// Distinct alert policies.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub policies: i32,
    /// Distinct service sources.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub sources: i32,
    /// Distinct MITRE categories.
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub categories: Vec<String>,
    /// Distinct impacted mailboxes (MAILBOX keys).
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub mailboxes: i32,
    /// One of the mailboxes (the only one when `mailboxes == 1`).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub a_mailbox: Option<String>,
    /// Evidence with a MALICIOUS verdict.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub malicious_evidence: i32,
}

/// Aggregates of an incident's alerts.
pub async fn stats(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<IncidentStats> {
    diesel::sql_query(
        "WITH a AS (SELECT * FROM alerts WHERE tenant_id = $1 AND incident_id = $2), \
              m AS (SELECT DISTINCT k.value FROM alert_keys k JOIN a ON k.tenant_id = $1 AND k.alert_id = a.id \
                    WHERE k.kind = 'MAILBOX') \
         SELECT (SELECT count(*) FROM a)::int4 AS alerts, \
                (SELECT count(*) FROM a WHERE status <> 'RESOLVED')::int4 AS open_alerts, \
                (SELECT COALESCE(max(CASE severity WHEN 'HIGH' THEN 4 WHEN 'MEDIUM' THEN 3 WHEN 'LOW' THEN 2 \
                        WHEN 'INFORMATIONAL' THEN 1 ELSE 0 END), 0) FROM a)::int4 AS severity_rank, \
                (SELECT count(DISTINCT title) FROM a)::int4 AS titles, \
                (SELECT min(title) FROM a) AS a_title, \
                (SELECT count(DISTINCT alert_policy) FROM a)::int4 AS policies, \
                (SELECT count(DISTINCT service_source) FROM a)::int4 AS sources, \
                (SELECT COALESCE(array_agg(DISTINCT category) FILTER (WHERE category IS NOT NULL), '{}') FROM a) \
                    AS categories, \
                (SELECT count(*) FROM m)::int4 AS mailboxes, \
                (SELECT min(value) FROM m) AS a_mailbox, \
                (SELECT count(*) FROM evidence e JOIN a ON e.tenant_id = $1 AND e.alert_id = a.id \
                    WHERE e.verdict = 'MALICIOUS')::int4 AS malicious_evidence",
    )
    .bind::<diesel::sql_types::Text, _>(tenant_id)
    .bind::<diesel::sql_types::Uuid, _>(id)
    .get_result(conn)
    .await
}

/// Writes the derived fields of an incident and moves its version on.
pub async fn save_derived(conn: &mut Conn, i: &Incident) -> QueryResult<()> {
    diesel::update(incidents::table.find((&i.tenant_id, i.id)))
        .set((
            incidents::display_name.eq(&i.display_name),
            incidents::severity.eq(i.severity),
            incidents::status.eq(i.status),
            incidents::assigned_to.eq(&i.assigned_to),
            incidents::classification.eq(i.classification),
            incidents::determination.eq(i.determination),
            incidents::custom_tags.eq(&i.custom_tags),
            incidents::priority_score.eq(i.priority_score),
            incidents::priority_reasons.eq(&i.priority_reasons),
            incidents::alert_count.eq(i.alert_count),
            incidents::resolved_at.eq(i.resolved_at),
            incidents::last_update_at.eq(i.last_update_at),
            incidents::last_modified_by.eq(&i.last_modified_by),
            incidents::version.eq(i.version),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
