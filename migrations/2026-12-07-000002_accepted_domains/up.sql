-- The tenant's own mail domains (issue 12): an inbox rule forwarding anywhere else is suspicious. Empty: each
-- mailbox's own domain counts as the tenant's.
ALTER TABLE tenants ADD COLUMN accepted_domains TEXT[] NOT NULL DEFAULT '{}';
