//! Incident-level rules shared by correlation and triage: roll-up of severity, name, priority, status.
