DROP TABLE jobs, events, submissions, allow_block_entries, action_targets, actions, investigation_alerts,
    investigations, email_events, emails, activity, comments, alert_keys, evidence, alerts, incidents, tenants;
