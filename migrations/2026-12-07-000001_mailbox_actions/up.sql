-- Actions on real mailboxes (issue 12). A target executed on a tenant's IMAP server may fail for a while
-- (the server is down): each try is counted, the last error kept, and after 5 tries it ends FAILED.
ALTER TABLE action_targets ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE action_targets ADD COLUMN error TEXT;

-- REMOVE_INBOX_RULE acts on one rule of one mailbox, not on copies: the mailbox, the rule's name, the
-- rule as it was read at proposal (conditions, actions, why it is suspicious), and its tries and error.
ALTER TABLE actions ADD COLUMN mailbox TEXT;
ALTER TABLE actions ADD COLUMN rule_name TEXT;
ALTER TABLE actions ADD COLUMN rule JSONB;
ALTER TABLE actions ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE actions ADD COLUMN error TEXT;
-- One pending removal per rule: a second proposal for the same rule is refused while the first waits.
CREATE UNIQUE INDEX actions_pending_rule ON actions (tenant_id, lower(mailbox), rule_name)
    WHERE status = 'PENDING' AND rule_name IS NOT NULL;
