DROP INDEX IF EXISTS emails_learned;
