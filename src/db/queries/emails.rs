//! The SQL of the mail store: weekly partitions and their retirement, batch writes of copies (new copies
//! and timeline events as one array per column; updates and learned copies as one JSON array read by
//! `jsonb_populate_recordset`), and the reads of copies by id, by (network message id, recipient), and
//! of their timelines and alerts.

use crate::db::models::{Alert, Email, EmailEvent};
use crate::db::prepared::{self, column};
use crate::db::schema::{alerts, emails};
use crate::db::Conn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Int8, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

/// Takes the tenant's copy-learning lock until the transaction ends: shared (mail-flow batches) or
/// exclusive (an alert batch learning copies).
pub async fn learn_lock(conn: &mut Conn, lock: i64, exclusive: bool) -> QueryResult<()> {
    let statement = if exclusive {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1)"
    };
    prepared::sql(statement).bind::<Int8, _>(lock).execute(conn).await?;
    Ok(())
}

/// Plans every statement of the transaction for its own values and the partitions as they are now,
/// instead of reusing the connection's generic plan: a generic plan made while a weekly partition was
/// empty (every partition made ahead of its week is, and statistics of an empty table say so) probes
/// it with a sequential scan per record of the batch, which went quadratic once the week filled: 2,000
/// records took 23 s against a partition of 100,000 copies, until autovacuum analysed it. Planning the
/// batch's statements costs about 2 ms.
pub async fn plan_each_statement(conn: &mut Conn) -> QueryResult<()> {
    prepared::sql("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)").execute(conn).await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Made {
    #[diesel(sql_type = Int4)]
    made: i32,
}

/// Makes the weekly partitions covering `[from, to]` that are missing; returns how many tables it made.
/// Run outside a batch's transaction: making one locks the parent table for a moment.
pub async fn ensure_partitions(conn: &mut Conn, from: DateTime<Utc>, to: DateTime<Utc>) -> QueryResult<i32> {
    let rows: Vec<Made> = prepared::sql("SELECT parapet_ensure_mail_partitions($1, $2) AS made")
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .load(conn)
        .await?;
    Ok(rows.into_iter().next().map(|r| r.made).unwrap_or(0))
}

/// [`ensure_partitions`] waiting at most `lock_timeout_ms` for the parents' lock (a detach under way
/// holds it), for the periodic pass.
pub async fn ensure_partitions_within(
    conn: &mut Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lock_timeout_ms: u64,
) -> QueryResult<i32> {
    conn.batch_execute(&format!("SET lock_timeout = {lock_timeout_ms}")).await?;
    let result = ensure_partitions(conn, from, to).await;
    let reset = conn.batch_execute("RESET lock_timeout").await;
    let made = result?;
    reset?;
    Ok(made)
}

/// A partition of the mail store.
#[derive(Debug, Clone, QueryableByName)]
pub struct Partition {
    /// Parent table (`emails` or `email_events`).
    #[diesel(sql_type = Text)]
    pub parent: String,
    /// The partition's name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Whether a `DETACH … CONCURRENTLY` of it was interrupted and must be finalised.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub detach_pending: bool,
}

/// The partitions of both mail tables whose week ended before `before` (their names carry the week's
/// Monday), and those left half-detached by an interrupted pass.
pub async fn expired_partitions(conn: &mut Conn, before: DateTime<Utc>) -> QueryResult<Vec<Partition>> {
    prepared::sql(
        "SELECT p.relname::text AS parent, c.relname::text AS name, i.inhdetachpending AS detach_pending \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname IN ('emails', 'email_events') AND p.relnamespace = current_schema()::regnamespace \
           AND (i.inhdetachpending OR to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp \
                + interval '7 days' <= ($1::timestamptz AT TIME ZONE 'UTC')) \
         ORDER BY c.relname",
    )
    .bind::<Timestamptz, _>(before)
    .load(conn)
    .await
}

/// Partitions detached but not yet dropped (a pass that stopped between the two steps).
pub async fn orphan_partitions(conn: &mut Conn) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<Name> = prepared::sql(
        "SELECT c.relname::text AS name FROM pg_class c \
         WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace \
           AND (c.relname ~ '^emails_p[0-9]{8}$' OR c.relname ~ '^email_events_p[0-9]{8}$') \
           AND NOT c.relispartition",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Detaches `name` from `parent` without blocking readers or writers (`DETACH … CONCURRENTLY`, which
/// must run outside a transaction), waiting at most `lock_timeout_ms` for each lock; `finalize` ends
/// an interrupted detach instead. Names come from the catalog and are checked again here.
pub async fn detach(
    conn: &mut Conn,
    parent: &str,
    name: &str,
    finalize: bool,
    lock_timeout_ms: u64,
) -> QueryResult<()> {
    check_name(parent, name)?;
    let how = if finalize { "FINALIZE" } else { "CONCURRENTLY" };
    conn.batch_execute(&format!("SET lock_timeout = {lock_timeout_ms}")).await?;
    let result = conn.batch_execute(&format!("ALTER TABLE {parent} DETACH PARTITION {name} {how}")).await;
    let reset = conn.batch_execute("RESET lock_timeout").await;
    result.and(reset)
}

/// Drops a detached partition.
pub async fn drop_partition(conn: &mut Conn, name: &str, lock_timeout_ms: u64) -> QueryResult<()> {
    let parent = if name.starts_with("emails_p") { "emails" } else { "email_events" };
    check_name(parent, name)?;
    conn.batch_execute(&format!("SET lock_timeout = {lock_timeout_ms}")).await?;
    let result = conn.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await;
    let reset = conn.batch_execute("RESET lock_timeout").await;
    result.and(reset)
}

fn check_name(parent: &str, name: &str) -> QueryResult<()> {
    let ok = matches!(parent, "emails" | "email_events")
        && name
            .strip_prefix(parent)
            .and_then(|r| r.strip_prefix("_p"))
            .is_some_and(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(diesel::result::Error::QueryBuilderError(format!("not a mail partition: {name}").into()))
    }
}

/// The stored copies a batch of records may touch, locked for update in id order (so batches touching
/// the same copies queue in one order): each record's own copy (same network message id, recipient and
/// receive time; the exact key finds it in its one weekly partition) and any copy learned from an
/// alert with the record's (network message id, recipient), received since `since` (a partial index
/// holds only those, so the partitions that cannot hold the record's copy cost one probe of a small
/// index each, not one of the whole unique index). A copy of the mail flow with another receive time
/// is another copy, which the planner would not touch either.
pub async fn lock_by_copies(
    conn: &mut Conn,
    tenant_id: &str,
    network_message_ids: &[String],
    recipients: &[String],
    received_at: &[DateTime<Utc>],
    since: DateTime<Utc>,
) -> QueryResult<Vec<Email>> {
    if network_message_ids.is_empty() {
        return Ok(vec![]);
    }
    prepared::sql(
        "SELECT e.* FROM emails e JOIN ( \
             SELECT x.id, x.received_at \
             FROM unnest($2::text[], $3::text[], $5::timestamptz[]) AS u(nmid, recipient, received_at) \
             JOIN emails x ON x.tenant_id = $1 AND x.network_message_id = u.nmid \
                 AND x.recipient = u.recipient AND x.received_at = u.received_at \
             WHERE u.received_at >= $4 \
             UNION \
             SELECT x.id, x.received_at FROM emails x \
             WHERE x.tenant_id = $1 AND x.source = 'ALERT' AND x.received_at >= $4 \
               AND (x.network_message_id, x.recipient) IN (SELECT * FROM unnest($2::text[], $3::text[])) \
         ) s ON e.id = s.id AND e.received_at = s.received_at \
         WHERE e.tenant_id = $1 AND e.received_at >= $4 \
         ORDER BY e.id FOR UPDATE OF e",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(network_message_ids)
    .bind::<Array<Text>, _>(recipients)
    .bind::<Timestamptz, _>(since)
    .bind::<Array<Timestamptz>, _>(received_at)
    .load(conn)
    .await
}

/// The copies of the tenant received since `since` with any of the pairs, unlocked.
pub async fn by_copies(
    conn: &mut Conn,
    tenant_id: &str,
    network_message_ids: &[String],
    recipients: &[String],
    since: DateTime<Utc>,
) -> QueryResult<Vec<Email>> {
    if network_message_ids.is_empty() {
        return Ok(vec![]);
    }
    prepared::sql(
        "SELECT e.* FROM emails e \
         WHERE e.tenant_id = $1 AND e.received_at >= $4 \
           AND (e.network_message_id, e.recipient) IN (SELECT * FROM unnest($2::text[], $3::text[])) \
         ORDER BY e.received_at DESC, e.id DESC",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(network_message_ids)
    .bind::<Array<Text>, _>(recipients)
    .bind::<Timestamptz, _>(since)
    .load(conn)
    .await
}

/// Inserts new copies; returns how many went in (a copy another batch inserted meanwhile is skipped, and
/// the caller retries the batch, which then finds it).
///
/// The batch goes as one array per column (binary, so PostgreSQL parses no JSON: as one JSON document,
/// a batch of 2,000 copies was about 3 MB, and parsing and unpacking it took about a third of the
/// statement). The list columns go as one array literal per copy, except the lookup keys, which go as one
/// flat array that each copy takes its slice of.
pub async fn insert_copies(conn: &mut Conn, rows: &[Email]) -> QueryResult<usize> {
    use diesel::sql_types::Nullable;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut keys: Vec<i64> = Vec::with_capacity(rows.iter().map(|r| r.keys.len()).sum());
    let mut key_from: Vec<i32> = Vec::with_capacity(rows.len());
    let mut key_to: Vec<i32> = Vec::with_capacity(rows.len());
    for r in rows {
        key_from.push(i32::try_from(keys.len() + 1).unwrap_or(i32::MAX));
        keys.extend_from_slice(&r.keys);
        key_to.push(i32::try_from(keys.len()).unwrap_or(i32::MAX));
    }
    prepared::sql(
        "INSERT INTO emails (tenant_id, id, received_at, network_message_id, internet_message_id, recipient, \
             recipient_domain, envelope_sender, envelope_sender_domain, header_from, sender_domain, \
             sender_display_name, sender_ip, subject, direction, delivery_action, original_delivery_location, \
             latest_delivery_location, threat_types, phish_confidence, detection_technologies, urls, url_domains, \
             attachments, cluster_id, keys, source, override_source, state_at, moved_at, created_at, updated_at) \
         SELECT u.tenant_id, u.id, u.received_at, u.nmid, u.imid, u.recipient, u.recipient_domain, \
             u.envelope_sender, u.envelope_sender_domain, u.header_from, u.sender_domain, u.display_name, \
             u.sender_ip, u.subject, u.direction, u.delivery_action, u.original, u.latest, u.threat_types::text[], \
             u.phish_confidence, u.detections::text[], u.urls::text[], u.url_domains::text[], u.attachments, \
             u.cluster_id, ($26::int8[])[u.key_from:u.key_to], u.source, u.override_source, u.state_at, u.moved_at, \
             u.created_at, u.updated_at \
         FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
                     $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], \
                     $22::text[], $23::text[], $24::jsonb[], $25::text[], $27::int4[], $28::int4[], $29::text[], \
                     $30::text[], $31::timestamptz[], $32::timestamptz[], $33::timestamptz[], $34::timestamptz[]) \
              AS u(tenant_id, id, received_at, nmid, imid, recipient, recipient_domain, envelope_sender, \
                   envelope_sender_domain, header_from, sender_domain, display_name, sender_ip, subject, direction, \
                   delivery_action, original, latest, threat_types, phish_confidence, detections, urls, url_domains, \
                   attachments, cluster_id, key_from, key_to, source, override_source, state_at, moved_at, \
                   created_at, updated_at) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<Text>, _>(column(rows, |r| r.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.id))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.received_at))
    .bind::<Array<Text>, _>(column(rows, |r| r.network_message_id.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.internet_message_id.as_deref()))
    .bind::<Array<Text>, _>(column(rows, |r| r.recipient.as_str()))
    .bind::<Array<Text>, _>(column(rows, |r| r.recipient_domain.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.envelope_sender.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.envelope_sender_domain.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.header_from.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.sender_domain.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.sender_display_name.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.sender_ip.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.subject.as_deref()))
    .bind::<Array<Text>, _>(column(rows, |r| r.direction))
    .bind::<Array<Text>, _>(column(rows, |r| r.delivery_action))
    .bind::<Array<Text>, _>(column(rows, |r| r.original_delivery_location))
    .bind::<Array<Text>, _>(column(rows, |r| r.latest_delivery_location))
    .bind::<Array<Text>, _>(column(rows, |r| array_literal(r.threat_types.iter().map(|t| t.as_str()))))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.phish_confidence))
    .bind::<Array<Text>, _>(column(rows, |r| array_literal(r.detection_technologies.iter())))
    .bind::<Array<Text>, _>(column(rows, |r| array_literal(r.urls.iter())))
    .bind::<Array<Text>, _>(column(rows, |r| array_literal(r.url_domains.iter())))
    .bind::<Array<Jsonb>, _>(column(rows, |r| &r.attachments))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.cluster_id.as_deref()))
    .bind::<Array<Int8>, _>(keys)
    .bind::<Array<Int4>, _>(key_from)
    .bind::<Array<Int4>, _>(key_to)
    .bind::<Array<Text>, _>(column(rows, |r| r.source))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.override_source.as_deref()))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.state_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |r| r.moved_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.created_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.updated_at))
    .execute(conn)
    .await
}

