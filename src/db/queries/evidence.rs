//! Evidence of alerts, read in batches for the loaders: by alert, and by incident through its alerts,
//! where rows naming one entity are merged and listed a page at a time.

use crate::db::models::Evidence;
use crate::db::queries::queue::TimeKeyset;
use crate::db::schema::evidence;
use crate::db::Conn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Evidence of each of `alert_ids`, oldest first.
pub async fn by_alerts(conn: &mut Conn, tenant_id: &str, alert_ids: &[Uuid]) -> QueryResult<Vec<Evidence>> {
    if alert_ids.is_empty() {
        return Ok(vec![]);
    }
    evidence::table
        .filter(evidence::tenant_id.eq(tenant_id))
        .filter(evidence::alert_id.eq_any(alert_ids))
        .order_by((evidence::created_at, evidence::id))
        .select(Evidence::as_select())
        .load(conn)
        .await
}

/// An entity of an incident: what every evidence row naming it adds up to. The latest row's data is
/// read apart ([`latest_of_entities`]), for the page's entities only.
#[derive(Debug, Clone, QueryableByName)]
pub struct EntitySummary {
    /// Incident.
    #[diesel(sql_type = SqlUuid)]
    pub incident_id: Uuid,
    /// The entity.
    #[diesel(sql_type = Text)]
    pub entity_key: String,
    /// When the entity was first recorded.
    #[diesel(sql_type = Timestamptz)]
    pub first_at: DateTime<Utc>,
    /// The first row's id (with `first_at`, the entity's place in the list).
    #[diesel(sql_type = SqlUuid)]
    pub first_id: Uuid,
    /// Every verdict its rows give (stored spellings).
    #[diesel(sql_type = Array<Text>)]
    pub verdicts: Vec<String>,
    /// Every role its rows give (stored spellings).
    #[diesel(sql_type = Array<Text>)]
    pub roles: Vec<String>,
    /// Up to [`ENTITY_ALERT_IDS`] of the alerts naming it.
    #[diesel(sql_type = Array<SqlUuid>)]
    pub alert_ids: Vec<Uuid>,
    /// How many alerts name it.
    #[diesel(sql_type = Int8)]
    pub alert_count: i64,
}

/// Most alert ids an incident's entity lists (its `alertCount` says how many there are).
pub const ENTITY_ALERT_IDS: i64 = 100;

/// For each of `incident_ids`, up to `limit` of its entities (evidence merged by entity key) in order
/// of first appearance, after `after`, of `kinds` only when some are given. One statement for all the
/// incidents; the work is the incidents' own evidence, whatever the page asks.
pub async fn entities_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
    kinds: &[&str],
    after: Option<TimeKeyset>,
    limit: i64,
) -> QueryResult<Vec<EntitySummary>> {
    if incident_ids.is_empty() {
        return Ok(vec![]);
    }
    crate::db::prepared::sql(
        "SELECT p.incident_id, g.entity_key, g.first_at, g.first_id, g.verdicts, g.roles, \
                g.alert_ids, g.alert_count \
         FROM unnest($2::uuid[]) AS p(incident_id) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM ( \
                 SELECT e.entity_key, min(e.created_at) AS first_at, \
                        (array_agg(e.id ORDER BY e.created_at, e.id))[1] AS first_id, \
                        array_agg(DISTINCT e.verdict) AS verdicts, \
                        array_remove(array_agg(DISTINCT r.role), NULL) AS roles, \
                        (array_agg(DISTINCT e.alert_id))[1:$7] AS alert_ids, \
                        count(DISTINCT e.alert_id) AS alert_count \
                 FROM evidence e \
                 JOIN alerts a ON a.tenant_id = e.tenant_id AND a.id = e.alert_id \
                 LEFT JOIN LATERAL unnest(e.roles) AS r(role) ON true \
                 WHERE e.tenant_id = $1 AND a.incident_id = p.incident_id \
                   AND (cardinality($3::text[]) = 0 OR e.kind = ANY($3)) \
                 GROUP BY e.entity_key \
             ) g \
             WHERE $4::timestamptz IS NULL OR (g.first_at, g.first_id) > ($4, $5) \
             ORDER BY g.first_at, g.first_id \
             LIMIT $6 \
         ) g \
         ORDER BY p.incident_id, g.first_at, g.first_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(incident_ids)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Nullable<Timestamptz>, _>(after.map(|k| k.at))
    .bind::<Nullable<SqlUuid>, _>(after.map(|k| k.id))
    .bind::<Int8, _>(limit)
    .bind::<Int8, _>(ENTITY_ALERT_IDS)
    .load(conn)
    .await
}

/// The number of entities of each of `incident_ids` (of `kinds` only when some are given).
pub async fn entity_counts_by_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
    kinds: &[&str],
) -> QueryResult<Vec<(Uuid, i64)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        incident_id: Uuid,
        #[diesel(sql_type = Int8)]
        n: i64,
    }
    if incident_ids.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Row> = crate::db::prepared::sql(
        "SELECT a.incident_id, count(DISTINCT e.entity_key) AS n \
         FROM evidence e JOIN alerts a ON a.tenant_id = e.tenant_id AND a.id = e.alert_id \
         WHERE e.tenant_id = $1 AND a.incident_id = ANY($2) \
           AND (cardinality($3::text[]) = 0 OR e.kind = ANY($3)) \
         GROUP BY a.incident_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(incident_ids)
    .bind::<Array<Text>, _>(kinds)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.incident_id, r.n)).collect())
}

/// The latest row (by time, then id) of each `(incident, entity key)`, with its incident.
pub async fn latest_of_entities(
    conn: &mut Conn,
    tenant_id: &str,
    entities: &[(Uuid, String)],
) -> QueryResult<Vec<(Uuid, Evidence)>> {
    if entities.is_empty() {
        return Ok(vec![]);
    }
    let incidents: Vec<Uuid> = entities.iter().map(|e| e.0).collect();
    let keys: Vec<&str> = entities.iter().map(|e| e.1.as_str()).collect();
    let rows: Vec<LatestRow> = crate::db::prepared::sql(
        "SELECT DISTINCT ON (a.incident_id, e.entity_key) a.incident_id AS latest_incident_id, e.* \
         FROM unnest($2::uuid[], $3::text[]) AS w(incident_id, entity_key) \
         JOIN evidence e ON e.tenant_id = $1 AND e.entity_key = w.entity_key \
         JOIN alerts a ON a.tenant_id = e.tenant_id AND a.id = e.alert_id AND a.incident_id = w.incident_id \
         ORDER BY a.incident_id, e.entity_key, e.created_at DESC, e.id DESC",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(&incidents)
    .bind::<Array<Text>, _>(&keys)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.latest_incident_id, r.evidence)).collect())
}

#[derive(QueryableByName)]
struct LatestRow {
    #[diesel(sql_type = SqlUuid)]
    latest_incident_id: Uuid,
    #[diesel(embed)]
    evidence: Evidence,
}
