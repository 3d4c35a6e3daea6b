//! Incidents: single rows, the filtered and keyset-paginated queue, its counts, and the dashboard
//! summary. Every query is filtered by tenant here, so no caller can forget it.

use crate::db::models::Incident;
use crate::db::prepared::column;
use crate::db::queries::queue::{contains_pattern, severity_rank_sql, Keyset, SortDir};
use crate::db::schema::incidents;
use crate::db::Conn;
use crate::domain::enums::*;
use chrono::{DateTime, Utc};
use diesel::dsl::{count, count_star, sql};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use std::sync::LazyLock;
use uuid::Uuid;

/// One incident of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Incident>> {
    incidents::table.find((tenant_id, id)).select(Incident::as_select()).first(conn).await.optional()
}

/// Locks the tenant's incidents among `ids` (`FOR UPDATE`, in id order, the order every writer of
/// several incidents locks them in, so that two writers never wait on each other crosswise) and returns
/// them as they are now. Missing ids are simply absent.
pub async fn lock_incidents(conn: &mut Conn, tenant_id: &str, ids: &[Uuid]) -> QueryResult<Vec<Incident>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    incidents::table
        .filter(incidents::tenant_id.eq(tenant_id))
        .filter(incidents::id.eq_any(ids))
        .order(incidents::id.asc())
        .for_update()
        .select(Incident::as_select())
        .load(conn)
        .await
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

impl IncidentStats {
    /// The aggregates of an incident with no alerts.
    pub fn empty() -> Self {
        Self {
            alerts: 0,
            open_alerts: 0,
            severity_rank: 0,
            titles: 0,
            a_title: None,
            policies: 0,
            sources: 0,
            categories: vec![],
            mailboxes: 0,
            a_mailbox: None,
            malicious_evidence: 0,
        }
    }
}

/// Aggregates of an incident's alerts.
pub async fn stats(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<IncidentStats> {
    Ok(stats_many(conn, tenant_id, &[id]).await?.pop().map_or_else(IncidentStats::empty, |r| r.stats))
}

/// An incident's id with the aggregates of its alerts.
#[derive(Debug, Clone, QueryableByName)]
pub struct IncidentStatsRow {
    /// The incident.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub incident_id: Uuid,
    /// Its aggregates.
    #[diesel(embed)]
    pub stats: IncidentStats,
}

/// The text of [`stats_many`]; built once, since its severity rank comes from [`severity_rank_sql`].
static STATS_MANY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH a AS (SELECT incident_id, status, severity, title, alert_policy, service_source, category, \
                               mailboxes, malicious_evidence \
                        FROM alerts WHERE tenant_id = $1 AND incident_id = ANY($2)), \
                  m AS (SELECT a.incident_id, count(DISTINCT v) AS n, min(v) AS one \
                        FROM a CROSS JOIN LATERAL unnest(a.mailboxes) AS v GROUP BY a.incident_id), \
                  s AS (SELECT incident_id, count(*)::int4 AS alerts, \
                               (count(*) FILTER (WHERE status <> 'RESOLVED'))::int4 AS open_alerts, \
                               COALESCE(max({rank}), 0)::int4 AS severity_rank, \
                               count(DISTINCT title)::int4 AS titles, min(title) AS a_title, \
                               count(DISTINCT alert_policy)::int4 AS policies, \
                               count(DISTINCT service_source)::int4 AS sources, \
                               COALESCE(array_agg(DISTINCT category) FILTER (WHERE category IS NOT NULL), '{{}}') AS categories, \
                               sum(malicious_evidence)::int4 AS malicious_evidence \
                        FROM a GROUP BY incident_id) \
             SELECT s.incident_id, s.alerts, s.open_alerts, s.severity_rank, s.titles, s.a_title, s.policies, s.sources, \
                    s.categories, COALESCE(m.n, 0)::int4 AS mailboxes, m.one AS a_mailbox, s.malicious_evidence \
             FROM s LEFT JOIN m ON m.incident_id = s.incident_id",
        rank = severity_rank_sql("severity")
    )
});