/// A PostgreSQL array literal of `items` (each quoted, so any text goes; NUL never reaches here).
fn array_literal<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.as_ref().chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Inserts copies learned from alerts' evidence, skipping any whose (network message id, recipient) is
/// stored since `since`; returns the rows inserted (with their ids).
pub async fn insert_learned(
    conn: &mut Conn,
    rows: &[Email],
    since: DateTime<Utc>,
) -> QueryResult<Vec<Email>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    prepared::sql(
        "INSERT INTO emails SELECT r.* FROM jsonb_populate_recordset(NULL::emails, $1) r \
         WHERE NOT EXISTS (SELECT 1 FROM emails e WHERE e.tenant_id = r.tenant_id \
             AND e.network_message_id = r.network_message_id AND e.recipient = r.recipient \
             AND e.received_at >= $2) \
         ON CONFLICT DO NOTHING RETURNING *",
    )
    .bind::<Jsonb, _>(to_json(rows)?)
    .bind::<Timestamptz, _>(since)
    .load(conn)
    .await
}

/// Rewrites stored copies (matched by tenant, id and received_at) with the rows given.
pub async fn update_copies(conn: &mut Conn, rows: &[Email]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    prepared::sql(
        "UPDATE emails e SET internet_message_id = r.internet_message_id, \
             envelope_sender = r.envelope_sender, envelope_sender_domain = r.envelope_sender_domain, \
             header_from = r.header_from, sender_domain = r.sender_domain, \
             sender_display_name = r.sender_display_name, sender_ip = r.sender_ip, subject = r.subject, \
             direction = r.direction, delivery_action = r.delivery_action, \
             original_delivery_location = r.original_delivery_location, \
             latest_delivery_location = r.latest_delivery_location, threat_types = r.threat_types, \
             phish_confidence = r.phish_confidence, detection_technologies = r.detection_technologies, \
             urls = r.urls, url_domains = r.url_domains, attachments = r.attachments, \
             cluster_id = r.cluster_id, keys = r.keys, source = r.source, \
             override_source = r.override_source, state_at = r.state_at, updated_at = r.updated_at \
         FROM jsonb_populate_recordset(NULL::emails, $1) r \
         WHERE e.tenant_id = r.tenant_id AND e.id = r.id AND e.received_at = r.received_at",
    )
    .bind::<Jsonb, _>(to_json(rows)?)
    .execute(conn)
    .await
}

