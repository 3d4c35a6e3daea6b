-- Ingestion speed (issue 3): what an incident's roll-up needs from each alert is kept on the alert row, so
-- the roll-up reads only its incident's alerts (not every mailbox key and malicious evidence row of the
-- tenant); and an alert may be written before correlation has picked its incident, so a batch can write
-- its alerts, evidence and keys before it takes its key locks.

ALTER TABLE alerts
    ADD COLUMN mailboxes          TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN malicious_evidence INT4   NOT NULL DEFAULT 0;

UPDATE alerts a SET
    mailboxes = COALESCE((SELECT array_agg(DISTINCT k.value ORDER BY k.value) FROM alert_keys k
                          WHERE k.tenant_id = a.tenant_id AND k.alert_id = a.id AND k.kind = 'MAILBOX'), '{}'),
    malicious_evidence = (SELECT count(*) FROM evidence e
                          WHERE e.tenant_id = a.tenant_id AND e.alert_id = a.id AND e.verdict = 'MALICIOUS');

-- Checked at commit: ingestion stages an alert under the id of the incident it would create, and correlation
-- either creates that incident or moves the alert elsewhere before the transaction ends.
ALTER TABLE alerts ALTER CONSTRAINT alerts_tenant_id_incident_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- These rows' tenant is already checked through the composite key of their parent row; the second check
-- cost one lookup per inserted row.
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_fkey;
ALTER TABLE evidence DROP CONSTRAINT evidence_tenant_id_fkey;
ALTER TABLE alert_keys DROP CONSTRAINT alert_keys_tenant_id_fkey;
