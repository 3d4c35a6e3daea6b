//! Comments on incidents and alerts (append-only).

use crate::db::models::Comment;
use crate::db::schema::comments;
use crate::db::Conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Appends a comment and returns it as stored.
pub async fn insert(conn: &mut Conn, comment: &Comment) -> QueryResult<Comment> {
    diesel::insert_into(comments::table)
        .values(comment)
        .returning(Comment::as_returning())
        .get_result(conn)
        .await
}