/// Aggregates of several incidents' alerts in one statement (incidents without alerts are absent).
pub async fn stats_many(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
) -> QueryResult<Vec<IncidentStatsRow>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // Reads only the incidents' alert rows: each carries its mailboxes and malicious-evidence count.
    crate::db::prepared::sql(&STATS_MANY_SQL)
        .bind::<diesel::sql_types::Text, _>(tenant_id)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .load(conn)
        .await
}

/// Writes what a recompute derives (name, severity, priority, alert count, stamp, version) for several
/// incidents in one statement.
pub async fn save_derived_many(conn: &mut Conn, tenant_id: &str, rows: &[Incident]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Int4, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    // `i.id = ANY($2)` repeats the join so the incidents are found by primary key (joined to the unnest
    // alone, the planner scanned the whole table).
    crate::db::prepared::sql(
        "UPDATE incidents i SET display_name = u.name, severity = u.sev, priority_score = u.score, \
             priority_reasons = ARRAY(SELECT jsonb_array_elements_text(u.reasons)), alert_count = u.cnt, \
             last_update_at = u.at, last_modified_by = NULLIF(u.by, ''), version = u.ver \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int4[], $6::jsonb[], $7::int4[], \
                     $8::timestamptz[], $9::text[], $10::int4[]) AS u(id, name, sev, score, reasons, cnt, at, by, ver) \
         WHERE i.tenant_id = $1 AND i.id = u.id AND i.id = ANY($2)",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(column(rows, |i| i.id))
    .bind::<Array<Text>, _>(column(rows, |i| i.display_name.as_str()))
    .bind::<Array<Text>, _>(column(rows, |i| i.severity))
    .bind::<Array<Int4>, _>(column(rows, |i| i.priority_score))
    .bind::<Array<Jsonb>, _>(column(rows, |i| serde_json::json!(i.priority_reasons)))
    .bind::<Array<Int4>, _>(column(rows, |i| i.alert_count))
    .bind::<Array<Timestamptz>, _>(column(rows, |i| i.last_update_at))
    .bind::<Array<Text>, _>(column(rows, |i| i.last_modified_by.as_deref().unwrap_or("")))
    .bind::<Array<Int4>, _>(column(rows, |i| i.version))
    .execute(conn)
    .await?;
    Ok(())
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

/// The tenant's incidents among `ids` (missing ones are simply absent).
pub async fn find_many(conn: &mut Conn, tenant_id: &str, ids: &[Uuid]) -> QueryResult<Vec<Incident>> {
    incidents::table
        .filter(incidents::tenant_id.eq(tenant_id))
        .filter(incidents::id.eq_any(ids))
        .select(Incident::as_select())
        .load(conn)
        .await
}

/// Which incidents the queue shows. Empty lists mean "no constraint"; fields combine with AND.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Any of these statuses; when empty, every status but `REDIRECTED`.
    pub statuses: Vec<IncidentStatus>,
    /// Any of these severities.
    pub severities: Vec<Severity>,
    /// Assigned to any of these UPNs (compared case-insensitively; give them lower-case).
    pub assigned_to: Vec<String>,
    /// `Some(true)`: only unassigned ones; `Some(false)`: only assigned ones.
    pub unassigned: Option<bool>,
    /// Carrying any of these tags (custom or system).
    pub tags: Vec<String>,
    /// Any of these classifications.
    pub classifications: Vec<Classification>,
    /// Any of these determinations.
    pub determinations: Vec<Determination>,
    /// Holding an alert from any of these service sources.
    pub service_sources: Vec<String>,
    /// Holding an alert from any of these detection sources.
    pub detection_sources: Vec<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Last updated at or after.
    pub updated_after: Option<DateTime<Utc>>,
    /// Last updated before.
    pub updated_before: Option<DateTime<Utc>>,
    /// Name substring (case-insensitive), exact incident id, or an exact mailbox, user or sender address
    /// found in its alerts' keys or evidence.
    pub search: Option<String>,
}

/// What the queue is sorted by; the incident id breaks ties in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentSort {
    /// `last_update_at`.
    LastUpdateAt,
    /// `created_at`.
    CreatedAt,
    /// Severity rank (UNKNOWN < INFORMATIONAL < LOW < MEDIUM < HIGH).
    Severity,
    /// `priority_score`.
    PriorityScore,
}

