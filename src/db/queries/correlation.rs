//! The SQL of correlation: key locks, key prevalence, candidate incidents, incident row locks, and the
//! writes of a join or a merge.

use crate::db::models::{AlertKey, Evidence, Incident};
use crate::db::prepared::{self, column, IdRow};
use crate::db::schema::{alert_keys, evidence, incidents};
use crate::db::Conn;
use crate::domain::enums::{CorrelationKind, IncidentStatus, KeyKind};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Locks the keys `hashes` of a tenant for the rest of the transaction: row locks on `correlation_locks`,
/// which PostgreSQL keeps in the rows themselves, so a batch may lock any number of keys without
/// filling the shared lock table (one advisory lock per key did, and failed with "out of shared memory").
///
/// One statement, in ascending hash order: a missing row is inserted (and so held until commit; a row
/// another transaction is inserting makes this one wait for it), an existing one is locked by the
/// `ON CONFLICT DO UPDATE`, whose `WHERE false` writes nothing: PostgreSQL locks every conflicting row
/// it takes that action on, including rows committed after the statement began. Every transaction
/// takes its key locks this way, in one order, so no two wait for each other in a cycle.
pub async fn lock_keys(conn: &mut Conn, tenant_id: &str, hashes: &[i64]) -> QueryResult<()> {
    key_rows(
        conn,
        "INSERT INTO correlation_locks (tenant_id, key_hash) \
         SELECT $1, h FROM unnest($2::int8[]) AS t(h) ORDER BY h \
         ON CONFLICT (tenant_id, key_hash) DO UPDATE SET key_hash = EXCLUDED.key_hash WHERE false",
        tenant_id,
        hashes,
    )
    .await
}

/// Makes sure a row exists for each of the keys `hashes`, outside any transaction (each insert commits
/// at once, so nothing stays locked): the key locks taken later in the batch's transaction then only lock
/// rows, and no longer insert them while holding the locks before. Concurrent calls for one key wait for
/// each other only for the instant of the insert.
pub async fn ensure_key_rows(conn: &mut Conn, tenant_id: &str, hashes: &[i64]) -> QueryResult<()> {
    key_rows(
        conn,
        "INSERT INTO correlation_locks (tenant_id, key_hash) \
         SELECT $1, h FROM unnest($2::int8[]) AS t(h) ORDER BY h ON CONFLICT DO NOTHING",
        tenant_id,
        hashes,
    )
    .await
}

/// Deletes up to `limit` key rows no transaction holds (`SKIP LOCKED`), over every tenant; returns how
/// many went. Safe at any moment: a batch finds a missing row again through [`ensure_key_rows`], and
/// its locking statement re-inserts one that vanished in between (waiting, through the conflict, for a
/// delete still under way), so two batches sharing a key still serialise.
pub async fn prune_key_rows(conn: &mut Conn, limit: i64) -> QueryResult<usize> {
    prepared::sql(
        "DELETE FROM correlation_locks WHERE (tenant_id, key_hash) IN ( \
             SELECT tenant_id, key_hash FROM correlation_locks LIMIT $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Int8, _>(limit)
    .execute(conn)
    .await
}

/// Runs `statement` on the tenant's key hashes, once each, in ascending order (the order every
/// transaction takes key locks in).
async fn key_rows(
    conn: &mut Conn,
    statement: &'static str,
    tenant_id: &str,
    hashes: &[i64],
) -> QueryResult<()> {
    let mut hashes = hashes.to_vec();
    hashes.sort_unstable();
    hashes.dedup();
    if hashes.is_empty() {
        return Ok(());
    }
    prepared::sql(statement).bind::<Text, _>(tenant_id).bind::<Array<Int8>, _>(&hashes).execute(conn).await?;
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

/// For each probe (as `u`), up to `$7` stored alerts carrying the key inside its span, leaving out `$6`.
/// A macro, not a constant, so that the statements built on it are literals ([`prepared::sql`]).
macro_rules! carriers_sql {
    () => {
        "SELECT u.kind, u.value, m.alert_id, m.activity_at, a.incident_id, a.alert_policy \
         FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS u(kind, value, lo, hi) \
         CROSS JOIN LATERAL (SELECT k.alert_id, k.activity_at FROM alert_keys k \
             WHERE k.tenant_id = $1 AND k.kind = u.kind AND k.value = u.value \
               AND k.activity_at BETWEEN u.lo AND u.hi AND NOT (k.alert_id = ANY($6)) LIMIT $7) m \
         JOIN alerts a ON a.tenant_id = $1 AND a.id = m.alert_id"
    };
}

/// Probes as the parallel arrays the queries unnest.
struct ProbeArrays<'a> {
    kinds: Vec<&'a str>,
    values: Vec<&'a str>,
    los: Vec<DateTime<Utc>>,
    his: Vec<DateTime<Utc>>,
}

fn probe_arrays(probes: &[SpanProbe]) -> ProbeArrays<'_> {
    ProbeArrays {
        kinds: probes.iter().map(|p| p.kind.as_str()).collect(),
        values: probes.iter().map(|p| p.value.as_str()).collect(),
        los: probes.iter().map(|p| p.lo).collect(),
        his: probes.iter().map(|p| p.hi).collect(),
    }
}

