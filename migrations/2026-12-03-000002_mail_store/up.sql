-- The mail store (issue 10): one row per copy (message per recipient), kept 30 days in weekly
-- partitions by received_at, with each copy's delivery timeline partitioned alike, so retention detaches
-- and drops whole partitions and costs nothing per row.
--
-- Weekly, not daily: a query over 30 days locks every partition it may touch and each of its indexes.
-- Daily partitions (31 x 6 relations) at 32 concurrent clients need about 6,000 locks beyond the 16
-- fast-path slots each backend has, about PostgreSQL's whole default lock table (64 x 100); weekly ones
-- (6 x 6) need a tenth of that.
--
-- Hunting values that are looked up by equality (sender addresses and domains, their parent domains for
-- `*.domain`, recipients, URL hosts, attachment hashes and names, detection technologies, cluster ids)
-- are computed at ingest into `keys`: 64-bit ids of (tenant, kind, value), one GIN index for all of them.
-- The tenant is part of every id, so one tenant's lookups never read another's postings.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

DROP TABLE IF EXISTS email_events;
DROP TABLE IF EXISTS emails;

CREATE TABLE emails (
    tenant_id                   TEXT NOT NULL,
    id                          UUID NOT NULL,
    received_at                 TIMESTAMPTZ NOT NULL,
    network_message_id          TEXT NOT NULL,
    internet_message_id         TEXT,
    recipient                   TEXT NOT NULL,
    recipient_domain            TEXT NOT NULL,
    envelope_sender             TEXT,
    envelope_sender_domain      TEXT,
    header_from                 TEXT,
    sender_domain               TEXT,
    sender_display_name         TEXT,
    sender_ip                   TEXT,
    subject                     TEXT,
    direction                   TEXT NOT NULL,
    delivery_action             TEXT NOT NULL,
    original_delivery_location  TEXT NOT NULL,
    latest_delivery_location    TEXT NOT NULL,
    threat_types                TEXT[] NOT NULL DEFAULT '{}',
    phish_confidence            TEXT,
    detection_technologies      TEXT[] NOT NULL DEFAULT '{}',
    urls                        TEXT[] NOT NULL DEFAULT '{}',
    url_domains                 TEXT[] NOT NULL DEFAULT '{}',
    attachments                 JSONB NOT NULL DEFAULT '[]',
    cluster_id                  TEXT,
    keys                        BIGINT[] NOT NULL DEFAULT '{}',
    -- MAIL_FLOW: pushed by a gateway; ALERT: learned from an alert's e-mail evidence.
    source                      TEXT NOT NULL,
    -- What overrode the filtering verdict (the tenant allow/block list), when anything did.
    override_source             TEXT,
    -- Time of the change the current state reflects; an update older than it only adds to the timeline.
    state_at                    TIMESTAMPTZ NOT NULL,
    -- When Parapet itself last moved the copy (remediation).
    moved_at                    TIMESTAMPTZ,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id, received_at),
    UNIQUE (tenant_id, network_message_id, recipient, received_at)
) PARTITION BY RANGE (received_at);

CREATE INDEX emails_received ON emails (tenant_id, received_at DESC, id DESC);
CREATE INDEX emails_keys ON emails USING gin (keys);
CREATE INDEX emails_subject ON emails USING gin (subject gin_trgm_ops);

CREATE TABLE email_events (
    tenant_id      TEXT NOT NULL,
    email_id       UUID NOT NULL,
    -- The copy's received_at: the partition key, so the timeline goes with its copy.
    received_at    TIMESTAMPTZ NOT NULL,
    id             UUID NOT NULL,
    kind           TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    from_location  TEXT,
    to_location    TEXT,
    actor          TEXT,
    reason         TEXT,
    action_id      UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    -- A re-sent record adds nothing: one event per (copy, time, kind, destination).
    UNIQUE NULLS NOT DISTINCT (tenant_id, email_id, received_at, at, kind, to_location)
) PARTITION BY RANGE (received_at);

-- Makes the weekly partitions (Monday 00:00 UTC to the next) of both tables for every week that
-- [from_at, to_at] touches, if missing. A partition is made as a table of its own and then attached:
-- ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, which readers and writers never wait for (CREATE
-- TABLE ... PARTITION OF would take ACCESS EXCLUSIVE, queueing every query behind a long hunt). Callers
-- racing to make the same week serialise on that same lock, which also refreshes this session's view
-- of the catalog, so the second finds the week made.
CREATE FUNCTION parapet_ensure_mail_partitions(from_at TIMESTAMPTZ, to_at TIMESTAMPTZ)
RETURNS INT LANGUAGE plpgsql AS $$
DECLARE
    week TIMESTAMP := date_trunc('week', from_at AT TIME ZONE 'UTC');
    made INT := 0;
    suffix TEXT;
    parent TEXT;
BEGIN
    WHILE week <= (to_at AT TIME ZONE 'UTC') LOOP
        suffix := to_char(week, 'YYYYMMDD');
        FOREACH parent IN ARRAY ARRAY['emails', 'email_events'] LOOP
            IF to_regclass(parent || '_p' || suffix) IS NULL THEN
                EXECUTE format('LOCK TABLE %I IN SHARE UPDATE EXCLUSIVE MODE', parent);
                IF to_regclass(parent || '_p' || suffix) IS NULL THEN
                    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                                   parent || '_p' || suffix, parent);
                    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                                   parent, parent || '_p' || suffix, (week AT TIME ZONE 'UTC'),
                                   ((week + interval '7 days') AT TIME ZONE 'UTC'));
                    made := made + 1;
                END IF;
            END IF;
        END LOOP;
        week := week + interval '7 days';
    END LOOP;
    RETURN made;
END
$$;
