ALTER TABLE tenants DROP COLUMN accepted_domains;
