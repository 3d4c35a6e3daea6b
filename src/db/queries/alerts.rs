//! Alerts: single rows, the filtered and keyset-paginated alerts queue, and the per-incident reads the
//! loaders batch (first page of each incident's alerts, counts, roll-ups, impacted mailboxes).

use crate::db::models::Alert;
use crate::db::prepared::{column, IdRow};
use crate::db::queries::queue::{
    contains_pattern, first_per_parent, severity_rank_sql, Keyset, SortDir, TimeKeyset,
};
use crate::db::schema::{alert_keys, alerts};
use crate::db::Conn;
use crate::domain::enums::*;
use chrono::{DateTime, Utc};
use diesel::dsl::{count, count_star, sql};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// One alert of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Alert>> {
    alerts::table.find((tenant_id, id)).select(Alert::as_select()).first(conn).await.optional()
}

/// Inserts new alerts, skipping any whose providerAlertId (or id) is stored already; returns the ids it
/// inserted. Rows go in (service source, provider id) order, so two batches racing over the same ids wait
/// for each other in one order rather than deadlock.
pub async fn insert_new(conn: &mut Conn, rows: &mut [Alert]) -> QueryResult<Vec<Uuid>> {
    rows.sort_by(|a, b| {
        (&a.service_source, &a.provider_alert_id).cmp(&(&b.service_source, &b.provider_alert_id))
    });
    if rows.is_empty() {
        return Ok(vec![]);
    }
    use diesel::sql_types::{Int4, Jsonb, Uuid as SqlUuid};
    let rows = &*rows;
    let ids: Vec<IdRow> = crate::db::prepared::sql(
        "INSERT INTO alerts (tenant_id, id, incident_id, provider_alert_id, service_source, detection_source, \
                             alert_policy, title, description, severity, status, classification, determination, \
                             assigned_to, category, mitre_techniques, investigation_state, first_activity_at, \
                             last_activity_at, activity_at, created_at, last_update_at, resolved_at, \
                             correlation_kind, correlation_matched, correlation_skipped, correlated_at, mailboxes, \
                             malicious_evidence, source_hash) \
         SELECT u.tenant_id, u.id, u.incident_id, u.provider_alert_id, u.service_source, u.detection_source, \
                u.alert_policy, u.title, u.description, u.severity, u.status, u.classification, u.determination, \
                u.assigned_to, u.category, ARRAY(SELECT jsonb_array_elements_text(u.mitre)), \
                u.investigation_state, u.first_activity_at, u.last_activity_at, u.activity_at, u.created_at, \
                u.last_update_at, u.resolved_at, u.kind, u.matched, u.skipped, u.correlated_at, \
                ARRAY(SELECT jsonb_array_elements_text(u.mailboxes)), u.malicious, u.source_hash \
         FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
                     $15::text[], $16::jsonb[], $17::text[], $18::timestamptz[], $19::timestamptz[], \
                     $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::text[], \
                     $25::jsonb[], $26::jsonb[], $27::timestamptz[], $28::jsonb[], $29::int4[], $30::text[]) \
              WITH ORDINALITY \
              AS u(tenant_id, id, incident_id, provider_alert_id, service_source, detection_source, alert_policy, \
                   title, description, severity, status, classification, determination, assigned_to, category, \
                   mitre, investigation_state, first_activity_at, last_activity_at, activity_at, created_at, \
                   last_update_at, resolved_at, kind, matched, skipped, correlated_at, mailboxes, malicious, source_hash, ord) \
         ORDER BY u.ord \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind::<Array<Text>, _>(column(rows, |a| a.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(rows, |a| a.id))
    .bind::<Array<SqlUuid>, _>(column(rows, |a| a.incident_id))
    .bind::<Array<Text>, _>(column(rows, |a| a.provider_alert_id.as_str()))
    .bind::<Array<Text>, _>(column(rows, |a| a.service_source.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.detection_source.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.alert_policy.as_deref()))
    .bind::<Array<Text>, _>(column(rows, |a| a.title.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.description.as_deref()))
    .bind::<Array<Text>, _>(column(rows, |a| a.severity))
    .bind::<Array<Text>, _>(column(rows, |a| a.status))
    .bind::<Array<Text>, _>(column(rows, |a| a.classification))
    .bind::<Array<Text>, _>(column(rows, |a| a.determination))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.assigned_to.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.category.as_deref()))
    .bind::<Array<Jsonb>, _>(column(rows, |a| serde_json::json!(a.mitre_techniques)))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.investigation_state.as_deref()))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |a| a.first_activity_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |a| a.last_activity_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |a| a.activity_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |a| a.created_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |a| a.last_update_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |a| a.resolved_at))
    .bind::<Array<Text>, _>(column(rows, |a| a.correlation_kind))
    .bind::<Array<Jsonb>, _>(column(rows, |a| &a.correlation_matched))
    .bind::<Array<Jsonb>, _>(column(rows, |a| &a.correlation_skipped))
    .bind::<Array<Timestamptz>, _>(column(rows, |a| a.correlated_at))
    .bind::<Array<Jsonb>, _>(column(rows, |a| serde_json::json!(a.mailboxes)))
    .bind::<Array<Int4>, _>(column(rows, |a| a.malicious_evidence))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |a| a.source_hash.as_deref()))
    .load(conn)
    .await?;
    Ok(ids.into_iter().map(|r| r.id).collect())
}

