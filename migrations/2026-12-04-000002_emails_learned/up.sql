-- Copies learned from alerts, by what a mail-flow record adopts them by: a batch probes every weekly
-- partition for them, and this index holds only them (the unique index over every copy made that probe
-- cost about 46 ms a batch of 2,000). IF NOT EXISTS: a database migrated from a development build that
-- had it in the mail-store migration already holds it.
CREATE INDEX IF NOT EXISTS emails_learned ON emails (tenant_id, network_message_id, recipient)
    WHERE source = 'ALERT';
