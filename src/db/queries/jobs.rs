//! The SQL of the job queue: enqueueing (once per dedupe key), claiming due jobs and jobs whose lease
//! ran out with `FOR UPDATE SKIP LOCKED`, renewing a lease, and recording how a run ended; every write
//! after the claim names the lease owner, so a worker that lost its job to another changes nothing.

use crate::db::prepared;
use crate::db::Conn;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// A job as stored.
#[derive(Debug, Clone, QueryableByName, PartialEq)]
pub struct Job {
    /// Its id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// The tenant it works for.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// What it does (the runner's dispatch key).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Its input.
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Runs started so far (this one included, once claimed).
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// Runs it may take before it fails for good.
    #[diesel(sql_type = Int4)]
    pub max_attempts: i32,
    /// When it is due.
    #[diesel(sql_type = Timestamptz)]
    pub run_at: DateTime<Utc>,
    /// The worker holding it.
    #[diesel(sql_type = Nullable<Text>)]
    pub lease_owner: Option<String>,
    /// Until when that worker holds it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_until: Option<DateTime<Utc>>,
    /// Why its last run failed.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// When it ended.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The tenant it works for.
    pub tenant_id: String,
    /// What it does.
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// Runs it may take.
    pub max_attempts: i32,
    /// When it is first due.
    pub run_at: DateTime<Utc>,
    /// Enqueueing the same (tenant, kind, key) again returns the job already there.
    pub dedupe_key: Option<String>,
}

/// Enqueues `job` (or finds the job its dedupe key already made); returns its id.
pub async fn enqueue(conn: &mut Conn, job: &NewJob, now: DateTime<Utc>) -> diesel::QueryResult<Uuid> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let rows: Vec<Id> = prepared::sql(
        "WITH ins AS (INSERT INTO jobs (id, tenant_id, kind, payload, status, max_attempts, run_at, dedupe_key, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'QUEUED', $5, $6, $7, $8, $8) \
             ON CONFLICT (tenant_id, kind, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id) \
         SELECT id FROM ins UNION ALL \
         SELECT id FROM jobs WHERE tenant_id = $2 AND kind = $3 AND dedupe_key = $7 AND NOT EXISTS (SELECT 1 FROM ins)",
    )
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Text, _>(job.tenant_id.as_str())
    .bind::<Text, _>(job.kind.as_str())
    .bind::<Jsonb, _>(job.payload.clone())
    .bind::<Int4, _>(job.max_attempts)
    .bind::<Timestamptz, _>(job.run_at)
    .bind::<Nullable<Text>, _>(job.dedupe_key.as_deref())
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    if let Some(r) = rows.into_iter().next() {
        return Ok(r.id);
    }
    // Another transaction inserted the same key after this statement's snapshot was taken (the insert
    // waited for it, then did nothing): a new statement sees its job.
    let rows: Vec<Id> =
        prepared::sql("SELECT id FROM jobs WHERE tenant_id = $1 AND kind = $2 AND dedupe_key = $3")
            .bind::<Text, _>(job.tenant_id.as_str())
            .bind::<Text, _>(job.kind.as_str())
            .bind::<Nullable<Text>, _>(job.dedupe_key.as_deref())
            .load(conn)
            .await?;
    rows.into_iter().next().map(|r| r.id).ok_or(diesel::result::Error::NotFound)
}

