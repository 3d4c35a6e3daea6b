-- Issue 8: correlation's per-key locks become row locks on this table. One advisory lock per key of a
-- 500-alert batch overflowed PostgreSQL's shared lock table ("out of shared memory") under concurrency;
-- a row lock lives in the row itself, however many a transaction takes. A row per key that was ever
-- locked (`key_hash`: a hash of tenant, kind and value; a collision only makes two keys wait on each
-- other). Rows are never updated, only locked, so the table does not bloat. UNLOGGED: a lock needs
-- no durability, so neither its rows nor its row locks write WAL (half the cost of locking a row); after
-- a crash the table is empty, and ingestion inserts the rows it needs again.
CREATE UNLOGGED TABLE correlation_locks (
    tenant_id TEXT NOT NULL,
    key_hash  INT8 NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);

-- Issue 8: a re-send that changes nothing is recognised by a fingerprint of what the source sent
-- (normalised); NULL on alerts stored before, whose next re-send counts as a change and records it.
ALTER TABLE alerts ADD COLUMN source_hash TEXT;
