//! The SQL of Threat Explorer: a validated hunt becomes one `WHERE` over the mail store (lookup keys
//! through the GIN index, the time range through partition pruning and the time index, subjects through
//! the trigram index), then a keyset page, a capped count, or grouped counts.

use crate::db::models::Email;
use crate::db::queries::queue::{contains_pattern, like_escape};
use crate::db::Conn;
use crate::domain::enums::DeliveryLocation;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{Array, BigInt, Int8, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// A hunt, validated and normalised: every condition is ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hunt {
    /// Received at or after (never before the 30-day window).
    pub from: DateTime<Utc>,
    /// Received before.
    pub to: Option<DateTime<Utc>>,
    /// Lookup keys the copy must all carry (`domain::email::lookup_key`).
    pub keys: Vec<i64>,
    /// A URL of the copy must start with this (a normalised URL).
    pub url_prefix: Option<String>,
    /// Case-insensitive substring of the subject.
    pub subject_contains: Option<String>,
    /// Any of these directions.
    pub directions: Vec<String>,
    /// Any of these delivery actions.
    pub delivery_actions: Vec<String>,
    /// Any of these original locations.
    pub original_locations: Vec<String>,
    /// Any of these latest locations.
    pub latest_locations: Vec<String>,
    /// Any of these threat types.
    pub threat_types: Vec<String>,
    /// Any of these phish confidences.
    pub phish_confidences: Vec<String>,
    /// Exactly this network message id (lower-case).
    pub network_message_id: Option<String>,
    /// Named by this alert's e-mail evidence.
    pub alert_id: Option<Uuid>,
}

/// The largest count reported exactly; past it, `count` estimates.
pub const EXACT_COUNT_CAP: i64 = 10_000;

/// What a grouped count groups by (an expression of a stored, derived column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// Delivery action.
    DeliveryAction,
    /// Sender domain.
    SenderDomain,
    /// Sender IP.
    SenderIp,
    /// Each detection technology.
    DetectionTechnology,
    /// Each URL host.
    UrlDomain,
    /// Latest delivery location.
    LatestDeliveryLocation,
    /// Each threat type.
    ThreatType,
    /// UTC day (`YYYY-MM-DD`).
    Day,
    /// UTC hour (`YYYY-MM-DDTHH:00:00Z`).
    Hour,
}

impl GroupBy {
    fn expr(self) -> &'static str {
        match self {
            GroupBy::DeliveryAction => "delivery_action",
            GroupBy::SenderDomain => "sender_domain",
            GroupBy::SenderIp => "sender_ip",
            GroupBy::DetectionTechnology => "unnest(detection_technologies)",
            GroupBy::UrlDomain => "unnest(url_domains)",
            GroupBy::LatestDeliveryLocation => "latest_delivery_location",
            GroupBy::ThreatType => "unnest(threat_types)",
            GroupBy::Day => "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            GroupBy::Hour => "to_char(date_trunc('hour', received_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')",
        }
    }

    /// Whether buckets are times (listed in time order) rather than values (largest first).
    pub fn is_time(self) -> bool {
        matches!(self, GroupBy::Day | GroupBy::Hour)
    }
}

enum Value {
    Text(String),
    Texts(Vec<String>),
    Keys(Vec<i64>),
    Time(DateTime<Utc>),
    Id(Uuid),
    Int(i64),
}

/// SQL text and its bind values, numbered as they are pushed.
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, v: Value) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }

    fn query(self) -> BoxedSqlQuery<'static, Pg, diesel::query_builder::SqlQuery> {
        let mut q = diesel::sql_query(self.text).into_boxed::<Pg>();
        for v in self.values {
            q = match v {
                Value::Text(s) => q.bind::<Text, _>(s),
                Value::Texts(s) => q.bind::<Array<Text>, _>(s),
                Value::Keys(k) => q.bind::<Array<Int8>, _>(k),
                Value::Time(t) => q.bind::<Timestamptz, _>(t),
                Value::Id(id) => q.bind::<SqlUuid, _>(id),
                Value::Int(n) => q.bind::<BigInt, _>(n),
            };
        }
        q
    }
}