/// Moves learned copies (and their timelines, and the action targets naming them) to the receive time a mail-flow record gives them; the
/// learned original-delivery events go, as the record brings the real one.
pub async fn move_copies(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    from: &[DateTime<Utc>],
    to: &[DateTime<Utc>],
) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // By each copy's receive time too: the partition key, so each event is found in its one week.
    prepared::sql(
        "DELETE FROM email_events e USING unnest($2::uuid[], $3::timestamptz[]) AS m(id, at) \
         WHERE e.tenant_id = $1 AND e.email_id = m.id AND e.received_at = m.at AND e.kind = 'ORIGINAL_DELIVERY'",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Timestamptz>, _>(from)
    .execute(conn)
    .await?;
    for statement in [
        "UPDATE email_events e SET received_at = m.new_at \
         FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS m(id, old_at, new_at) \
         WHERE e.tenant_id = $1 AND e.email_id = m.id AND e.received_at = m.old_at",
        "UPDATE emails e SET received_at = m.new_at \
         FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS m(id, old_at, new_at) \
         WHERE e.tenant_id = $1 AND e.id = m.id AND e.received_at = m.old_at",
        // Actions name their copies by (id, receive time) too.
        "UPDATE action_targets t SET received_at = m.new_at \
         FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS m(id, old_at, new_at) \
         WHERE t.tenant_id = $1 AND t.email_id = m.id AND t.received_at = m.old_at",
    ] {
        prepared::sql(statement)
            .bind::<Text, _>(tenant_id)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(from)
            .bind::<Array<Timestamptz>, _>(to)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Appends timeline events; one already recorded (same copy, time, kind and destination) is skipped.
pub async fn insert_events(conn: &mut Conn, rows: &[EmailEvent]) -> QueryResult<usize> {
    use diesel::sql_types::Nullable;
    if rows.is_empty() {
        return Ok(0);
    }
    prepared::sql(
        "INSERT INTO email_events (tenant_id, email_id, received_at, id, kind, at, from_location, to_location, \
             actor, reason, action_id, created_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::uuid[], $5::text[], \
             $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::uuid[], $12::timestamptz[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<Text>, _>(column(rows, |r| r.tenant_id.as_str()))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.email_id))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.received_at))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.id))
    .bind::<Array<Text>, _>(column(rows, |r| r.kind))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.at))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.from_location))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.to_location))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.actor.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.reason.as_deref()))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |r| r.action_id))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.created_at))
    .execute(conn)
    .await
}

