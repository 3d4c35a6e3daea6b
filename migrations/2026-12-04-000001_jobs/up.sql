-- The job queue (issue 11): background work every replica shares. A worker claims due jobs with
-- FOR UPDATE SKIP LOCKED and holds each under a lease it renews while it works; a job whose lease ran
-- out (its worker died) is due again and another worker takes it over. A failed run is retried with
-- backoff until its attempts are spent. Handlers make every step idempotent, so a run taken over
-- repeats nothing that was done.
-- The first schema's placeholder table was never used: it goes.
DROP TABLE IF EXISTS jobs;

CREATE TABLE jobs (
    id            UUID PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL DEFAULT '{}',
    -- QUEUED (due at run_at), RUNNING (leased), SUCCEEDED, FAILED (attempts spent or refused).
    status        TEXT NOT NULL,
    attempts      INT NOT NULL DEFAULT 0,
    max_attempts  INT NOT NULL,
    run_at        TIMESTAMPTZ NOT NULL,
    lease_owner   TEXT,
    lease_until   TIMESTAMPTZ,
    last_error    TEXT,
    -- Enqueueing the same (tenant, kind, dedupe key) twice makes one job.
    dedupe_key    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);

CREATE UNIQUE INDEX jobs_dedupe ON jobs (tenant_id, kind, dedupe_key) WHERE dedupe_key IS NOT NULL;
-- What a worker claims: queued jobs by due time, and running ones by lease end (taken over once past).
CREATE INDEX jobs_due ON jobs (run_at) WHERE status = 'QUEUED';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE status = 'RUNNING';
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at DESC);