/// `SELECT <select> FROM emails WHERE <the hunt's conditions>`.
fn matching(tenant_id: &str, h: &Hunt, select: &str) -> Sql {
    let mut sql = Sql { text: String::new(), values: vec![] };
    let t = sql.bind(Value::Text(tenant_id.to_string()));
    let from = sql.bind(Value::Time(h.from));
    let mut w = format!("e.tenant_id = {t} AND e.received_at >= {from}");
    if let Some(to) = h.to {
        let p = sql.bind(Value::Time(to));
        w.push_str(&format!(" AND e.received_at < {p}"));
    }
    if !h.keys.is_empty() {
        let p = sql.bind(Value::Keys(h.keys.clone()));
        w.push_str(&format!(" AND e.keys @> {p}::int8[]"));
    }
    if let Some(prefix) = &h.url_prefix {
        let p = sql.bind(Value::Text(format!("{}%", like_escape(prefix))));
        w.push_str(&format!(" AND EXISTS (SELECT 1 FROM unnest(e.urls) AS u(url) WHERE u.url LIKE {p})"));
    }
    if let Some(s) = &h.subject_contains {
        let p = sql.bind(Value::Text(contains_pattern(s)));
        w.push_str(&format!(" AND e.subject ILIKE {p}"));
    }
    for (column, values) in [
        ("direction", &h.directions),
        ("delivery_action", &h.delivery_actions),
        ("original_delivery_location", &h.original_locations),
        ("latest_delivery_location", &h.latest_locations),
        ("phish_confidence", &h.phish_confidences),
    ] {
        if !values.is_empty() {
            let p = sql.bind(Value::Texts(values.clone()));
            w.push_str(&format!(" AND e.{column} = ANY({p}::text[])"));
        }
    }
    if !h.threat_types.is_empty() {
        let p = sql.bind(Value::Texts(h.threat_types.clone()));
        w.push_str(&format!(" AND e.threat_types && {p}::text[]"));
    }
    if let Some(nmid) = &h.network_message_id {
        let p = sql.bind(Value::Text(nmid.clone()));
        w.push_str(&format!(" AND e.network_message_id = {p}"));
    }
    if let Some(alert) = h.alert_id {
        let p = sql.bind(Value::Id(alert));
        w.push_str(&format!(
            " AND (e.network_message_id, e.recipient) IN (SELECT lower(ev.data->>'networkMessageId'), \
               lower(ev.data->>'recipient') FROM evidence ev WHERE ev.tenant_id = {t} AND ev.alert_id = {p} \
               AND ev.kind = 'EMAIL')"
        ));
    }
    sql.text = format!("SELECT {select} FROM emails e WHERE {w}");
    sql
}