impl IncidentSort {
    fn key_sql(self) -> String {
        match self {
            IncidentSort::LastUpdateAt => "incidents.last_update_at".into(),
            IncidentSort::CreatedAt => "incidents.created_at".into(),
            IncidentSort::Severity => severity_rank_sql("incidents.severity"),
            IncidentSort::PriorityScore => "incidents.priority_score".into(),
        }
    }

    /// Whether the key is a timestamp (carried as microseconds in a keyset).
    pub fn is_time(self) -> bool {
        matches!(self, IncidentSort::LastUpdateAt | IncidentSort::CreatedAt)
    }

    /// The sort key of a row, as a keyset carries it.
    pub fn key_of(self, row: &Incident) -> i64 {
        match self {
            IncidentSort::LastUpdateAt => row.last_update_at.timestamp_micros(),
            IncidentSort::CreatedAt => row.created_at.timestamp_micros(),
            IncidentSort::Severity => i64::from(row.severity.rank()),
            IncidentSort::PriorityScore => i64::from(row.priority_score),
        }
    }
}

/// The tenant's incidents matching `f`, boxed so callers can add ordering and paging.
fn filtered<'a>(tenant_id: &'a str, f: &'a IncidentFilter) -> incidents::BoxedQuery<'a, Pg> {
    let mut q = incidents::table.filter(incidents::tenant_id.eq(tenant_id)).into_boxed();
    if f.statuses.is_empty() {
        q = q.filter(incidents::status.ne(IncidentStatus::Redirected));
    } else {
        q = q.filter(incidents::status.eq_any(f.statuses.clone()));
    }
    if !f.severities.is_empty() {
        q = q.filter(incidents::severity.eq_any(f.severities.clone()));
    }
    if !f.assigned_to.is_empty() {
        q = q.filter(
            sql::<Bool>("lower(incidents.assigned_to) = ANY(")
                .bind::<Array<Text>, _>(f.assigned_to.clone())
                .sql(")"),
        );
    }
    match f.unassigned {
        Some(true) => q = q.filter(incidents::assigned_to.is_null()),
        Some(false) => q = q.filter(incidents::assigned_to.is_not_null()),
        None => {}
    }
    if !f.tags.is_empty() {
        q = q.filter(
            incidents::custom_tags
                .overlaps_with(f.tags.clone())
                .or(incidents::system_tags.overlaps_with(f.tags.clone())),
        );
    }
    if !f.classifications.is_empty() {
        q = q.filter(incidents::classification.eq_any(f.classifications.clone()));
    }
    if !f.determinations.is_empty() {
        q = q.filter(incidents::determination.eq_any(f.determinations.clone()));
    }
    if !f.service_sources.is_empty() {
        q = q.filter(
            sql::<Bool>("incidents.id IN (SELECT a.incident_id FROM alerts a WHERE a.tenant_id = ")
                .bind::<Text, _>(tenant_id)
                .sql(" AND a.service_source = ANY(")
                .bind::<Array<Text>, _>(f.service_sources.clone())
                .sql("))"),
        );
    }
    if !f.detection_sources.is_empty() {
        q = q.filter(
            sql::<Bool>("incidents.id IN (SELECT a.incident_id FROM alerts a WHERE a.tenant_id = ")
                .bind::<Text, _>(tenant_id)
                .sql(" AND a.detection_source = ANY(")
                .bind::<Array<Text>, _>(f.detection_sources.clone())
                .sql("))"),
        );
    }
    if let Some(t) = f.created_after {
        q = q.filter(incidents::created_at.ge(t));
    }
    if let Some(t) = f.created_before {
        q = q.filter(incidents::created_at.lt(t));
    }
    if let Some(t) = f.updated_after {
        q = q.filter(incidents::last_update_at.ge(t));
    }
    if let Some(t) = f.updated_before {
        q = q.filter(incidents::last_update_at.lt(t));
    }
    if let Some(s) = f.search.as_deref() {
        let lower = s.to_lowercase();
        let id = Uuid::parse_str(s).ok();
        let entity_keys = vec![format!("MAILBOX:{lower}"), format!("USER:{lower}")];
        // One fixed-shape clause (an unparsable id binds NULL, which matches nothing). Mailbox and sender
        // addresses are found through the alert keys (normalised, indexed by value); mailbox and user
        // evidence through their entity keys. Both subqueries are tenant-filtered and uncorrelated, so
        // PostgreSQL evaluates each once.
        q = q.filter(
            sql::<Bool>("(incidents.display_name ILIKE ")
                .bind::<Text, _>(contains_pattern(s))
                .sql(" OR incidents.id = ")
                .bind::<Nullable<diesel::sql_types::Uuid>, _>(id)
                .sql(
                    " OR incidents.id IN (SELECT a.incident_id FROM alert_keys k JOIN alerts a \
                     ON a.tenant_id = k.tenant_id AND a.id = k.alert_id WHERE k.tenant_id = ",
                )
                .bind::<Text, _>(tenant_id)
                .sql(" AND k.kind IN ('MAILBOX', 'SENDER') AND k.value = ")
                .bind::<Text, _>(lower)
                .sql(
                    ") OR incidents.id IN (SELECT a.incident_id FROM evidence e JOIN alerts a \
                     ON a.tenant_id = e.tenant_id AND a.id = e.alert_id WHERE e.tenant_id = ",
                )
                .bind::<Text, _>(tenant_id)
                .sql(" AND e.entity_key = ANY(")
                .bind::<Array<Text>, _>(entity_keys)
                .sql(")))"),
        );
    }
    q
}

