//! Shared pieces of the read side (the queues and the nested lists under incidents and alerts): sort
//! direction, keyset positions, and the page of children per parent that loaders ask for.

use crate::domain::enums::Severity;
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::expression::{is_aggregate, BoxableExpression};
use diesel::pg::Pg;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use uuid::Uuid;

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDir {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl SortDir {
    /// `ASC` or `DESC`, for ORDER BY.
    pub fn sql(self) -> &'static str {
        match self {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        }
    }

    /// The row-comparison operator that moves past a keyset position in this direction.
    pub fn after_op(self) -> &'static str {
        match self {
            SortDir::Asc => ">",
            SortDir::Desc => "<",
        }
    }
}

/// A keyset position: the sort key of the last row seen and its id (the tie-breaker). Time keys are
/// carried as microseconds since the epoch (PostgreSQL's own precision), ranks and scores as-is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keyset {
    /// Sort key of the last row seen.
    pub key: i64,
    /// Id of the last row seen.
    pub id: Uuid,
}

/// A keyset position in a list ordered by a timestamp and then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeKeyset {
    /// Timestamp of the last row seen.
    pub at: DateTime<Utc>,
    /// Id of the last row seen.
    pub id: Uuid,
}

impl Keyset {
    /// The key read as a timestamp (for time-ordered lists); `None` when out of range.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.key)
    }
}

/// Microseconds since the epoch: the key of a timestamp in a cursor.
pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The kind of parent a nested list (comments, activity) hangs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParentKind {
    /// An incident.
    Incident,
    /// An alert.
    Alert,
}

impl ParentKind {
    /// The column that points at this kind of parent (a constant, never user input).
    pub fn column(self) -> &'static str {
        match self {
            ParentKind::Incident => "incident_id",
            ParentKind::Alert => "alert_id",
        }
    }
}

/// The parent a nested list hangs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Parent {
    /// Incident or alert.
    pub kind: ParentKind,
    /// Its id.
    pub id: Uuid,
}

impl Parent {
    /// An incident.
    pub fn incident(id: Uuid) -> Self {
        Self { kind: ParentKind::Incident, id }
    }

    /// An alert.
    pub fn alert(id: Uuid) -> Self {
        Self { kind: ParentKind::Alert, id }
    }
}

/// A filter that keeps, of a child table's rows, the first `limit` of each parent in `ids` past `after`
/// in (`created_at`, `id`) order `dir`, for every parent at once: a window function numbers each
/// parent's rows. `table` and `parent` (the child's column naming its parent) are names the caller
/// chooses, never user input. The nested lists (an incident's alerts, comments and activity) page this
/// way, so a page of 50 parents costs one statement.
pub fn first_per_parent<QS>(
    table: &str,
    parent: &str,
    tenant_id: &str,
    ids: &[Uuid],
    after: Option<TimeKeyset>,
    limit: i64,
    dir: SortDir,
) -> Box<dyn BoxableExpression<QS, Pg, (), is_aggregate::Never, SqlType = Bool>> {
    let order = dir.sql();
    Box::new(
        sql::<Bool>(&format!(
            "{table}.id IN (SELECT s.id FROM (SELECT c.id, row_number() OVER \
             (PARTITION BY c.{parent} ORDER BY c.created_at {order}, c.id {order}) AS rn FROM {table} c \
             WHERE c.tenant_id = "
        ))
        .bind::<Text, _>(tenant_id.to_string())
        .sql(&format!(" AND c.{parent} = ANY("))
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids.to_vec())
        .sql(") AND (")
        .bind::<Nullable<Timestamptz>, _>(after.map(|k| k.at))
        .sql(&format!("::timestamptz IS NULL OR (c.created_at, c.id) {} (", dir.after_op()))
        .bind::<Nullable<Timestamptz>, _>(after.map(|k| k.at))
        .sql(", ")
        .bind::<Nullable<diesel::sql_types::Uuid>, _>(after.map(|k| k.id))
        .sql("))) s WHERE s.rn <= ")
        .bind::<BigInt, _>(limit)
        .sql(")"),
    )
}

/// Escapes `%`, `_` and `\` so a user's text matches literally inside a LIKE pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `%text%` for a case-insensitive substring match with ILIKE.
pub fn contains_pattern(s: &str) -> String {
    format!("%{}%", like_escape(s))
}

/// The SQL rank of a severity column (as [`Severity::rank`] ranks it), so that ordering follows UNKNOWN <
/// INFORMATIONAL < LOW < MEDIUM < HIGH rather than the alphabet. `column` is a qualified column name
/// chosen by the caller (never user input).
pub fn severity_rank_sql(column: &str) -> String {
    let whens: String = Severity::ALL
        .iter()
        .filter(|s| s.rank() > 0)
        .map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), s.rank()))
        .collect();
    format!("(CASE {column}{whens} ELSE 0 END)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_text_is_escaped() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn severity_rank_sql_ranks_as_the_enum_does() {
        assert_eq!(
            severity_rank_sql("a.severity"),
            "(CASE a.severity WHEN 'INFORMATIONAL' THEN 1 WHEN 'LOW' THEN 2 WHEN 'MEDIUM' THEN 3 \
             WHEN 'HIGH' THEN 4 ELSE 0 END)"
        );
    }
}
