DROP TABLE audit_log;
DROP TABLE allow_block_entries;
CREATE TABLE allow_block_entries (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    id            UUID NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    action        TEXT NOT NULL,
    notes         TEXT,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, kind, value, action)
);
