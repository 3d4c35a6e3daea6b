DROP INDEX IF EXISTS actions_pending_rule;
ALTER TABLE actions DROP COLUMN error, DROP COLUMN attempts, DROP COLUMN rule, DROP COLUMN rule_name,
    DROP COLUMN mailbox;
ALTER TABLE action_targets DROP COLUMN error, DROP COLUMN attempts;
