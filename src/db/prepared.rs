//! Hand-written SQL that each connection prepares once and reuses. Diesel marks `sql_query` (and every
//! multi-row insert and `UPDATE`) unsafe to cache, so PostgreSQL parsed and planned those statements
//! on every call: about a fifth of ingestion's database time went to parse and bind.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::QueryResult;
use std::marker::PhantomData;

/// A statement of fixed text and its bind values, cached by its text like any diesel statement whose
/// text does not vary. Build it with [`sql`] and [`Prepared::bind`]; load rows with `QueryableByName`.
#[must_use = "a query does nothing until it is run"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// One bind value and its SQL type.
pub struct Bind<ST, V> {
    value: V,
    _st: PhantomData<fn() -> ST>,
}

/// A statement whose placeholders (`$1`, `$2`, …) refer to the values bound, in order, with
/// [`Prepared::bind`]; a placeholder may occur more than once.
pub fn sql(sql: &'static str) -> Prepared<()> {
    Prepared { sql, binds: () }
}

impl<B> Prepared<B> {
    /// Binds the next placeholder.
    pub fn bind<ST, V>(self, value: V) -> Prepared<(B, Bind<ST, V>)> {
        Prepared { sql: self.sql, binds: (self.binds, Bind { value, _st: PhantomData }) }
    }
}

/// One column of `rows`, as an array to bind (`INSERT … SELECT … FROM unnest($1, $2, …)` takes a batch as
/// one array per column, so its text does not depend on the batch size).
pub fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// A row of one `id` column (what `RETURNING id` and id lists load into).
#[derive(diesel::QueryableByName)]
pub struct IdRow {
    /// The id.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: uuid::Uuid,
}

/// The bind values of a statement, walked in order.
pub trait Binds {
    /// Hands each value to the pass, first bound first.
    fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl Binds for () {
    fn walk<'b>(&'b self, _: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Ok(())
    }
}

impl<B: Binds, ST, V> Binds for (B, Bind<ST, V>)
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk(out)?;
        out.push_bind_param::<ST, V>(&self.1.value)
    }
}

impl<B: Binds> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.sql);
        // Diesel's public API writes a placeholder wherever it collects a bind value; the statement
        // already names its placeholders, so the generated ones go into a trailing comment (their
        // numbering matches, as both count the values in order).
        out.push_sql("\n/* ");
        self.binds.walk(&mut out)?;
        out.push_sql(" */");
        Ok(())
    }
}

impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}
