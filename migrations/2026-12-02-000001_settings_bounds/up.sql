-- maxKeyPrevalence is at most 10,000 (a key seen more often says nothing about a campaign, and probing
-- it costs a scan of that many rows), and the ignore list is stored normalised (trimmed, lower-case, no
-- repeats), so correlation compares entries as they are instead of normalising each one per key check.
UPDATE tenants SET max_key_prevalence = LEAST(GREATEST(max_key_prevalence, 1), 10000)
WHERE max_key_prevalence NOT BETWEEN 1 AND 10000;
ALTER TABLE tenants ADD CONSTRAINT tenants_max_key_prevalence_range CHECK (max_key_prevalence BETWEEN 1 AND 10000);

UPDATE tenants t SET correlation_ignore = n.entries
FROM (
    SELECT id, COALESCE(
        (SELECT array_agg(v ORDER BY first_at)
         FROM (SELECT lower(btrim(e)) AS v, min(o) AS first_at
               FROM unnest(correlation_ignore) WITH ORDINALITY AS u(e, o)
               WHERE btrim(e) <> ''
               GROUP BY lower(btrim(e))) d),
        '{}') AS entries
    FROM tenants
) n
WHERE n.id = t.id AND n.entries IS DISTINCT FROM t.correlation_ignore;