/// A `CarrierRow` of `key_carriers`, with the snapshot's newest event; the carrier columns are
/// empty on the one row returned when no alert carries any key.
#[derive(Debug, Clone, QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = Int8)]
    seq: i64,
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    alert_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    activity_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    incident_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    alert_policy: Option<String>,
}

/// For each probe, up to `cap` stored alerts carrying the key inside its span (leaving out `exclude`),
/// and the tenant's newest event sequence number, both as of one snapshot: every change to a carrier
/// that commits later writes an event after that number.
pub async fn key_carriers(
    conn: &mut Conn,
    tenant_id: &str,
    probes: &[SpanProbe],
    exclude: &[Uuid],
    cap: i64,
) -> QueryResult<(Vec<CarrierRow>, i64)> {
    let ProbeArrays { kinds, values, los, his } = probe_arrays(probes);
    let rows: Vec<SnapshotRow> = prepared::sql(concat!(
        "WITH s AS (SELECT COALESCE(max(seq), 0) AS seq FROM events WHERE tenant_id = $1), c AS (",
        carriers_sql!(),
        ") SELECT s.seq, c.kind, c.value, c.alert_id, c.activity_at, c.incident_id, c.alert_policy \
         FROM s LEFT JOIN c ON true"
    ))
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Text>, _>(values)
    .bind::<Array<Timestamptz>, _>(los)
    .bind::<Array<Timestamptz>, _>(his)
    .bind::<Array<SqlUuid>, _>(exclude)
    .bind::<Int8, _>(cap)
    .load(conn)
    .await?;
    let seq = rows.as_slice().first().map_or(0, |r| r.seq);
    let carriers = rows
        .into_iter()
        .filter_map(|r| {
            Some(CarrierRow {
                kind: r.kind?,
                value: r.value?,
                alert_id: r.alert_id?,
                activity_at: r.activity_at?,
                incident_id: r.incident_id?,
                alert_policy: r.alert_policy,
            })
        })
        .collect();
    Ok((carriers, seq))
}

