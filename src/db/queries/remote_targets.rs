//! The SQL of running an action on a tenant's own mail server: targets are tried outside any
//! transaction (the mail server is slow and may be down), so each try is counted when it starts, its
//! copies are locked only to record what it did, and a try that failed keeps its error for the next.

use crate::db::prepared;
use crate::db::queries::actions::Claimed;
use crate::db::Conn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// An open target about to be tried on the mail server.
#[derive(Debug, Clone, QueryableByName)]
pub struct Try {
    /// Copy id.
    #[diesel(sql_type = SqlUuid)]
    pub email_id: Uuid,
    /// Its receive time.
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    /// Its recipient: the mailbox.
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// This try's number (1 for the first).
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// Why the try before this one failed (`None` after a try cut short, which may have acted).
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_error: Option<String>,
    /// The copy's Internet Message-ID, what the mailbox knows it by.
    #[diesel(sql_type = Nullable<Text>)]
    pub internet_message_id: Option<String>,
    /// Where the store last saw the copy (`None`: no longer stored).
    #[diesel(sql_type = Nullable<Text>)]
    pub location: Option<String>,
}

/// Counts a try of up to `limit` open targets of an action (those `after` and on, by copy id) and
/// returns them, clearing the last try's error (it comes back as `previous_error`; a try that fails
/// writes its own). Commits at once: the count survives a crash in the middle of the try.
pub async fn start_try(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Try>> {
    prepared::sql(
        "WITH t AS ( \
             SELECT email_id, error FROM action_targets \
             WHERE tenant_id = $1 AND action_id = $2 AND outcome IS NULL AND ($3::uuid IS NULL OR email_id > $3) \
             ORDER BY email_id LIMIT $4 FOR UPDATE SKIP LOCKED), \
         u AS ( \
             UPDATE action_targets a SET attempts = a.attempts + 1, error = NULL FROM t \
             WHERE a.tenant_id = $1 AND a.action_id = $2 AND a.email_id = t.email_id \
             RETURNING a.email_id, a.received_at, a.recipient, a.attempts, t.error AS previous_error) \
         SELECT u.email_id, u.received_at, u.recipient, u.attempts, u.previous_error, c.internet_message_id, \
             c.location \
         FROM u LEFT JOIN LATERAL ( \
             SELECT e.internet_message_id, e.latest_delivery_location AS location FROM emails e \
             WHERE e.tenant_id = $1 AND e.id = u.email_id AND e.received_at = u.received_at) c ON true \
         ORDER BY u.email_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// Locks the copies of the targets `email_ids` of an action that are still open (in id order, as
/// every other locker of copies does) and returns them with where each copy is now.
pub async fn lock_open(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    email_ids: &[Uuid],
) -> QueryResult<Vec<Claimed>> {
    if email_ids.is_empty() {
        return Ok(Vec::new());
    }
    prepared::sql(
        "WITH t AS ( \
             SELECT email_id, received_at, network_message_id, recipient FROM action_targets \
             WHERE tenant_id = $1 AND action_id = $2 AND email_id = ANY($3) AND outcome IS NULL \
             ORDER BY email_id FOR UPDATE) \
         SELECT t.email_id, t.received_at, t.network_message_id, t.recipient, c.location \
         FROM t LEFT JOIN LATERAL ( \
             SELECT e.latest_delivery_location AS location FROM emails e \
             WHERE e.tenant_id = $1 AND e.id = t.email_id AND e.received_at = t.received_at FOR UPDATE) c ON true \
         ORDER BY t.email_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .load(conn)
    .await
}

/// Keeps why a try of these open targets failed; they stay open for the next try.
pub async fn note_errors(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    email_ids: &[Uuid],
    errors: &[String],
) -> QueryResult<usize> {
    if email_ids.is_empty() {
        return Ok(0);
    }
    prepared::sql(
        "UPDATE action_targets t SET error = u.error \
         FROM unnest($3::uuid[], $4::text[]) AS u(email_id, error) \
         WHERE t.tenant_id = $1 AND t.action_id = $2 AND t.email_id = u.email_id AND t.outcome IS NULL",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .bind::<Array<Text>, _>(errors)
    .execute(conn)
    .await
}

/// Counts a try of an inbox-rule action; returns its number, `None` when the action is not running.
pub async fn start_rule_try(conn: &mut Conn, tenant_id: &str, action_id: Uuid) -> QueryResult<Option<i32>> {
    use crate::db::schema::actions;
    use crate::domain::enums::ActionStatus;
    diesel::update(actions::table.find((tenant_id, action_id)))
        .filter(actions::status.eq(ActionStatus::Running))
        .set(actions::attempts.eq(actions::attempts + 1))
        .returning(actions::attempts)
        .get_result(conn)
        .await
        .optional()
}

/// Ends a running inbox-rule action's one target: its outcome in the counts, and its error if any.
pub async fn record_rule_outcome(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    outcome: crate::domain::enums::ActionOutcome,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    use crate::db::schema::actions;
    use crate::domain::enums::{ActionOutcome as O, ActionStatus};
    let one = |o: O| i32::from(outcome == o);
    diesel::update(actions::table.find((tenant_id, action_id)))
        .filter(actions::status.eq_any([ActionStatus::Approved, ActionStatus::Running]))
        .filter(
            (actions::success_count
                + actions::failed_count
                + actions::already_count
                + actions::not_found_count)
                .eq(0),
        )
        .set((
            actions::success_count.eq(one(O::Success)),
            actions::failed_count.eq(one(O::Failed)),
            actions::already_count.eq(one(O::AlreadyInDestination)),
            actions::not_found_count.eq(one(O::NotFound)),
            actions::error.eq(error),
            actions::updated_at.eq(now),
        ))
        .execute(conn)
        .await
}

/// Keeps why a try of an inbox-rule action failed.
pub async fn note_rule_error(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    error: &str,
) -> QueryResult<usize> {
    use crate::db::schema::actions;
    diesel::update(actions::table.find((tenant_id, action_id)))
        .set(actions::error.eq(error))
        .execute(conn)
        .await
}
