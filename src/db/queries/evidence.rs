//! Evidence of alerts.