/// The tenant's copies among `ids` received since `since` (for a page's nested reads).
pub async fn by_ids(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    since: DateTime<Utc>,
) -> QueryResult<Vec<Email>> {
    emails::table
        .filter(emails::tenant_id.eq(tenant_id))
        .filter(emails::id.eq_any(ids))
        .filter(emails::received_at.ge(since))
        .select(Email::as_select())
        .load(conn)
        .await
}

/// One copy of the tenant received since `since`.
pub async fn find(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    since: DateTime<Utc>,
) -> QueryResult<Option<Email>> {
    emails::table
        .filter(emails::tenant_id.eq(tenant_id))
        .filter(emails::id.eq(id))
        .filter(emails::received_at.ge(since))
        .select(Email::as_select())
        .first(conn)
        .await
        .optional()
}

/// The first `limit` events of each of the copies' timelines, in time order.
pub async fn timelines(
    conn: &mut Conn,
    tenant_id: &str,
    email_ids: &[Uuid],
    limit: i64,
) -> QueryResult<Vec<EmailEvent>> {
    if email_ids.is_empty() {
        return Ok(vec![]);
    }
    prepared::sql(
        "SELECT ev.* FROM unnest($2::uuid[]) AS x(id) CROSS JOIN LATERAL ( \
             SELECT * FROM email_events WHERE tenant_id = $1 AND email_id = x.id \
             ORDER BY at, created_at, id LIMIT $3) ev",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// The alerts whose e-mail evidence names each entity key (`EMAIL:<network message id>:<recipient>`),
/// at most `limit` per key, newest first.
pub async fn alerts_naming(
    conn: &mut Conn,
    tenant_id: &str,
    entity_keys: &[String],
    limit: i64,
) -> QueryResult<Vec<(String, Alert)>> {
    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = Text)]
        entity_key: String,
        #[diesel(sql_type = SqlUuid)]
        alert_id: Uuid,
    }
    if entity_keys.is_empty() {
        return Ok(vec![]);
    }
    let pairs: Vec<Pair> = prepared::sql(
        "SELECT k.key AS entity_key, ev.alert_id FROM unnest($2::text[]) AS k(key) CROSS JOIN LATERAL ( \
             SELECT DISTINCT alert_id FROM evidence WHERE tenant_id = $1 AND entity_key = k.key \
             ORDER BY alert_id DESC LIMIT $3) ev",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<Text>, _>(entity_keys)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await?;
    let ids: Vec<Uuid> = pairs.iter().map(|p| p.alert_id).collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Alert> = alerts::table
        .filter(alerts::tenant_id.eq(tenant_id))
        .filter(alerts::id.eq_any(&ids))
        .select(Alert::as_select())
        .load(conn)
        .await?;
    let by_id: std::collections::HashMap<Uuid, &Alert> = rows.iter().map(|a| (a.id, a)).collect();
    Ok(pairs
        .into_iter()
        .filter_map(|p| by_id.get(&p.alert_id).map(|a| (p.entity_key, (*a).clone())))
        .collect())
}

fn to_json<T: serde::Serialize>(rows: &[T]) -> QueryResult<serde_json::Value> {
    serde_json::to_value(rows).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}
