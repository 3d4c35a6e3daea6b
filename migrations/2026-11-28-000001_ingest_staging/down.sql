ALTER TABLE alert_keys ADD CONSTRAINT alert_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE evidence ADD CONSTRAINT evidence_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE alerts ADD CONSTRAINT alerts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE alerts ALTER CONSTRAINT alerts_tenant_id_incident_id_fkey NOT DEFERRABLE;
ALTER TABLE alerts DROP COLUMN malicious_evidence, DROP COLUMN mailboxes;
