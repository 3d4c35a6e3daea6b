//! The SQL of correlation: key locks, key prevalence, candidate incidents, incident row locks, and the
//! writes of a join or a merge.

use crate::db::models::{AlertKey, Evidence, Incident};
use crate::db::schema::{alert_keys, alerts, evidence, incidents};
use crate::db::Conn;
use crate::domain::enums::{CorrelationKind, IncidentStatus, KeyKind};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Takes transaction-scoped advisory locks on `ids`, in ascending order so that two transactions
/// never wait for each other in a cycle.
pub async fn lock_keys(conn: &mut Conn, ids: &[i64]) -> QueryResult<()> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT count(pg_advisory_xact_lock(x)) AS n FROM (SELECT x FROM unnest($1::int8[]) AS t(x) ORDER BY x) s",
    )
    .bind::<Array<Int8>, _>(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// A key to look up, with the window (hours either side of the alert's activity time) that applies to it.
#[derive(Debug, Clone)]
pub struct KeyProbe {
    /// Kind.
    pub kind: KeyKind,
    /// Value.
    pub value: String,
    /// Window in hours.
    pub hours: i32,
}

#[derive(QueryableByName)]
struct PrevalenceRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    value: String,
    #[diesel(sql_type = Int8)]
    n: i64,
}

fn unzip(probes: &[KeyProbe]) -> (Vec<String>, Vec<String>, Vec<i32>) {
    let kinds = probes.iter().map(|p| p.kind.as_str().to_string()).collect();
    let values = probes.iter().map(|p| p.value.clone()).collect();
    let hours = probes.iter().map(|p| p.hours).collect();
    (kinds, values, hours)
}

/// For each probe, how many other alerts carry it inside its window, counting at most `cap`.
pub async fn key_prevalence(
    conn: &mut Conn,
    tenant_id: &str,
    probes: &[KeyProbe],
    at: DateTime<Utc>,
    exclude_alert: Uuid,
    cap: i64,
) -> QueryResult<Vec<(KeyKind, String, i64)>> {
    if probes.is_empty() {
        return Ok(vec![]);
    }
    let (kinds, values, hours) = unzip(probes);
    let rows: Vec<PrevalenceRow> = diesel::sql_query(
        "SELECT u.kind, u.value, (SELECT count(*) FROM (SELECT 1 FROM alert_keys k \
             WHERE k.tenant_id = $1 AND k.kind = u.kind AND k.value = u.value AND k.alert_id <> $6 \
               AND k.activity_at BETWEEN $5 - make_interval(hours => u.hours) \
                                     AND $5 + make_interval(hours => u.hours) \
             LIMIT $7) s) AS n \
         FROM unnest($2::text[], $3::text[], $4::int4[]) AS u(kind, value, hours)",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Text>, _>(values)
    .bind::<Array<Int4>, _>(hours)
    .bind::<Timestamptz, _>(at)
    .bind::<SqlUuid, _>(exclude_alert)
    .bind::<Int8, _>(cap)
    .load(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|r| r.kind.parse().ok().map(|k| (k, r.value, r.n))).collect())
}

/// A key an open incident shares with the alert being placed.
#[derive(Debug, Clone, QueryableByName)]
pub struct MatchRow {
    /// The open incident.
    #[diesel(sql_type = SqlUuid)]
    pub incident_id: Uuid,
    /// Key kind (stored spelling).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Key value.
    #[diesel(sql_type = Text)]
    pub value: String,
    /// Whether the incident's alert carrying the key names the same, non-empty alert policy.
    #[diesel(sql_type = Bool)]
    pub same_policy: bool,
}