/// Where a page starts: after the copy received at `at` with id `id`, in the page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// Receive time of the last copy seen.
    pub at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// Up to `limit` copies matching the hunt, newest first (oldest first with `ascending`), after `after`.
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    h: &Hunt,
    ascending: bool,
    after: Option<After>,
    limit: i64,
) -> diesel::QueryResult<Vec<Email>> {
    let mut sql = matching(tenant_id, h, "e.*");
    if let Some(a) = after {
        let at = sql.bind(Value::Time(a.at));
        let id = sql.bind(Value::Id(a.id));
        let op = if ascending { ">" } else { "<" };
        sql.text.push_str(&format!(" AND (e.received_at, e.id) {op} ({at}, {id})"));
    }
    let dir = if ascending { "ASC" } else { "DESC" };
    let n = sql.bind(Value::Int(limit));
    sql.text.push_str(&format!(" ORDER BY e.received_at {dir}, e.id {dir} LIMIT {n}"));
    sql.query().load(conn).await
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Plan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

/// How many copies match: exact up to [`EXACT_COUNT_CAP`]; past it, the planner's estimate (never
/// below the cap), flagged `true`.
pub async fn count(conn: &mut Conn, tenant_id: &str, h: &Hunt) -> diesel::QueryResult<(i64, bool)> {
    let mut sql = matching(tenant_id, h, "1");
    let cap = sql.bind(Value::Int(EXACT_COUNT_CAP + 1));
    sql.text = format!("SELECT count(*) AS n FROM ({} LIMIT {cap}) s", sql.text);
    let exact = sql.query().load::<Count>(conn).await?.into_iter().next().map(|c| c.n).unwrap_or(0);
    if exact <= EXACT_COUNT_CAP {
        return Ok((exact, false));
    }
    let mut sql = matching(tenant_id, h, "1");
    sql.text = format!("EXPLAIN (FORMAT JSON) {}", sql.text);
    let plan = sql.query().load::<Plan>(conn).await?.into_iter().next().map(|p| p.plan).unwrap_or_default();
    let estimate = serde_json::from_str::<serde_json::Value>(&plan)
        .ok()
        .and_then(|v| v[0]["Plan"]["Plan Rows"].as_f64())
        .map(|r| r as i64)
        .unwrap_or(0);
    Ok((estimate.max(EXACT_COUNT_CAP + 1), true))
}

/// A copy a hunt matched, as an action proposal needs it.
#[derive(Debug, Clone, QueryableByName)]
pub struct CopyRef {
    /// Copy id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its receive time.
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    /// Its network message id.
    #[diesel(sql_type = Text)]
    pub network_message_id: String,
    /// Its recipient.
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// Where it is now.
    #[diesel(sql_type = Text)]
    pub latest_delivery_location: DeliveryLocation,
}

/// Up to `limit` copies matching the hunt (in no particular order), for an action over a filter.
pub async fn copies(
    conn: &mut Conn,
    tenant_id: &str,
    h: &Hunt,
    limit: i64,
) -> diesel::QueryResult<Vec<CopyRef>> {
    let mut sql = matching(
        tenant_id,
        h,
        "e.id, e.received_at, e.network_message_id, e.recipient, e.latest_delivery_location",
    );
    let n = sql.bind(Value::Int(limit));
    sql.text.push_str(&format!(" LIMIT {n}"));
    sql.query().load(conn).await
}

/// How many copies match, counted to at most `cap`.
pub async fn count_to(conn: &mut Conn, tenant_id: &str, h: &Hunt, cap: i64) -> diesel::QueryResult<i64> {
    let mut sql = matching(tenant_id, h, "1");
    let n = sql.bind(Value::Int(cap));
    sql.text = format!("SELECT count(*) AS n FROM ({} LIMIT {n}) s", sql.text);
    Ok(sql.query().load::<Count>(conn).await?.into_iter().next().map(|c| c.n).unwrap_or(0))
}

/// A bucket of a grouped count.
#[derive(Debug, Clone, QueryableByName, PartialEq, Eq)]
pub struct Bucket {
    /// The value (or time) grouped on.
    #[diesel(sql_type = Text)]
    pub key: String,
    /// Copies in it.
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// The `limit` largest buckets of the hunt's copies by `by` (for times: the latest `limit`, in time
/// order). Copies without a value (no sender IP, say) fall in no bucket.
pub async fn aggregate(
    conn: &mut Conn,
    tenant_id: &str,
    h: &Hunt,
    by: GroupBy,
    limit: i64,
) -> diesel::QueryResult<Vec<Bucket>> {
    let mut sql = matching(tenant_id, h, &format!("{} AS key", by.expr()));
    let n = sql.bind(Value::Int(limit));
    sql.text = if by.is_time() {
        format!(
            "SELECT key, count FROM (SELECT key, count(*) AS count FROM ({}) s WHERE key IS NOT NULL \
             GROUP BY key ORDER BY key DESC LIMIT {n}) b ORDER BY key",
            sql.text
        )
    } else {
        format!(
            "SELECT key, count(*) AS count FROM ({}) s WHERE key IS NOT NULL GROUP BY key \
             ORDER BY count DESC, key LIMIT {n}",
            sql.text
        )
    };
    sql.query().load(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_bind_every_value() {
        let h = Hunt {
            keys: vec![1, 2],
            subject_contains: Some("x".into()),
            threat_types: vec!["PHISH".into()],
            alert_id: Some(Uuid::nil()),
            ..Hunt::default()
        };
        let sql = matching("t", &h, "1");
        assert_eq!(sql.values.len(), 6);
        assert!(!sql.text.contains('\''.to_string().repeat(3).as_str()));
        assert!(sql.text.contains("e.keys @> $3::int8[]"), "{}", sql.text);
    }
}
