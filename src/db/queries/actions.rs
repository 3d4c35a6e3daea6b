//! The SQL of remediation actions: the action and its targets, decisions as conditional updates (a
//! decision applies only to an action still pending, so two decisions never both apply), the execution
//! step that claims open targets, re-evaluation of pending targets when copies move, expiry, and the
//! action center's pages and counts.

use crate::db::models::{Action, ActionTarget};
use crate::db::prepared::{self, column};
use crate::db::schema::{action_targets, actions};
use crate::db::Conn;
use crate::domain::enums::{ActionOutcome, ActionSource, ActionStatus, ActionType, DeliveryLocation};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// A filter over a tenant's actions; every field given applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionFilter {
    /// Any of these statuses.
    pub statuses: Vec<ActionStatus>,
    /// Any of these sources.
    pub sources: Vec<ActionSource>,
    /// Any of these types.
    pub types: Vec<ActionType>,
    /// Of this incident.
    pub incident_id: Option<Uuid>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// A target to insert: the copy and where it is.
#[derive(Debug, Clone)]
pub struct NewTarget {
    /// Copy id.
    pub email_id: Uuid,
    /// Its receive time (partition key).
    pub received_at: DateTime<Utc>,
    /// Its network message id.
    pub network_message_id: String,
    /// Its recipient.
    pub recipient: String,
    /// Its latest delivery location now.
    pub location: DeliveryLocation,
}

/// Takes the tenant's action lock until the transaction ends: exclusive for what proposes or ends
/// pending actions (proposals, decisions, expiry), shared for what re-evaluates them as copies move
/// (mail-flow batches, runs). A proposal then never misses a move committed while it read its copies,
/// and two pending actions on one copy never both end believing the other still waits.
pub async fn tenant_lock(conn: &mut Conn, lock: i64, exclusive: bool) -> QueryResult<()> {
    let statement = if exclusive {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1)"
    };
    prepared::sql(statement).bind::<Int8, _>(lock).execute(conn).await?;
    Ok(())
}

/// Moves an incident's actions to another incident (a merge); returns how many moved.
pub async fn move_to_incident(conn: &mut Conn, tenant_id: &str, from: Uuid, to: Uuid) -> QueryResult<usize> {
    diesel::update(actions::table)
        .filter(actions::tenant_id.eq(tenant_id))
        .filter(actions::incident_id.eq(from))
        .set(actions::incident_id.eq(to))
        .execute(conn)
        .await
}

/// Stores an action.
pub async fn insert(conn: &mut Conn, row: &Action) -> QueryResult<()> {
    diesel::insert_into(actions::table).values(row).execute(conn).await?;
    Ok(())
}

/// Whether the tenant has an action approved or running.
pub async fn any_active(conn: &mut Conn, tenant_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        actions::table
            .filter(actions::tenant_id.eq(tenant_id))
            .filter(actions::status.eq_any([ActionStatus::Approved, ActionStatus::Running])),
    ))
    .get_result(conn)
    .await
}

/// The pending removal of rule `rule_name` of `mailbox`, if one waits.
pub async fn pending_rule_removal(
    conn: &mut Conn,
    tenant_id: &str,
    mailbox: &str,
    rule_name: &str,
) -> QueryResult<Option<Uuid>> {
    actions::table
        .filter(actions::tenant_id.eq(tenant_id))
        .filter(actions::status.eq(ActionStatus::Pending))
        .filter(actions::rule_name.eq(rule_name))
        .filter(diesel::dsl::sql::<Bool>("lower(mailbox) = ").bind::<Text, _>(mailbox.to_lowercase()))
        .select(actions::id)
        .first(conn)
        .await
        .optional()
}

