-- The whole Parapet model (DOMAIN.md §3). Every table carries tenant_id, and every key and index starts
-- with it, so the schema can be sharded by tenant later. Enum-like columns are TEXT with CHECKs: adding a
-- value is a one-line migration, and the GraphQL layer owns the spelling.

CREATE TABLE tenants (
    id                      TEXT PRIMARY KEY,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    strong_key_window_hours INT NOT NULL DEFAULT 72 CHECK (strong_key_window_hours BETWEEN 1 AND 8760),
    weak_key_window_hours   INT NOT NULL DEFAULT 24 CHECK (weak_key_window_hours BETWEEN 1 AND 8760),
    max_key_prevalence      INT NOT NULL DEFAULT 1000 CHECK (max_key_prevalence >= 1),
    correlation_ignore      TEXT[] NOT NULL DEFAULT '{}',
    auto_approve            BOOLEAN NOT NULL DEFAULT false,
    four_eyes               BOOLEAN NOT NULL DEFAULT true
);

CREATE TABLE incidents (
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    id                     UUID NOT NULL,
    display_name           TEXT NOT NULL,
    display_name_custom    BOOLEAN NOT NULL DEFAULT false,
    severity               TEXT NOT NULL CHECK (severity IN ('UNKNOWN','INFORMATIONAL','LOW','MEDIUM','HIGH')),
    severity_custom        BOOLEAN NOT NULL DEFAULT false,
    status                 TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','IN_PROGRESS','RESOLVED','REDIRECTED')),
    classification         TEXT NOT NULL DEFAULT 'UNKNOWN',
    determination          TEXT NOT NULL DEFAULT 'UNKNOWN',
    assigned_to            TEXT,
    custom_tags            TEXT[] NOT NULL DEFAULT '{}',
    system_tags            TEXT[] NOT NULL DEFAULT '{}',
    resolving_comment      TEXT,
    priority_score         INT NOT NULL DEFAULT 0 CHECK (priority_score BETWEEN 0 AND 100),
    priority_reasons       TEXT[] NOT NULL DEFAULT '{}',
    alert_count            INT NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_update_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at            TIMESTAMPTZ,
    redirect_incident_id   UUID,
    last_modified_by       TEXT,
    version                INT NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX incidents_queue ON incidents (tenant_id, status, last_update_at DESC);
CREATE INDEX incidents_created ON incidents (tenant_id, created_at DESC);

CREATE TABLE alerts (
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    id                    UUID NOT NULL,
    incident_id           UUID NOT NULL,
    provider_alert_id     TEXT NOT NULL,
    service_source        TEXT NOT NULL,
    detection_source      TEXT,
    alert_policy          TEXT,
    title                 TEXT NOT NULL,
    description           TEXT,
    severity              TEXT NOT NULL,
    status                TEXT NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW','IN_PROGRESS','RESOLVED')),
    classification        TEXT NOT NULL DEFAULT 'UNKNOWN',
    determination         TEXT NOT NULL DEFAULT 'UNKNOWN',
    assigned_to           TEXT,
    category              TEXT,
    mitre_techniques      TEXT[] NOT NULL DEFAULT '{}',
    investigation_state   TEXT,
    first_activity_at     TIMESTAMPTZ,
    last_activity_at      TIMESTAMPTZ,
    -- last activity, else first activity, else ingest time: what correlation windows measure
    activity_at           TIMESTAMPTZ NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_update_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at           TIMESTAMPTZ,
    correlation_kind      TEXT NOT NULL CHECK (correlation_kind IN ('NEW_INCIDENT','JOINED','MERGED','MANUAL')),
    correlation_matched   JSONB NOT NULL DEFAULT '[]',
    correlation_skipped   JSONB NOT NULL DEFAULT '[]',
    correlated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, incident_id) REFERENCES incidents (tenant_id, id),
    UNIQUE (tenant_id, service_source, provider_alert_id)
);
CREATE INDEX alerts_incident ON alerts (tenant_id, incident_id, created_at);
CREATE INDEX alerts_created ON alerts (tenant_id, created_at DESC);

CREATE TABLE evidence (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    id                  UUID NOT NULL,
    alert_id            UUID NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('EMAIL','MAIL_CLUSTER','MAILBOX','MAILBOX_CONFIGURATION','USER','URL','FILE','IP')),
    -- identifies the entity across alerts (e.g. EMAIL:<networkMessageId>:<recipient>), for de-duplication
    entity_key          TEXT NOT NULL,
    verdict             TEXT NOT NULL DEFAULT 'UNKNOWN',
    remediation_status  TEXT NOT NULL DEFAULT 'NONE',
    roles               TEXT[] NOT NULL DEFAULT '{}',
    data                JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX evidence_alert ON evidence (tenant_id, alert_id);
CREATE INDEX evidence_entity ON evidence (tenant_id, entity_key);

-- Correlation keys of each alert (DOMAIN.md §4).
CREATE TABLE alert_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    alert_id     UUID NOT NULL,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    activity_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, kind, value),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_keys_lookup ON alert_keys (tenant_id, kind, value, activity_at);

