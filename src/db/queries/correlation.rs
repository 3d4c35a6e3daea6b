//! The SQL of correlation: key locks, key prevalence, candidate incidents, incident row locks, and the
//! writes of a join or a merge.

use crate::db::models::{AlertKey, Evidence, Incident};
use crate::db::schema::{alert_keys, alerts, evidence, incidents};
use crate::db::Conn;
use crate::domain::enums::{CorrelationKind, IncidentStatus, KeyKind};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
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

/// A key to look up between two instants.
#[derive(Debug, Clone)]
pub struct SpanProbe {
    /// Kind.
    pub kind: KeyKind,
    /// Value.
    pub value: String,
    /// From.
    pub lo: DateTime<Utc>,
    /// To.
    pub hi: DateTime<Utc>,
}

/// A stored alert carrying a probed key.
#[derive(Debug, Clone, QueryableByName)]
pub struct CarrierRow {
    /// Key kind (stored spelling).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Key value.
    #[diesel(sql_type = Text)]
    pub value: String,
    /// The alert.
    #[diesel(sql_type = SqlUuid)]
    pub alert_id: Uuid,
    /// Its activity time.
    #[diesel(sql_type = Timestamptz)]
    pub activity_at: DateTime<Utc>,
    /// Its incident.
    #[diesel(sql_type = SqlUuid)]
    pub incident_id: Uuid,
    /// Its alert policy.
    #[diesel(sql_type = Nullable<Text>)]
    pub alert_policy: Option<String>,
}

/// For each probe, up to `cap` stored alerts carrying the key inside its span (leaving out `exclude`).
pub async fn key_carriers(
    conn: &mut Conn,
    tenant_id: &str,
    probes: &[SpanProbe],
    exclude: &[Uuid],
    cap: i64,
) -> QueryResult<Vec<CarrierRow>> {
    if probes.is_empty() {
        return Ok(vec![]);
    }
    let kinds: Vec<String> = probes.iter().map(|p| p.kind.as_str().to_string()).collect();
    let values: Vec<String> = probes.iter().map(|p| p.value.clone()).collect();
    let los: Vec<DateTime<Utc>> = probes.iter().map(|p| p.lo).collect();
    let his: Vec<DateTime<Utc>> = probes.iter().map(|p| p.hi).collect();
    diesel::sql_query(
        "SELECT u.kind, u.value, m.alert_id, m.activity_at, a.incident_id, a.alert_policy \
         FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS u(kind, value, lo, hi) \
         CROSS JOIN LATERAL (SELECT k.alert_id, k.activity_at FROM alert_keys k \
             WHERE k.tenant_id = $1 AND k.kind = u.kind AND k.value = u.value \
               AND k.activity_at BETWEEN u.lo AND u.hi AND NOT (k.alert_id = ANY($6)) LIMIT $7) m \
         JOIN alerts a ON a.tenant_id = $1 AND a.id = m.alert_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Text>, _>(values)
    .bind::<Array<Timestamptz>, _>(los)
    .bind::<Array<Timestamptz>, _>(his)
    .bind::<Array<SqlUuid>, _>(exclude)
    .bind::<Int8, _>(cap)
    .load(conn)
    .await
}

/// Inserts new incidents.
pub async fn insert_incidents(conn: &mut Conn, rows: &[Incident]) -> QueryResult<()> {
    for chunk in rows.chunks(1000) {
        diesel::insert_into(incidents::table).values(chunk).execute(conn).await?;
    }
    Ok(())
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

/// Inserts correlation keys (in chunks, to stay under PostgreSQL's bind-parameter limit).
pub async fn insert_keys(conn: &mut Conn, keys: &[AlertKey]) -> QueryResult<()> {
    for chunk in keys.chunks(10_000) {
        diesel::insert_into(alert_keys::table).values(chunk).execute(conn).await?;
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
