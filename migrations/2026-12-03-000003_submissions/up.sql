-- Submissions (issue 10): an analyst reports an e-mail copy, a URL or a file as wrongly blocked or
-- wrongly allowed. The result is computed at once from the tenant's own data; the row keeps what the
-- copy was (it may leave the 30-day store before the submission is read) and the allow/block entry the
-- submission created, if any.
DROP TABLE IF EXISTS submissions;

CREATE TABLE submissions (
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    id                    UUID NOT NULL,
    content_type          TEXT NOT NULL,
    category              TEXT NOT NULL,
    email_id              UUID,
    network_message_id    TEXT,
    recipient             TEXT,
    sender                TEXT,
    subject               TEXT,
    url                   TEXT,
    file_sha256           TEXT,
    submitted_by          TEXT NOT NULL,
    submitted_by_name     TEXT,
    status                TEXT NOT NULL,
    result_category       TEXT,
    result                TEXT,
    result_detail         TEXT,
    allow_block_entry_id  UUID,
    created_at            TIMESTAMPTZ NOT NULL,
    completed_at          TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX submissions_created ON submissions (tenant_id, created_at DESC, id DESC);