/// Writes where correlation placed these alerts and why: incident, kind, matched and skipped keys.
pub async fn set_correlation_many(conn: &mut Conn, tenant_id: &str, rows: &[&Alert]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Jsonb, Text, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    crate::db::prepared::sql(
        "UPDATE alerts a SET incident_id = u.inc, correlation_kind = u.kind, correlation_matched = u.matched, \
             correlation_skipped = u.skipped \
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[]) AS u(id, inc, kind, matched, skipped) \
         WHERE a.tenant_id = $1 AND a.id = u.id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(column(rows, |a| a.id))
    .bind::<Array<SqlUuid>, _>(column(rows, |a| a.incident_id))
    .bind::<Array<Text>, _>(column(rows, |a| a.correlation_kind))
    .bind::<Array<Jsonb>, _>(column(rows, |a| &a.correlation_matched))
    .bind::<Array<Jsonb>, _>(column(rows, |a| &a.correlation_skipped))
    .execute(conn)
    .await?;
    Ok(())
}

/// The alerts sent before under any of these (service source, provider id) pairs. Both columns are
/// matched as lists so the unique index serves the lookup; the caller keeps the exact pairs.
pub async fn find_by_providers(
    conn: &mut Conn,
    tenant_id: &str,
    services: &[&str],
    provider_ids: &[&str],
) -> QueryResult<Vec<Alert>> {
    if provider_ids.is_empty() {
        return Ok(vec![]);
    }
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::service_source.eq_any(services))
        .filter(alerts::provider_alert_id.eq_any(provider_ids))
        .select(Alert::as_select())
        .load(conn)
        .await
}

/// The incident each of these alerts is in now.
pub async fn incidents_of(conn: &mut Conn, tenant_id: &str, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Uuid)>> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(ids))
        .select((alerts::id, alerts::incident_id))
        .load(conn)
        .await
}