CREATE TABLE comments (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           UUID NOT NULL,
    incident_id  UUID,
    alert_id     UUID,
    author       TEXT NOT NULL,
    author_name  TEXT,
    body         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (incident_id IS NOT NULL OR alert_id IS NOT NULL)
);
CREATE INDEX comments_incident ON comments (tenant_id, incident_id, created_at);
CREATE INDEX comments_alert ON comments (tenant_id, alert_id, created_at);

-- Activity log: every change to an incident or alert, by people or the system.
CREATE TABLE activity (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           UUID NOT NULL,
    incident_id  UUID,
    alert_id     UUID,
    actor        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    field        TEXT,
    before       JSONB,
    after        JSONB,
    message      TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX activity_incident ON activity (tenant_id, incident_id, created_at);
CREATE INDEX activity_alert ON activity (tenant_id, alert_id, created_at);

-- Threat Explorer: one row per message per recipient.
CREATE TABLE emails (
    tenant_id                   TEXT NOT NULL REFERENCES tenants (id),
    id                          UUID NOT NULL,
    network_message_id          TEXT NOT NULL,
    internet_message_id         TEXT,
    recipient                   TEXT NOT NULL,
    envelope_sender             TEXT,
    header_from                 TEXT,
    sender_display_name         TEXT,
    sender_domain               TEXT,
    sender_ip                   TEXT,
    subject                     TEXT,
    received_at                 TIMESTAMPTZ NOT NULL,
    direction                   TEXT NOT NULL DEFAULT 'INBOUND',
    delivery_action             TEXT NOT NULL DEFAULT 'DELIVERED',
    original_delivery_location  TEXT NOT NULL DEFAULT 'UNKNOWN',
    latest_delivery_location    TEXT NOT NULL DEFAULT 'UNKNOWN',
    threat_types                TEXT[] NOT NULL DEFAULT '{}',
    phish_confidence            TEXT,
    detection_technologies      TEXT[] NOT NULL DEFAULT '{}',
    urls                        TEXT[] NOT NULL DEFAULT '{}',
    attachments                 JSONB NOT NULL DEFAULT '[]',
    cluster_id                  TEXT,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, network_message_id, recipient)
);
CREATE INDEX emails_received ON emails (tenant_id, received_at DESC);
CREATE INDEX emails_sender ON emails (tenant_id, sender_domain, received_at DESC);
CREATE INDEX emails_cluster ON emails (tenant_id, cluster_id);

CREATE TABLE email_events (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    id             UUID NOT NULL,
    email_id       UUID NOT NULL,
    kind           TEXT NOT NULL,
    from_location  TEXT,
    to_location    TEXT,
    actor          TEXT,
    action_id      UUID,
    detail         TEXT,
    at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, email_id) REFERENCES emails (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX email_events_email ON email_events (tenant_id, email_id, at);

CREATE TABLE investigations (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    id                UUID NOT NULL,
    incident_id       UUID,
    playbook          TEXT NOT NULL,
    trigger_alert_id  UUID,
    triggered_by      TEXT,
    status            TEXT NOT NULL DEFAULT 'QUEUED',
    entities          JSONB NOT NULL DEFAULT '[]',
    log               JSONB NOT NULL DEFAULT '[]',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    ended_at          TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX investigations_incident ON investigations (tenant_id, incident_id);

CREATE TABLE investigation_alerts (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    investigation_id  UUID NOT NULL,
    alert_id          UUID NOT NULL,
    PRIMARY KEY (tenant_id, investigation_id, alert_id)
);

CREATE TABLE actions (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    id                UUID NOT NULL,
    action_type       TEXT NOT NULL,
    source            TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'PENDING',
    incident_id       UUID,
    investigation_id  UUID,
    proposed_by       TEXT,
    decided_by        TEXT,
    decided_at        TIMESTAMPTZ,
    comment           TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL DEFAULT now() + interval '7 days',
    completed_at      TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_status ON actions (tenant_id, status, created_at DESC);
CREATE INDEX actions_incident ON actions (tenant_id, incident_id);

CREATE TABLE action_targets (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    action_id     UUID NOT NULL,
    id            UUID NOT NULL,
    email_id      UUID,
    evidence_id   UUID,
    outcome       TEXT,
    detail        TEXT,
    PRIMARY KEY (tenant_id, action_id, id)
);

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

CREATE TABLE submissions (
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    id                     UUID NOT NULL,
    content_type           TEXT NOT NULL,
    email_id               UUID,
    url                    TEXT,
    file_hash              TEXT,
    category               TEXT NOT NULL,
    submitted_by           TEXT NOT NULL,
    status                 TEXT NOT NULL DEFAULT 'PENDING',
    result                 TEXT,
    allow_block_entry_id   UUID,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at           TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);

-- Outbox: written in the same transaction as the change it announces.
CREATE TABLE events (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    kind         TEXT NOT NULL,
    incident_id  UUID,
    alert_id     UUID,
    actor        TEXT,
    payload      JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX events_created ON events (tenant_id, created_at);

-- Background jobs, taken with FOR UPDATE SKIP LOCKED by any replica.
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
