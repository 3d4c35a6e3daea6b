-- Retention of the event outbox: per tenant, every event at or below `pruned_through` has been deleted.
-- A subscriber resuming after a cursor below it may have missed events and must reload instead.
CREATE TABLE event_watermarks (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants (id),
    pruned_through  BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