/// Stores an action's targets (one statement per 20,000, so no statement carries unbounded arrays).
pub async fn insert_targets(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    targets: &[NewTarget],
) -> QueryResult<()> {
    for chunk in targets.chunks(20_000) {
        prepared::sql(
            "INSERT INTO action_targets (tenant_id, action_id, email_id, received_at, network_message_id, \
                 recipient, location_at_proposal) \
             SELECT $1, $2, u.* FROM unnest($3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[]) \
                 AS u(email_id, received_at, nmid, recipient, location)",
        )
        .bind::<Text, _>(tenant_id)
        .bind::<SqlUuid, _>(action_id)
        .bind::<Array<SqlUuid>, _>(column(chunk, |t| t.email_id))
        .bind::<Array<Timestamptz>, _>(column(chunk, |t| t.received_at))
        .bind::<Array<Text>, _>(column(chunk, |t| t.network_message_id.as_str()))
        .bind::<Array<Text>, _>(column(chunk, |t| t.recipient.as_str()))
        .bind::<Array<Text>, _>(column(chunk, |t| t.location.as_str()))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// One action of the tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Action>> {
    actions::table.find((tenant_id, id)).select(Action::as_select()).first(conn).await.optional()
}

/// One action of the tenant, locked until the transaction ends.
pub async fn lock(conn: &mut Conn, tenant_id: &str, id: Uuid) -> QueryResult<Option<Action>> {
    actions::table.find((tenant_id, id)).for_update().select(Action::as_select()).first(conn).await.optional()
}

/// Actions of the tenant by id (for nested reads).
pub async fn by_ids(conn: &mut Conn, tenant_id: &str, ids: &[Uuid]) -> QueryResult<Vec<Action>> {
    actions::table
        .filter(actions::tenant_id.eq(tenant_id))
        .filter(actions::id.eq_any(ids))
        .select(Action::as_select())
        .load(conn)
        .await
}

/// Moves a pending, unexpired action to `to` with its decision; `None` when it was not pending (or
/// had expired) when the update ran, which makes concurrent decisions exclusive.
pub async fn decide(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    to: ActionStatus,
    by: &str,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Option<Action>> {
    let ended = (to != ActionStatus::Approved).then_some(now);
    diesel::update(actions::table.find((tenant_id, id)))
        .filter(actions::status.eq(ActionStatus::Pending))
        .filter(actions::expires_at.gt(now))
        .set((
            actions::status.eq(to),
            actions::decided_by.eq(by),
            actions::decided_at.eq(now),
            actions::decision_comment.eq(comment),
            actions::updated_at.eq(now),
            actions::completed_at.eq(ended),
        ))
        .returning(Action::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Marks an approved action running; `None` when it was not `APPROVED` (already running, or ended).
pub async fn start(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<Action>> {
    diesel::update(actions::table.find((tenant_id, id)))
        .filter(actions::status.eq(ActionStatus::Approved))
        .set((
            actions::status.eq(ActionStatus::Running),
            actions::started_at.eq(now),
            actions::updated_at.eq(now),
        ))
        .returning(Action::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Ends a running (or approved, never started) action in `to` once no target is open; `None` when it
/// was neither or a target is still open.
pub async fn finish(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    to: ActionStatus,
    now: DateTime<Utc>,
) -> QueryResult<Option<Action>> {
    diesel::update(actions::table.find((tenant_id, id)))
        .filter(actions::status.eq_any([ActionStatus::Running, ActionStatus::Approved]))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            action_targets::table
                .filter(action_targets::tenant_id.eq(tenant_id))
                .filter(action_targets::action_id.eq(id))
                .filter(action_targets::outcome.is_null()),
        )))
        .set((actions::status.eq(to), actions::completed_at.eq(now), actions::updated_at.eq(now)))
        .returning(Action::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Up to `limit` actions (of any tenant) approved or running whose job failed for good: nothing will
/// run them any more.
pub async fn stranded(conn: &mut Conn, limit: i64) -> QueryResult<Vec<Action>> {
    prepared::sql(
        "SELECT a.* FROM actions a \
         JOIN jobs j ON j.tenant_id = a.tenant_id AND j.kind = 'ACTION' AND j.dedupe_key = a.id::text \
         WHERE a.status IN ('APPROVED', 'RUNNING') AND j.status = 'FAILED' \
         ORDER BY a.created_at LIMIT $1",
    )
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// Gives every open target of an action the outcome `FAILED` and counts them; returns the action as it
/// now is (`None`: not approved or running).
pub async fn fail_open_targets(
    conn: &mut Conn,
    tenant_id: &str,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<Action>> {
    prepared::sql(
        "WITH f AS ( \
             UPDATE action_targets SET outcome = 'FAILED', executed_at = $3 \
             WHERE tenant_id = $1 AND action_id = $2 AND outcome IS NULL RETURNING 1) \
         UPDATE actions SET failed_count = failed_count + (SELECT count(*) FROM f), updated_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('APPROVED', 'RUNNING') \
         RETURNING *",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(id)
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await
    .map(|rows: Vec<Action>| rows.into_iter().next())
}

/// A target an execution step claimed, with where its copy is now (`None`: the copy is gone).
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    /// Copy id.
    #[diesel(sql_type = SqlUuid)]
    pub email_id: Uuid,
    /// Its receive time.
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    /// Its network message id.
    #[diesel(sql_type = Text)]
    pub network_message_id: String,
    /// Its recipient.
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// Its latest delivery location, read under the copy's row lock.
    #[diesel(sql_type = Nullable<Text>)]
    pub location: Option<String>,
}

/// Claims up to `limit` open targets of an action and locks their copies until the transaction ends
/// (each copy by its key, in a lateral subquery: a join of the two sets was planned as a nested loop
/// over both, a million comparisons per step of 1,000).
/// Targets another transaction holds are skipped (it will write their outcomes); a claimed target's
/// outcome is still null, so whatever this transaction commits for it is its only outcome.
pub async fn claim_open(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    prepared::sql(
        "WITH t AS ( \
             SELECT email_id, received_at, network_message_id, recipient FROM action_targets \
             WHERE tenant_id = $1 AND action_id = $2 AND outcome IS NULL \
             ORDER BY email_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         SELECT t.email_id, t.received_at, t.network_message_id, t.recipient, c.location \
         FROM t LEFT JOIN LATERAL ( \
             SELECT e.latest_delivery_location AS location FROM emails e \
             WHERE e.tenant_id = $1 AND e.id = t.email_id AND e.received_at = t.received_at FOR UPDATE) c ON true \
         ORDER BY t.email_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// An outcome to record for a claimed target.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Copy id.
    pub email_id: Uuid,
    /// What happened.
    pub outcome: ActionOutcome,
    /// Where the copy was.
    pub from: Option<DeliveryLocation>,
    /// Where it went (moves only).
    pub to: Option<DeliveryLocation>,
    /// Why it failed or was not found, when a mail server said so.
    pub error: Option<String>,
}

/// Writes the outcomes of claimed targets (only where none is written yet) and adds them to the
/// action's counts; returns how many were written.
pub async fn record_outcomes(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    outcomes: &[Outcome],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let written = prepared::sql(
        "WITH w AS ( \
             UPDATE action_targets t SET outcome = u.outcome, from_location = u.from_loc, \
                 to_location = u.to_loc, executed_at = $6, error = u.error \
             FROM unnest($3::uuid[], $4::text[], $5::text[], $7::text[], $8::text[]) \
                 AS u(email_id, outcome, from_loc, to_loc, error) \
             WHERE t.tenant_id = $1 AND t.action_id = $2 AND t.email_id = u.email_id AND t.outcome IS NULL \
             RETURNING t.outcome) \
         UPDATE actions a SET \
             success_count = success_count + (SELECT count(*) FROM w WHERE outcome = 'SUCCESS'), \
             failed_count = failed_count + (SELECT count(*) FROM w WHERE outcome = 'FAILED'), \
             already_count = already_count + (SELECT count(*) FROM w WHERE outcome = 'ALREADY_IN_DESTINATION'), \
             not_found_count = not_found_count + (SELECT count(*) FROM w WHERE outcome = 'NOT_FOUND'), \
             updated_at = $6 \
         WHERE a.tenant_id = $1 AND a.id = $2 \
         RETURNING (SELECT count(*) FROM w) AS n",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Array<SqlUuid>, _>(column(outcomes, |o| o.email_id))
    .bind::<Array<Text>, _>(column(outcomes, |o| o.outcome.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(outcomes, |o| o.from.map(|l| l.as_str())))
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Nullable<Text>>, _>(column(outcomes, |o| o.to.map(|l| l.as_str())))
    .bind::<Array<Nullable<Text>>, _>(column(outcomes, |o| o.error.as_deref()))
    .load::<N>(conn)
    .await?;
    Ok(written.into_iter().next().map(|n| usize::try_from(n.n).unwrap_or(0)).unwrap_or(0))
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = Int8)]
    n: i64,
}

/// Moves copies in the built-in store: the latest location, and the times of the change.
pub async fn move_copies(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    received: &[DateTime<Utc>],
    to: &[DeliveryLocation],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    // state_at moves to now: a mail-flow update reporting an earlier change no longer undoes this one.
    prepared::sql(
        "UPDATE emails e SET latest_delivery_location = u.loc, moved_at = $5, updated_at = $5, \
             state_at = GREATEST(e.state_at, $5) \
         FROM unnest($2::uuid[], $3::timestamptz[], $4::text[]) AS u(id, received_at, loc) \
         WHERE e.tenant_id = $1 AND e.id = u.id AND e.received_at = u.received_at",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Timestamptz>, _>(received)
    .bind::<Array<Text>, _>(column(to, |l| l.as_str()))
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
}

/// Sets the remediation status of the e-mail evidence naming the targets of an action (those among
/// `email_ids`; all when empty): `fixed` when given, else the status `by_outcome` maps the target's
/// outcome to. `only`: only evidence now in one of these statuses (any when empty). `unless_pending`:
/// leave out copies another pending action targets (their evidence still waits for that one). An
/// evidence names a copy by its entity key, `EMAIL:<network message id>:<recipient>`
/// (`domain::email::entity_key`).
#[allow(clippy::too_many_arguments)]
pub async fn evidence_follow(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    email_ids: &[Uuid],
    fixed: Option<&str>,
    by_outcome: &[(&str, &str)],
    only: &[&str],
    unless_pending: bool,
) -> QueryResult<usize> {
    prepared::sql(
        "UPDATE evidence ev SET remediation_status = s.status \
         FROM (SELECT t.network_message_id, t.recipient, \
                   COALESCE($4, (SELECT m.status FROM unnest($5::text[], $6::text[]) AS m(outcome, status) \
                                 WHERE m.outcome = t.outcome)) AS status \
               FROM action_targets t WHERE t.tenant_id = $1 AND t.action_id = $2 \
                 AND (cardinality($3::uuid[]) = 0 OR t.email_id = ANY($3::uuid[])) \
                 AND NOT ($8 AND EXISTS ( \
                     SELECT 1 FROM action_targets o JOIN actions oa \
                         ON oa.tenant_id = o.tenant_id AND oa.id = o.action_id AND oa.status = 'PENDING' \
                     WHERE o.tenant_id = $1 AND o.email_id = t.email_id AND o.action_id <> $2))) s \
         WHERE s.status IS NOT NULL AND ev.tenant_id = $1 AND ev.kind = 'EMAIL' \
           AND ev.entity_key = 'EMAIL:' || s.network_message_id || ':' || s.recipient \
           AND ev.remediation_status <> s.status \
           AND (cardinality($7::text[]) = 0 OR ev.remediation_status = ANY($7::text[]))",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(action_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .bind::<Nullable<Text>, _>(fixed)
    .bind::<Array<Text>, _>(column(by_outcome, |m| m.0))
    .bind::<Array<Text>, _>(column(by_outcome, |m| m.1))
    .bind::<Array<Text>, _>(only)
    .bind::<Bool, _>(unless_pending)
    .execute(conn)
    .await
}

/// A pending target whose copy moved, with the action's type and the copy's location now.
#[derive(Debug, Clone, QueryableByName)]
pub struct PendingTarget {
    /// Action id.
    #[diesel(sql_type = SqlUuid)]
    pub action_id: Uuid,
    /// Copy id.
    #[diesel(sql_type = SqlUuid)]
    pub email_id: Uuid,
    /// The action's type.
    #[diesel(sql_type = Text)]
    pub action_type: String,
    /// Whether the target was at its destination.
    #[diesel(sql_type = Bool)]
    pub at_destination: bool,
    /// The copy's latest location now.
    #[diesel(sql_type = Text)]
    pub location: String,
}

/// Whether the tenant has a pending action (an index probe): most of the time none, and a mail-flow
/// batch need not look for pending targets among its copies at all.
pub async fn has_pending(conn: &mut Conn, tenant_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        actions::table
            .filter(actions::tenant_id.eq(tenant_id))
            .filter(actions::status.eq(ActionStatus::Pending)),
    ))
    .get_result(conn)
    .await
}

/// The targets of pending actions among the copies `email_ids`, with where each copy is now.
pub async fn pending_targets_of(
    conn: &mut Conn,
    tenant_id: &str,
    email_ids: &[Uuid],
) -> QueryResult<Vec<PendingTarget>> {
    if email_ids.is_empty() {
        return Ok(vec![]);
    }
    prepared::sql(
        "SELECT t.action_id, t.email_id, a.action_type, t.at_destination, \
             e.latest_delivery_location AS location \
         FROM action_targets t \
         JOIN actions a ON a.tenant_id = t.tenant_id AND a.id = t.action_id AND a.status = 'PENDING' \
         JOIN emails e ON e.tenant_id = t.tenant_id AND e.id = t.email_id AND e.received_at = t.received_at \
         WHERE t.tenant_id = $1 AND t.email_id = ANY($2::uuid[]) \
         ORDER BY t.action_id, t.email_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .load(conn)
    .await
}

/// Sets whether pending targets are at their destination and moves their actions' counts by as much;
/// returns the actions (still pending) whose targets are now all there.
pub async fn flip_at_destination(
    conn: &mut Conn,
    tenant_id: &str,
    flips: &[(Uuid, Uuid, bool)],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    if flips.is_empty() {
        return Ok(vec![]);
    }
    // The actions' rows in id order first: two transactions flipping the same actions never lock them
    // in opposite orders.
    let mut ids: Vec<Uuid> = flips.iter().map(|f| f.0).collect();
    ids.sort_unstable();
    ids.dedup();
    prepared::sql(
        "SELECT id FROM actions WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND status = 'PENDING' \
         ORDER BY id FOR UPDATE",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(&ids)
    .load::<prepared::IdRow>(conn)
    .await?;
    let rows: Vec<Done> = prepared::sql(
        "WITH f AS ( \
             UPDATE action_targets t SET at_destination = u.there \
             FROM unnest($2::uuid[], $3::uuid[], $4::bool[]) AS u(action_id, email_id, there) \
             WHERE t.tenant_id = $1 AND t.action_id = u.action_id AND t.email_id = u.email_id \
               AND t.at_destination <> u.there \
             RETURNING t.action_id, CASE WHEN u.there THEN 1 ELSE -1 END AS d), \
         s AS (SELECT action_id, sum(d)::int AS d FROM f GROUP BY action_id) \
         UPDATE actions a SET at_destination = a.at_destination + s.d, updated_at = $5 \
         FROM s WHERE a.tenant_id = $1 AND a.id = s.action_id AND a.status = 'PENDING' \
         RETURNING a.id, (a.at_destination >= a.target_count) AS done",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(column(flips, |f| f.0))
    .bind::<Array<SqlUuid>, _>(column(flips, |f| f.1))
    .bind::<Array<Bool>, _>(column(flips, |f| f.2))
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok(rows.into_iter().filter(|d| d.done).map(|d| d.id).collect())
}

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Bool)]
    done: bool,
}

/// Tenants with pending actions whose time ran out at `now` (at most `limit`).
pub async fn tenants_with_due(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<String>> {
    actions::table
        .filter(actions::status.eq(ActionStatus::Pending))
        .filter(actions::expires_at.le(now))
        .select(actions::tenant_id)
        .distinct()
        .limit(limit)
        .load(conn)
        .await
}

/// Ends pending actions whose targets are all at their destination: `ALREADY_REMEDIATED`, every target
/// `ALREADY_IN_DESTINATION`. Returns the actions it ended.
pub async fn already_remediated(
    conn: &mut Conn,
    tenant_id: &str,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Action>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let ended: Vec<Action> = diesel::update(actions::table)
        .filter(actions::tenant_id.eq(tenant_id))
        .filter(actions::id.eq_any(ids))
        .filter(actions::status.eq(ActionStatus::Pending))
        .filter(actions::at_destination.ge(actions::target_count))
        .set((
            actions::status.eq(ActionStatus::AlreadyRemediated),
            actions::already_count.eq(actions::target_count),
            actions::completed_at.eq(now),
            actions::updated_at.eq(now),
        ))
        .returning(Action::as_returning())
        .get_results(conn)
        .await?;
    let ended_ids: Vec<Uuid> = ended.iter().map(|a| a.id).collect();
    if !ended_ids.is_empty() {
        diesel::update(action_targets::table)
            .filter(action_targets::tenant_id.eq(tenant_id))
            .filter(action_targets::action_id.eq_any(&ended_ids))
            .filter(action_targets::outcome.is_null())
            .set((
                action_targets::outcome.eq(ActionOutcome::AlreadyInDestination),
                action_targets::executed_at.eq(now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(ended)
}

/// Expires up to `limit` pending actions (of `tenant_id`, or of every tenant) whose time ran out;
/// returns them. Rows another transaction holds (a decision under way) are left for the next sweep.
pub async fn expire_due(
    conn: &mut Conn,
    tenant_id: Option<&str>,
    only: Option<Uuid>,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Action>> {
    prepared::sql(
        "UPDATE actions a SET status = 'EXPIRED', completed_at = $1, updated_at = $1 \
         FROM (SELECT tenant_id, id FROM actions WHERE status = 'PENDING' AND expires_at <= $1 \
                 AND ($3::text IS NULL OR tenant_id = $3) AND ($4::uuid IS NULL OR id = $4) \
               ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) d \
         WHERE a.tenant_id = d.tenant_id AND a.id = d.id AND a.status = 'PENDING' \
         RETURNING a.*",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Int8, _>(limit)
    .bind::<Nullable<Text>, _>(tenant_id)
    .bind::<Nullable<SqlUuid>, _>(only)
    .load(conn)
    .await
}

fn filtered<'a>(tenant_id: &'a str, f: &'a ActionFilter) -> actions::BoxedQuery<'a, diesel::pg::Pg> {
    let mut q = actions::table.filter(actions::tenant_id.eq(tenant_id)).into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(actions::status.eq_any(&f.statuses));
    }
    if !f.sources.is_empty() {
        q = q.filter(actions::source.eq_any(&f.sources));
    }
    if !f.types.is_empty() {
        q = q.filter(actions::action_type.eq_any(&f.types));
    }
    if let Some(id) = f.incident_id {
        q = q.filter(actions::incident_id.eq(id));
    }
    if let Some(t) = f.created_after {
        q = q.filter(actions::created_at.ge(t));
    }
    if let Some(t) = f.created_before {
        q = q.filter(actions::created_at.lt(t));
    }
    q
}

/// Up to `limit` actions matching `f` after (`at`, `id`), newest first (oldest first with `ascending`).
pub async fn page(
    conn: &mut Conn,
    tenant_id: &str,
    f: &ActionFilter,
    ascending: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Action>> {
    let mut q = filtered(tenant_id, f);
    if let Some((at, id)) = after {
        q = if ascending {
            q.filter(actions::created_at.gt(at).or(actions::created_at.eq(at).and(actions::id.gt(id))))
        } else {
            q.filter(actions::created_at.lt(at).or(actions::created_at.eq(at).and(actions::id.lt(id))))
        };
    }
    let q = if ascending {
        q.order_by((actions::created_at.asc(), actions::id.asc()))
    } else {
        q.order_by((actions::created_at.desc(), actions::id.desc()))
    };
    q.limit(limit).select(Action::as_select()).load(conn).await
}

/// How many actions match `f`.
pub async fn count(conn: &mut Conn, tenant_id: &str, f: &ActionFilter) -> QueryResult<i64> {
    filtered(tenant_id, f).count().get_result(conn).await
}

/// Pending actions per incident, for the incidents given.
pub async fn pending_counts(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    let rows: Vec<(Option<Uuid>, i64)> = actions::table
        .filter(actions::tenant_id.eq(tenant_id))
        .filter(actions::incident_id.eq_any(incident_ids))
        .filter(actions::status.eq(ActionStatus::Pending))
        .group_by(actions::incident_id)
        .select((actions::incident_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|(id, n)| id.map(|id| (id, n))).collect())
}

/// A target with where its copy is now (`None`: no longer in the store).
#[derive(Debug, Clone, QueryableByName)]
pub struct TargetNow {
    /// The target.
    #[diesel(embed)]
    pub target: ActionTarget,
    /// Its copy's latest location now.
    #[diesel(sql_type = Nullable<Text>)]
    pub current_location: Option<DeliveryLocation>,
}

/// For each action of `action_ids`, up to `limit` targets after copy id `after` (by copy id), with the
/// outcomes given (all when empty), each with its copy's location now: one statement for a page of
/// actions.
pub async fn targets(
    conn: &mut Conn,
    tenant_id: &str,
    action_ids: &[Uuid],
    outcomes: &[ActionOutcome],
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<TargetNow>> {
    prepared::sql(
        "SELECT t.*, e.latest_delivery_location AS current_location FROM unnest($2::uuid[]) AS a(id) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM action_targets WHERE tenant_id = $1 AND action_id = a.id \
               AND (cardinality($3::text[]) = 0 OR outcome = ANY($3::text[])) \
               AND ($4::uuid IS NULL OR email_id > $4) \
             ORDER BY email_id LIMIT $5) t \
         LEFT JOIN emails e ON e.tenant_id = $1 AND e.id = t.email_id AND e.received_at = t.received_at \
         ORDER BY t.action_id, t.email_id",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(action_ids)
    .bind::<Array<Text>, _>(column(outcomes, |o| o.as_str()))
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// How many targets of an action have the outcomes given (all when empty).
pub async fn target_count(
    conn: &mut Conn,
    tenant_id: &str,
    action_id: Uuid,
    outcomes: &[ActionOutcome],
) -> QueryResult<i64> {
    let mut q = action_targets::table
        .filter(action_targets::tenant_id.eq(tenant_id))
        .filter(action_targets::action_id.eq(action_id))
        .into_boxed();
    if !outcomes.is_empty() {
        q = q.filter(action_targets::outcome.eq_any(outcomes));
    }
    q.count().get_result(conn).await
}

/// For each copy, the newest `per_copy` actions that target it.
pub async fn of_emails(
    conn: &mut Conn,
    tenant_id: &str,
    email_ids: &[Uuid],
    per_copy: i64,
) -> QueryResult<Vec<(Uuid, Action)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        email_id: Uuid,
        #[diesel(embed)]
        action: Action,
    }
    let rows: Vec<Row> = prepared::sql(
        "SELECT c.email_id, a.* FROM unnest($2::uuid[]) AS c(email_id) \
         CROSS JOIN LATERAL ( \
             SELECT a.* FROM action_targets t JOIN actions a ON a.tenant_id = t.tenant_id AND a.id = t.action_id \
             WHERE t.tenant_id = $1 AND t.email_id = c.email_id \
             ORDER BY a.created_at DESC, a.id DESC LIMIT $3) a",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(email_ids)
    .bind::<Int8, _>(per_copy)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.email_id, r.action)).collect())
}

/// For each incident, its newest `per_incident` actions with the statuses given (all when empty).
pub async fn of_incidents(
    conn: &mut Conn,
    tenant_id: &str,
    incident_ids: &[Uuid],
    statuses: &[ActionStatus],
    per_incident: i64,
) -> QueryResult<Vec<Action>> {
    prepared::sql(
        "SELECT a.* FROM unnest($2::uuid[]) AS i(id) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM actions WHERE tenant_id = $1 AND incident_id = i.id \
               AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[])) \
             ORDER BY created_at DESC, id DESC LIMIT $4) a",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<Array<SqlUuid>, _>(incident_ids)
    .bind::<Array<Text>, _>(column(statuses, |s| s.as_str()))
    .bind::<Int8, _>(per_incident)
    .load(conn)
    .await
}
