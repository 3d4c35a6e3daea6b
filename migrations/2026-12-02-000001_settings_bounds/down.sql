ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_max_key_prevalence_range;