/// Writes what a re-send may change: the source's own fields. Triage fields (status, owner,
/// classification) and the correlation record stay as they are.
pub async fn update_from_source(conn: &mut Conn, a: &Alert) -> QueryResult<()> {
    diesel::update(alerts::table.find((&a.tenant_id, a.id)))
        .set((
            alerts::detection_source.eq(&a.detection_source),
            alerts::alert_policy.eq(&a.alert_policy),
            alerts::title.eq(&a.title),
            alerts::description.eq(&a.description),
            alerts::severity.eq(a.severity),
            alerts::category.eq(&a.category),
            alerts::mitre_techniques.eq(&a.mitre_techniques),
            alerts::first_activity_at.eq(a.first_activity_at),
            alerts::last_activity_at.eq(a.last_activity_at),
            alerts::activity_at.eq(a.activity_at),
            alerts::last_update_at.eq(a.last_update_at),
            alerts::mailboxes.eq(&a.mailboxes),
            alerts::malicious_evidence.eq(a.malicious_evidence),
            alerts::source_hash.eq(&a.source_hash),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Which alerts the alerts queue shows. Empty lists mean "no constraint"; fields combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Any of these statuses.
    pub statuses: Vec<AlertStatus>,
    /// Any of these severities.
    pub severities: Vec<Severity>,
    /// Assigned to any of these (compared case-insensitively; give them lower-case).
    pub assigned_to: Vec<String>,
    /// From any of these service sources.
    pub service_sources: Vec<String>,
    /// From any of these detection sources.
    pub detection_sources: Vec<String>,
    /// Fired by any of these alert policies.
    pub alert_policies: Vec<String>,
    /// In any of these incidents.
    pub incident_ids: Vec<Uuid>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Title substring (case-insensitive), exact alert id, or exact provider alert id.
    pub search: Option<String>,
}

/// What the alerts queue is sorted by; the alert id breaks ties in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertSort {
    /// `created_at` (when Parapet received it).
    CreatedAt,
    /// Last activity, else first activity, else ingest time (the `activity_at` column, never null).
    LastActivityAt,
    /// Severity rank (UNKNOWN < INFORMATIONAL < LOW < MEDIUM < HIGH).
    Severity,
}

impl AlertSort {
    fn key_sql(self) -> String {
        match self {
            AlertSort::CreatedAt => "alerts.created_at".into(),
            AlertSort::LastActivityAt => "alerts.activity_at".into(),
            AlertSort::Severity => severity_rank_sql("alerts.severity"),
        }
    }

    /// Whether the key is a timestamp (carried as microseconds in a keyset).
    pub fn is_time(self) -> bool {
        !matches!(self, AlertSort::Severity)
    }

    /// The sort key of a row, as a keyset carries it.
    pub fn key_of(self, row: &Alert) -> i64 {
        match self {
            AlertSort::CreatedAt => row.created_at.timestamp_micros(),
            AlertSort::LastActivityAt => row.activity_at.timestamp_micros(),
            AlertSort::Severity => i64::from(row.severity.rank()),
        }
    }
}

fn filtered<'a>(tenant_id: &'a str, f: &'a AlertFilter) -> alerts::BoxedQuery<'a, Pg> {
    let mut q = alerts::table.filter(alerts::tenant_id.eq(tenant_id)).into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(alerts::status.eq_any(f.statuses.clone()));
    }
    if !f.severities.is_empty() {
        q = q.filter(alerts::severity.eq_any(f.severities.clone()));
    }
    if !f.assigned_to.is_empty() {
        q = q.filter(
            sql::<Bool>("lower(alerts.assigned_to) = ANY(")
                .bind::<Array<Text>, _>(f.assigned_to.clone())
                .sql(")"),
        );
    }
    if !f.service_sources.is_empty() {
        q = q.filter(alerts::service_source.eq_any(f.service_sources.clone()));
    }
    if !f.detection_sources.is_empty() {
        q = q.filter(alerts::detection_source.eq_any(f.detection_sources.clone()));
    }
    if !f.alert_policies.is_empty() {
        q = q.filter(alerts::alert_policy.eq_any(f.alert_policies.clone()));
    }
    if !f.incident_ids.is_empty() {
        q = q.filter(alerts::incident_id.eq_any(f.incident_ids.clone()));
    }
    if let Some(t) = f.created_after {
        q = q.filter(alerts::created_at.ge(t));
    }
    if let Some(t) = f.created_before {
        q = q.filter(alerts::created_at.lt(t));
    }
    if let Some(s) = f.search.as_deref() {
        let id = Uuid::parse_str(s).ok();
        q = q.filter(
            sql::<Bool>("(alerts.title ILIKE ")
                .bind::<Text, _>(contains_pattern(s))
                .sql(" OR alerts.id = ")
                .bind::<Nullable<diesel::sql_types::Uuid>, _>(id)
                .sql(" OR alerts.provider_alert_id = ")
                .bind::<Text, _>(s)
                .sql(")"),
        );
    }
    q
}

