ALTER TABLE alerts DROP COLUMN source_hash;
DROP TABLE correlation_locks;
