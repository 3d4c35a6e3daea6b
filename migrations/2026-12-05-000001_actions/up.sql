-- Remediation actions (issue 11): an action moves a set of e-mail copies fixed when it was proposed (its
-- targets). It waits for approval (PENDING), runs as a job (APPROVED, RUNNING) and ends COMPLETED or
-- FAILED with one outcome per target; or it ends undecided (REJECTED, CANCELLED, EXPIRED) or with every
-- target at its destination before anyone approved (ALREADY_REMEDIATED).
-- The first schema's placeholder tables were never used: they go.
DROP TABLE IF EXISTS action_targets;
DROP TABLE IF EXISTS actions;

CREATE TABLE actions (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    id                  UUID NOT NULL,
    action_type         TEXT NOT NULL,
    source              TEXT NOT NULL,
    status              TEXT NOT NULL,
    incident_id         UUID,
    investigation_id    UUID,
    proposed_by         TEXT NOT NULL,
    proposed_by_name    TEXT,
    comment             TEXT,
    -- The four-eyes rule as it was at proposal: a decision needs a second person if it was on then or is now.
    four_eyes           BOOLEAN NOT NULL,
    decided_by          TEXT,
    decided_at          TIMESTAMPTZ,
    decision_comment    TEXT,
    -- What the proposal found (copies by location, mailboxes, left out and why), as JSON.
    preview             JSONB NOT NULL,
    target_count        INT NOT NULL,
    -- Targets now at the destination while the action waits; all of them makes it ALREADY_REMEDIATED.
    at_destination      INT NOT NULL DEFAULT 0,
    success_count       INT NOT NULL DEFAULT 0,
    failed_count        INT NOT NULL DEFAULT 0,
    already_count       INT NOT NULL DEFAULT 0,
    not_found_count     INT NOT NULL DEFAULT 0,
    expires_at          TIMESTAMPTZ NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_created ON actions (tenant_id, created_at DESC, id DESC);
CREATE INDEX actions_status ON actions (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX actions_incident ON actions (tenant_id, incident_id, created_at DESC, id DESC)
    WHERE incident_id IS NOT NULL;
-- The sweep's work: pending actions by deadline, and actions approved or running (whose job may have
-- failed for good).
CREATE INDEX actions_pending_expiry ON actions (expires_at) WHERE status = 'PENDING';
CREATE INDEX actions_active ON actions (created_at) WHERE status IN ('APPROVED', 'RUNNING');
-- Pending actions by id within a tenant: what re-evaluation joins every mail-flow batch's targets to.
CREATE INDEX actions_pending ON actions (tenant_id, id) WHERE status = 'PENDING';

-- One row per copy an action acts on. A target's outcome is written in the transaction that moves the
-- copy, and only while it is null: whoever runs the action, however often, a copy moves once.
CREATE TABLE action_targets (
    tenant_id           TEXT NOT NULL,
    action_id           UUID NOT NULL,
    email_id            UUID NOT NULL,
    -- The copy's partition key, so the copy is found in its one week.
    received_at         TIMESTAMPTZ NOT NULL,
    network_message_id  TEXT NOT NULL,
    recipient           TEXT NOT NULL,
    -- Where the copy was when the action was proposed.
    location_at_proposal TEXT NOT NULL,
    at_destination      BOOLEAN NOT NULL DEFAULT false,
    outcome             TEXT,
    -- Where the copy was when the action ran, and where it went.
    from_location       TEXT,
    to_location         TEXT,
    executed_at         TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, action_id, email_id),
    FOREIGN KEY (tenant_id, action_id) REFERENCES actions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX action_targets_email ON action_targets (tenant_id, email_id);
-- What an execution step takes next.
CREATE INDEX action_targets_open ON action_targets (tenant_id, action_id, email_id) WHERE outcome IS NULL;

-- Events name the action they concern, so the hub loads it once per read.
ALTER TABLE events ADD COLUMN action_id UUID;