/// Keys that open incidents' alerts share with the probes, inside each probe's window.
pub async fn candidate_matches(
    conn: &mut Conn,
    tenant_id: &str,
    probes: &[KeyProbe],
    at: DateTime<Utc>,
    exclude_alert: Uuid,
    alert_policy: Option<&str>,
) -> QueryResult<Vec<MatchRow>> {
    if probes.is_empty() {
        return Ok(vec![]);
    }
    let (kinds, values, hours) = unzip(probes);
    diesel::sql_query(
        "SELECT DISTINCT a.incident_id, k.kind, k.value, \
                COALESCE(a.alert_policy <> '' AND a.alert_policy = $6, false) AS same_policy \
         FROM unnest($2::text[], $3::text[], $4::int4[]) AS u(kind, value, hours) \
         JOIN alert_keys k ON k.tenant_id = $1 AND k.kind = u.kind AND k.value = u.value \
              AND k.activity_at BETWEEN $5 - make_interval(hours => u.hours) \
                                    AND $5 + make_interval(hours => u.hours) \
         JOIN alerts a ON a.tenant_id = k.tenant_id AND a.id = k.alert_id \
         JOIN incidents i ON i.tenant_id = a.tenant_id AND i.id = a.incident_id \
         WHERE a.id <> $7 AND i.status IN ('ACTIVE', 'IN_PROGRESS')",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Text>, _>(values)
    .bind::<Array<Int4>, _>(hours)
    .bind::<Timestamptz, _>(at)
    .bind::<Nullable<Text>, _>(alert_policy)
    .bind::<SqlUuid, _>(exclude_alert)
    .load(conn)
    .await
}

/// Locks incidents `FOR UPDATE` in id order and returns them as they are now.
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

/// Inserts a new incident.
pub async fn insert_incident(conn: &mut Conn, incident: &Incident) -> QueryResult<()> {
    diesel::insert_into(incidents::table).values(incident).execute(conn).await?;
    Ok(())
}

/// Removes a re-sent alert's evidence and keys (the new ones replace them).
pub async fn delete_evidence_and_keys(conn: &mut Conn, tenant_id: &str, alert_id: Uuid) -> QueryResult<()> {
    diesel::delete(
        evidence::table.filter(evidence::tenant_id.eq(tenant_id)).filter(evidence::alert_id.eq(alert_id)),
    )
    .execute(conn)
    .await?;
    diesel::delete(
        alert_keys::table
            .filter(alert_keys::tenant_id.eq(tenant_id))
            .filter(alert_keys::alert_id.eq(alert_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts correlation keys.
pub async fn insert_keys(conn: &mut Conn, keys: &[AlertKey]) -> QueryResult<()> {
    if !keys.is_empty() {
        diesel::insert_into(alert_keys::table).values(keys).execute(conn).await?;
    }
    Ok(())
}

/// Inserts evidence rows (in chunks, to stay under PostgreSQL's bind-parameter limit).
pub async fn insert_evidence(conn: &mut Conn, rows: &[Evidence]) -> QueryResult<()> {
    for chunk in rows.chunks(4000) {
        diesel::insert_into(evidence::table).values(chunk).execute(conn).await?;
    }
    Ok(())
}

/// Writes what a merge hands the surviving incident: owner, classification, determination, tags.
pub async fn save_merged_fields(conn: &mut Conn, i: &Incident) -> QueryResult<()> {
    diesel::update(incidents::table.find((&i.tenant_id, i.id)))
        .set((
            incidents::assigned_to.eq(&i.assigned_to),
            incidents::classification.eq(i.classification),
            incidents::determination.eq(i.determination),
            incidents::custom_tags.eq(&i.custom_tags),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves every alert of `from` into `to`, recording how they got there; returns the moved alerts' ids.
pub async fn move_all_alerts(
    conn: &mut Conn,
    tenant_id: &str,
    from: Uuid,
    to: Uuid,
    kind: CorrelationKind,
    matched: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    diesel::update(alerts::table.filter(alerts::tenant_id.eq(tenant_id)).filter(alerts::incident_id.eq(from)))
        .set((
            alerts::incident_id.eq(to),
            alerts::correlation_kind.eq(kind),
            alerts::correlation_matched.eq(matched),
            alerts::correlation_skipped.eq(serde_json::json!([])),
            alerts::correlated_at.eq(now),
            alerts::last_update_at.eq(now),
        ))
        .returning(alerts::id)
        .get_results(conn)
        .await
}

/// Closes `source` as merged into `target`.
pub async fn redirect_incident(
    conn: &mut Conn,
    tenant_id: &str,
    source: Uuid,
    target: Uuid,
    actor: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(incidents::table.find((tenant_id, source)))
        .set((
            incidents::status.eq(IncidentStatus::Redirected),
            incidents::redirect_incident_id.eq(Some(target)),
            incidents::alert_count.eq(0),
            incidents::system_tags.eq(diesel::dsl::sql::<Array<Text>>(
                "array_append(array_remove(system_tags, 'Redirected'), 'Redirected')",
            )),
            incidents::last_update_at.eq(now),
            incidents::last_modified_by.eq(Some(actor)),
            incidents::version.eq(incidents::version + 1),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