/// The alerts that events after `seq` name (placed, moved or changed since), and the newest event of the
/// same snapshot; `None` when retention may have pruned some of those events.
pub async fn alerts_named_since(
    conn: &mut Conn,
    tenant_id: &str,
    seq: i64,
) -> QueryResult<Option<(Vec<Uuid>, i64)>> {
    let rows: Vec<NamedRow> = prepared::sql(
        "SELECT s.seq, w.pruned_through AS pruned, e.alert_id \
         FROM (SELECT COALESCE(max(seq), 0) AS seq FROM events WHERE tenant_id = $1) s \
         LEFT JOIN event_watermarks w ON w.tenant_id = $1 \
         LEFT JOIN (SELECT DISTINCT alert_id FROM events \
                    WHERE tenant_id = $1 AND seq > $2 AND alert_id IS NOT NULL) e ON true",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Int8, _>(seq)
    .load(conn)
    .await?;
    let Some(first) = rows.as_slice().first() else { return Ok(Some((vec![], seq))) };
    if first.pruned.is_some_and(|p| p > seq) {
        return Ok(None);
    }
    let newest = first.seq;
    Ok(Some((rows.into_iter().filter_map(|r| r.alert_id).collect(), newest)))
}

#[derive(QueryableByName)]
struct NamedRow {
    #[diesel(sql_type = Int8)]
    seq: i64,
    #[diesel(sql_type = Nullable<Int8>)]
    pruned: Option<i64>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    alert_id: Option<Uuid>,
}

/// Among `alert_ids`, the alerts carrying a probed key inside its span.
pub async fn key_carriers_among(
    conn: &mut Conn,
    tenant_id: &str,
    probes: &[SpanProbe],
    alert_ids: &[Uuid],
) -> QueryResult<Vec<CarrierRow>> {
    if probes.is_empty() || alert_ids.is_empty() {
        return Ok(vec![]);
    }
    let ProbeArrays { kinds, values, los, his } = probe_arrays(probes);
    // Each `OFFSET 0` keeps the planner from flattening a subquery: every named alert and its keys are then
    // read by primary key, whatever the tables' size (a join on `= ANY` chose whole-table scans), and the
    // probes are hashed once.
    prepared::sql(
        "SELECT u.kind, u.value, ck.alert_id, ck.activity_at, ck.incident_id, ck.alert_policy \
         FROM (SELECT k.alert_id, k.kind, k.value, k.activity_at, a.incident_id, a.alert_policy \
               FROM unnest($6::uuid[]) AS c(id) \
               CROSS JOIN LATERAL (SELECT incident_id, alert_policy FROM alerts \
                                   WHERE tenant_id = $1 AND id = c.id OFFSET 0) a \
               CROSS JOIN LATERAL (SELECT alert_id, kind, value, activity_at FROM alert_keys \
                                   WHERE tenant_id = $1 AND alert_id = c.id OFFSET 0) k \
               OFFSET 0) ck \
         JOIN unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS u(kind, value, lo, hi) \
           ON u.kind = ck.kind AND u.value = ck.value AND ck.activity_at BETWEEN u.lo AND u.hi",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Text>, _>(values)
    .bind::<Array<Timestamptz>, _>(los)
    .bind::<Array<Timestamptz>, _>(his)
    .bind::<Array<SqlUuid>, _>(alert_ids)
    .load(conn)
    .await
}

/// Inserts new incidents.
pub async fn insert_incidents(conn: &mut Conn, rows: &[Incident]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    prepared::sql(
        "INSERT INTO incidents (tenant_id, id, display_name, display_name_custom, severity, severity_custom, \
                                status, classification, determination, assigned_to, custom_tags, system_tags, \
                                resolving_comment, priority_score, priority_reasons, alert_count, created_at, \
                                last_update_at, resolved_at, redirect_incident_id, last_modified_by, version) \
         SELECT u.tenant_id, u.id, u.name, u.name_custom, u.severity, u.severity_custom, u.status, \
                u.classification, u.determination, u.assigned_to, \
                ARRAY(SELECT jsonb_array_elements_text(u.custom_tags)), \
                ARRAY(SELECT jsonb_array_elements_text(u.system_tags)), u.resolving_comment, u.score, \
                ARRAY(SELECT jsonb_array_elements_text(u.reasons)), u.alert_count, u.created_at, \
                u.last_update_at, u.resolved_at, u.redirect, u.last_modified_by, u.version \
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bool[], $5::text[], $6::bool[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::text[], $14::int4[], \
                     $15::jsonb[], $16::int4[], $17::timestamptz[], $18::timestamptz[], $19::timestamptz[], \
                     $20::uuid[], $21::text[], $22::int4[]) \
              AS u(tenant_id, id, name, name_custom, severity, severity_custom, status, classification, \
                   determination, assigned_to, custom_tags, system_tags, resolving_comment, score, reasons, \
                   alert_count, created_at, last_update_at, resolved_at, redirect, last_modified_by, version)",
    )
    .bind::<Array<Text>, _>(column(rows, |i| i.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(rows, |i| i.id))
    .bind::<Array<Text>, _>(column(rows, |i| i.display_name.as_str()))
    .bind::<Array<Bool>, _>(column(rows, |i| i.display_name_custom))
    .bind::<Array<Text>, _>(column(rows, |i| i.severity))
    .bind::<Array<Bool>, _>(column(rows, |i| i.severity_custom))
    .bind::<Array<Text>, _>(column(rows, |i| i.status))
    .bind::<Array<Text>, _>(column(rows, |i| i.classification))
    .bind::<Array<Text>, _>(column(rows, |i| i.determination))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |i| i.assigned_to.as_deref()))
    .bind::<Array<Jsonb>, _>(column(rows, |i| serde_json::json!(i.custom_tags)))
    .bind::<Array<Jsonb>, _>(column(rows, |i| serde_json::json!(i.system_tags)))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |i| i.resolving_comment.as_deref()))
    .bind::<Array<Int4>, _>(column(rows, |i| i.priority_score))
    .bind::<Array<Jsonb>, _>(column(rows, |i| serde_json::json!(i.priority_reasons)))
    .bind::<Array<Int4>, _>(column(rows, |i| i.alert_count))
    .bind::<Array<Timestamptz>, _>(column(rows, |i| i.created_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |i| i.last_update_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |i| i.resolved_at))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |i| i.redirect_incident_id))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |i| i.last_modified_by.as_deref()))
    .bind::<Array<Int4>, _>(column(rows, |i| i.version))
    .execute(conn)
    .await?;
    Ok(())
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
    if keys.is_empty() {
        return Ok(());
    }
    prepared::sql(
        "INSERT INTO alert_keys (tenant_id, alert_id, kind, value, activity_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])",
    )
    .bind::<Array<Text>, _>(column(keys, |k| k.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(keys, |k| k.alert_id))
    .bind::<Array<Text>, _>(column(keys, |k| k.kind))
    .bind::<Array<Text>, _>(column(keys, |k| k.value.as_str()))
    .bind::<Array<Timestamptz>, _>(column(keys, |k| k.activity_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts evidence rows.
pub async fn insert_evidence(conn: &mut Conn, rows: &[Evidence]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    prepared::sql(
        "INSERT INTO evidence (tenant_id, id, alert_id, kind, entity_key, verdict, remediation_status, roles, \
                               data, created_at) \
         SELECT u.tenant_id, u.id, u.alert_id, u.kind, u.entity_key, u.verdict, u.remediation_status, \
                ARRAY(SELECT jsonb_array_elements_text(u.roles)), u.data, u.created_at \
         FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::jsonb[], $9::jsonb[], $10::timestamptz[]) \
              AS u(tenant_id, id, alert_id, kind, entity_key, verdict, remediation_status, roles, data, created_at)",
    )
    .bind::<Array<Text>, _>(column(rows, |e| e.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(rows, |e| e.id))
    .bind::<Array<SqlUuid>, _>(column(rows, |e| e.alert_id))
    .bind::<Array<Text>, _>(column(rows, |e| e.kind))
    .bind::<Array<Text>, _>(column(rows, |e| e.entity_key.as_str()))
    .bind::<Array<Text>, _>(column(rows, |e| e.verdict))
    .bind::<Array<Text>, _>(column(rows, |e| e.remediation_status))
    .bind::<Array<Jsonb>, _>(column(rows, |e| serde_json::json!(e.roles)))
    .bind::<Array<Jsonb>, _>(column(rows, |e| &e.data))
    .bind::<Array<Timestamptz>, _>(column(rows, |e| e.created_at))
    .execute(conn)
    .await?;
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
    let ids: Vec<IdRow> = prepared::sql(
        "UPDATE alerts SET incident_id = $3, correlation_kind = $4, correlation_matched = $5, \
             correlation_skipped = '[]', correlated_at = $6, last_update_at = $6 \
         WHERE tenant_id = $1 AND incident_id = $2 RETURNING id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(from)
    .bind::<SqlUuid, _>(to)
    .bind::<Text, _>(kind)
    .bind::<Jsonb, _>(matched)
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok(ids.into_iter().map(|r| r.id).collect())
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
    prepared::sql(
        "UPDATE incidents SET status = $6, redirect_incident_id = $3, alert_count = 0, \
             system_tags = array_append(array_remove(system_tags, 'Redirected'), 'Redirected'), \
             last_update_at = $5, last_modified_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(source)
    .bind::<SqlUuid, _>(target)
    .bind::<Text, _>(actor)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(IncidentStatus::Redirected)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which of `values` (sender addresses, or domains that match their senders and subdomains) name a
/// sender of one of the tenant's alerts (every alert belongs to an incident). Addresses use the key
/// index; a domain compares the tail of the tenant's sender keys.
pub async fn incident_senders(
    conn: &mut Conn,
    tenant_id: &str,
    values: &[String],
) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let rows: Vec<V> = crate::db::prepared::sql(
        "SELECT v FROM unnest($2::text[]) AS v WHERE EXISTS ( \
             SELECT 1 FROM alert_keys k WHERE k.tenant_id = $1 AND k.kind = 'SENDER' AND ( \
                 k.value = v OR (position('@' in v) = 0 AND ( \
                     right(k.value, length(v) + 1) = '@' || v OR right(k.value, length(v) + 1) = '.' || v))))",
    )
    .bind::<diesel::sql_types::Text, _>(tenant_id)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(values)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.v).collect())
}
