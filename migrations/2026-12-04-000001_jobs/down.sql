DROP TABLE IF EXISTS jobs;
CREATE TABLE jobs (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    id            UUID NOT NULL,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL DEFAULT 'QUEUED',
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts      INT NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX jobs_due ON jobs (tenant_id, status, run_at);
