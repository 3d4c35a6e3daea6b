-- Issue 10: the tenant allow/block list (DOMAIN.md "Allow/block entry", reference §1.8) and the tenant
-- audit log. The placeholder `allow_block_entries` of the first migration was never written to, so it is
-- recreated rather than altered.
DROP TABLE allow_block_entries;

CREATE TABLE allow_block_entries (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    id                 UUID NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('SENDER','URL','FILE_HASH','IP')),
    -- normalised (lower-case address or domain, `*.domain`, URL, hash, canonical address or CIDR range):
    -- what matching compares, and what makes an entry a duplicate
    value              TEXT NOT NULL,
    action             TEXT NOT NULL CHECK (action IN ('ALLOW','BLOCK')),
    notes              TEXT,
    -- the effective expiry; NULL exactly when the entry never expires
    expires_at         TIMESTAMPTZ,
    never_expire       BOOLEAN NOT NULL DEFAULT false,
    -- an ALLOW without an explicit date: expires_at moves to last_used_at + this many days on each use
    remove_after_days  INT,
    last_used_at       TIMESTAMPTZ,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by         TEXT,
    -- IP entries as a range (an address is a /32 or /128 range)
    ip_range           CIDR GENERATED ALWAYS AS (CASE WHEN kind = 'IP' THEN value::cidr END) STORED,
    PRIMARY KEY (tenant_id, id),
    -- one entry per value per list, whatever its action; also the index matching looks values up in
    UNIQUE (tenant_id, kind, value),
    CHECK (never_expire = (expires_at IS NULL)),
    CHECK (remove_after_days IS NULL OR (action = 'ALLOW' AND remove_after_days > 0))
);
CREATE INDEX allow_block_entries_created ON allow_block_entries (tenant_id, created_at DESC, id DESC);
-- IP matching: a batch's addresses, cut to each prefix length the tenant's ranges use, are looked up here
-- with `=` (what `ip_range >>= address` means, without checking every range against every address).
CREATE INDEX allow_block_entries_ip ON allow_block_entries (tenant_id, ip_range) WHERE kind = 'IP';

-- Who changed the tenant's configuration (allow/block list, settings), what and when; written in the same
-- transaction as the change.
CREATE TABLE audit_log (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           UUID NOT NULL,
    actor        TEXT NOT NULL,
    actor_name   TEXT,
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('ALLOW_BLOCK_ENTRY','TENANT_SETTINGS')),
    target_id    TEXT,
    action       TEXT NOT NULL CHECK (action IN ('CREATE','UPDATE','DELETE')),
    before       JSONB,
    after        JSONB,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at DESC, id DESC);
