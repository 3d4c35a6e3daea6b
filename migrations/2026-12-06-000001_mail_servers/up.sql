-- A tenant's own mail server (issue 12): where its remediation actions move real mail (IMAP) and its
-- inbox rules are read (ManageSieve). One master login opens every mailbox; its password is sealed with
-- the server's PARAPET_SECRET_KEY (nonce and ciphertext; the tenant id is the associated data).
CREATE TABLE mail_servers (
    tenant_id                 TEXT PRIMARY KEY REFERENCES tenants (id),
    host                      TEXT NOT NULL,
    port                      INT NOT NULL,
    tls                       TEXT NOT NULL,
    master_user               TEXT NOT NULL,
    password_sealed           BYTEA NOT NULL,
    sieve_host                TEXT,
    sieve_port                INT,
    junk_folder               TEXT NOT NULL,
    deleted_items_folder      TEXT NOT NULL,
    recoverable_items_folder  TEXT NOT NULL,
    updated_by                TEXT NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);

-- Its changes are in the tenant audit log.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_target_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_target_kind_check
    CHECK (target_kind IN ('ALLOW_BLOCK_ENTRY', 'TENANT_SETTINGS', 'MAIL_SERVER'));