/// One page of the alerts queue: up to `limit` alerts matching `f`, in `sort`/`dir` order, after `after`.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    f: &AlertFilter,
    sort: AlertSort,
    dir: SortDir,
    after: Option<Keyset>,
    limit: i64,
) -> QueryResult<Vec<Alert>> {
    let key = sort.key_sql();
    let mut q = filtered(tenant_id, f);
    if let Some(k) = after {
        let head = format!("({key}, alerts.id) {} (", dir.after_op());
        if sort.is_time() {
            // A key out of chrono's range cannot come from a row: nothing lies after it.
            let Some(at) = k.as_time() else { return Ok(vec![]) };
            q = q.filter(
                sql::<Bool>(&head)
                    .bind::<Timestamptz, _>(at)
                    .sql(", ")
                    .bind::<diesel::sql_types::Uuid, _>(k.id)
                    .sql(")"),
            );
        } else {
            q = q.filter(
                sql::<Bool>(&head)
                    .bind::<BigInt, _>(k.key)
                    .sql(", ")
                    .bind::<diesel::sql_types::Uuid, _>(k.id)
                    .sql(")"),
            );
        }
    }
    let d = dir.sql();
    q.order_by(sql::<Bool>(&format!("{key} {d}, alerts.id {d}")))
        .limit(limit)
        .select(Alert::as_select())
        .load(conn)
        .await
}

/// How many alerts match `f` (the alerts queue's `totalCount`).
pub async fn count_matching(conn: &mut Conn, tenant_id: &str, f: &AlertFilter) -> QueryResult<i64> {
    filtered(tenant_id, f).select(count_star()).get_result(conn).await
}

/// Alerts created at or after `since` (the dashboard's "alerts in the last 24 hours").
pub async fn count_created_since(conn: &mut Conn, tenant_id: &str, since: DateTime<Utc>) -> QueryResult<i64> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::created_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

/// The first `limit` alerts (oldest first) of each of `incident_ids` after `after`, in one statement:
/// a window function numbers each incident's alerts and keeps the first `limit` of every one.
pub async fn page_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
    after: Option<TimeKeyset>,
    limit: i64,
) -> QueryResult<Vec<Alert>> {
    if incident_ids.is_empty() || limit <= 0 {
        return Ok(vec![]);
    }
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(first_per_parent(
            "alerts",
            "incident_id",
            tenant_id,
            incident_ids,
            after,
            limit,
            SortDir::Asc,
        ))
        .order_by((alerts::incident_id, alerts::created_at, alerts::id))
        .select(Alert::as_select())
        .load(conn)
        .await
}

/// Number of alerts of each of `incident_ids` (incidents without alerts are absent).
pub async fn count_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq_any(incident_ids))
        .group_by(alerts::incident_id)
        .select((alerts::incident_id, count_star()))
        .load(conn)
        .await
}

/// Alerts of one incident counted by status, severity and sources (the queue's roll-up columns).
#[derive(Debug, Clone)]
pub struct RollupRow {
    /// The incident.
    pub incident_id: Uuid,
    /// Alert status.
    pub status: AlertStatus,
    /// Alert severity.
    pub severity: Severity,
    /// Service source.
    pub service_source: String,
    /// Detection source.
    pub detection_source: Option<String>,
    /// Alerts with these values.
    pub count: i64,
}

/// Roll-up rows of each of `incident_ids`, in one statement.
pub async fn rollup_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
) -> QueryResult<Vec<RollupRow>> {
    let rows: Vec<(Uuid, AlertStatus, Severity, String, Option<String>, i64)> = alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::incident_id.eq_any(incident_ids))
        .group_by((
            alerts::incident_id,
            alerts::status,
            alerts::severity,
            alerts::service_source,
            alerts::detection_source,
        ))
        .select((
            alerts::incident_id,
            alerts::status,
            alerts::severity,
            alerts::service_source,
            alerts::detection_source,
            count_star(),
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(incident_id, status, severity, service_source, detection_source, count)| RollupRow {
            incident_id,
            status,
            severity,
            service_source,
            detection_source,
            count,
        })
        .collect())
}

/// Distinct `MAILBOX` keys of the alerts of each of `incident_ids` (impacted mailboxes).
pub async fn impacted_mailboxes_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    alert_keys::table
        .inner_join(
            alerts::table
                .on(alerts::tenant_id.eq(alert_keys::tenant_id).and(alerts::id.eq(alert_keys::alert_id))),
        )
        .filter(alert_keys::tenant_id.eq(tenant_id))
        .filter(alert_keys::kind.eq(KeyKind::Mailbox))
        .filter(alerts::incident_id.eq_any(incident_ids))
        .group_by(alerts::incident_id)
        .select((alerts::incident_id, count(alert_keys::value).aggregate_distinct()))
        .load(conn)
        .await
}
