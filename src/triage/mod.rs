//! Triage: analysts change incidents and alerts (status, severity, owner, classification, name, tags,
//! comments), and the roll-up rules keep the two consistent (DOMAIN.md §4, reference §2.1–2.2):
//!
//! - resolving an incident resolves its open alerts; assigning it assigns all its alerts;
//! - resolving the last open alert of an incident resolves the incident (the system does it);
//! - reopening an alert of a resolved incident reopens the incident;
//! - a classification/determination pair must fit (`Classification::allows`);
//! - `REDIRECTED` incidents are read-only; `version` moves on every change to an incident's own fields;
//! - every change writes activity-log rows with actor, before and after.
//!
//! Each public function runs in one transaction and locks the incidents it changes `FOR UPDATE` (several
//! in id order, as ingestion does), then the alerts. The GraphQL resolvers only check the role and parse
//! ids before calling these.

mod alert;
mod changes;
mod comment;
mod incident;
mod input;

pub use alert::update_alert;
pub use comment::{add_alert_comment, add_incident_comment};
pub use incident::{add_incident_tags, remove_incident_tags, update_incident, update_incidents};
pub use input::{AlertPatch, IncidentPatch};

// The submodules name the activity kinds and the system actor through this module.
use crate::domain::activity::{kind, SYSTEM_ACTOR};

/// Most incidents `updateIncidents` changes at once.
pub const MAX_BULK: usize = 100;
/// Most custom tags an incident holds (and most tags one call may name).
pub const MAX_TAGS: usize = 50;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 100;
