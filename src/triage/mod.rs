//! Triage: analysts change incidents and alerts; roll-up rules and the activity log.