/// Claims up to `limit` jobs for `owner` until `now + lease`: queued ones that are due, oldest due
/// first, and running ones whose lease ran out (their worker died) with attempts left. Each claim
/// counts an attempt.
///
/// Rows other workers are claiming are skipped before the limit applies, so concurrent claims share the
/// due jobs out. The conditions stand on the locked rows themselves: a job another worker claimed
/// after this statement's snapshot is checked again on its latest version once locked, and dropped,
/// never claimed twice.
pub async fn claim(
    conn: &mut Conn,
    owner: &str,
    limit: i64,
    lease_secs: f64,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Vec<Job>> {
    prepared::sql(
        "UPDATE jobs j SET status = 'RUNNING', attempts = j.attempts + 1, lease_owner = $1, \
             lease_until = $3 + make_interval(secs => $4), updated_at = $3 \
         FROM (SELECT id FROM jobs \
               WHERE (status = 'QUEUED' AND run_at <= $3) \
                  OR (status = 'RUNNING' AND lease_until < $3 AND attempts < max_attempts) \
               ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED) c \
         WHERE j.id = c.id \
         RETURNING j.id, j.tenant_id, j.kind, j.payload, j.status, j.attempts, j.max_attempts, j.run_at, \
             j.lease_owner, j.lease_until, j.last_error, j.finished_at",
    )
    .bind::<Text, _>(owner)
    .bind::<BigInt, _>(limit)
    .bind::<Timestamptz, _>(now)
    .bind::<Double, _>(lease_secs)
    .load(conn)
    .await
}

/// Extends `owner`'s lease on job `id` to `now + lease`; `false` when the job is no longer its own (the
/// lease ran out and another worker took it, or it ended).
pub async fn renew(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    lease_secs: f64,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    let n = prepared::sql(
        "UPDATE jobs SET lease_until = $3 + make_interval(secs => $4), updated_at = $3 \
         WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Timestamptz, _>(now)
    .bind::<Double, _>(lease_secs)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Records that `owner`'s run of job `id` succeeded; `false` when the job was no longer its own.
pub async fn succeed(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    let n = prepared::sql(
        "UPDATE jobs SET status = 'SUCCEEDED', lease_owner = NULL, lease_until = NULL, finished_at = $3, \
             updated_at = $3 \
         WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Records that `owner`'s run of job `id` failed with `error`: queued again at `retry_at`, or, with no
/// retry (attempts spent, or an error no retry can mend), `FAILED`. `false` when the job was no longer
/// its own.
pub async fn fail(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    let n = prepared::sql(
        "UPDATE jobs SET status = CASE WHEN $4::timestamptz IS NULL THEN 'FAILED' ELSE 'QUEUED' END, \
             run_at = COALESCE($4, run_at), last_error = $3, lease_owner = NULL, lease_until = NULL, \
             finished_at = CASE WHEN $4::timestamptz IS NULL THEN $5 END, updated_at = $5 \
         WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(error)
    .bind::<Nullable<Timestamptz>, _>(retry_at)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Fails for good the jobs whose lease ran out during their last attempt (their worker stopped, say a
/// crash the job itself causes: taking it over again would crash the next worker too); returns how many.
pub async fn fail_abandoned(conn: &mut Conn, now: DateTime<Utc>) -> diesel::QueryResult<usize> {
    prepared::sql(
        "UPDATE jobs SET status = 'FAILED', lease_owner = NULL, lease_until = NULL, finished_at = $1, \
             updated_at = $1, last_error = 'its worker stopped during its last attempt' \
         WHERE status = 'RUNNING' AND lease_until < $1 AND attempts >= max_attempts",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
}

/// One job by id, in its tenant.
pub async fn find(conn: &mut Conn, tenant_id: &str, id: Uuid) -> diesel::QueryResult<Option<Job>> {
    let rows: Vec<Job> = prepared::sql(
        "SELECT id, tenant_id, kind, payload, status, attempts, max_attempts, run_at, lease_owner, lease_until, \
             last_error, finished_at FROM jobs WHERE tenant_id = $1 AND id = $2",
    )
    .bind::<Text, _>(tenant_id)
    .bind::<SqlUuid, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// The queue's state for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, QueryableByName)]
pub struct QueueStats {
    /// Jobs waiting (queued, due or not) or running.
    #[diesel(sql_type = BigInt)]
    pub depth: i64,
    /// Seconds since the oldest due job became due (0 when none is waiting).
    #[diesel(sql_type = Double)]
    pub oldest_age_secs: f64,
}

/// How many jobs wait or run, and how long the oldest due one has waited.
pub async fn stats(conn: &mut Conn, now: DateTime<Utc>) -> diesel::QueryResult<QueueStats> {
    let rows: Vec<QueueStats> = prepared::sql(
        "SELECT (SELECT count(*) FROM jobs WHERE status IN ('QUEUED', 'RUNNING')) AS depth, \
             COALESCE(EXTRACT(EPOCH FROM $1 - (SELECT min(run_at) FROM jobs WHERE status = 'QUEUED' AND run_at <= $1)), 0)::float8 \
             AS oldest_age_secs",
    )
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().unwrap_or(QueueStats { depth: 0, oldest_age_secs: 0.0 }))
}