/// One page of the queue: up to `limit` incidents matching `f`, in `sort`/`dir` order, after `after`.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    f: &IncidentFilter,
    sort: IncidentSort,
    dir: SortDir,
    after: Option<Keyset>,
    limit: i64,
) -> QueryResult<Vec<Incident>> {
    let key = sort.key_sql();
    let mut q = filtered(tenant_id, f);
    if let Some(k) = after {
        let head = format!("({key}, incidents.id) {} (", dir.after_op());
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
    q.order_by(sql::<Bool>(&format!("{key} {d}, incidents.id {d}")))
        .limit(limit)
        .select(Incident::as_select())
        .load(conn)
        .await
}

/// How many incidents match `f` (the queue's `totalCount`).
pub async fn count_matching(conn: &mut Conn, tenant_id: &str, f: &IncidentFilter) -> QueryResult<i64> {
    filtered(tenant_id, f).select(count_star()).get_result(conn).await
}

/// Counts of the tenant's incidents by status and severity, and how many of them are unassigned.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    /// Status.
    pub status: IncidentStatus,
    /// Severity.
    pub severity: Severity,
    /// Incidents with this status and severity.
    pub count: i64,
    /// Of which unassigned.
    pub unassigned: i64,
}

/// Incidents of `statuses`, grouped by status and severity (the dashboard summary), in one statement.
pub async fn summary(
    conn: &mut Conn,
    tenant_id: &str,
    statuses: &[IncidentStatus],
) -> QueryResult<Vec<SummaryRow>> {
    let rows: Vec<(IncidentStatus, Severity, i64, i64)> = incidents::table
        .filter(incidents::tenant_id.eq(tenant_id))
        .filter(incidents::status.eq_any(statuses.to_vec()))
        .group_by((incidents::status, incidents::severity))
        .select((incidents::status, incidents::severity, count_star(), count(incidents::assigned_to)))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(status, severity, n, assigned)| SummaryRow {
            status,
            severity,
            count: n,
            unassigned: n - assigned,
        })
        .collect())
}

/// Moves `lastUpdateAt` of the tenant's incidents `ids` to `at` (a derived value of theirs changed).
pub async fn touch_last_update(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    at: chrono::DateTime<chrono::Utc>,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(incidents::table)
        .filter(incidents::tenant_id.eq(tenant_id))
        .filter(incidents::id.eq_any(ids))
        .filter(incidents::last_update_at.lt(at))
        .set(incidents::last_update_at.eq(at))
        .execute(conn)
        .await
}
