DELETE FROM audit_log WHERE target_kind = 'MAIL_SERVER';
ALTER TABLE audit_log DROP CONSTRAINT audit_log_target_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_target_kind_check
    CHECK (target_kind IN ('ALLOW_BLOCK_ENTRY', 'TENANT_SETTINGS'));
DROP TABLE IF EXISTS mail_servers;
