//! Remediation actions on e-mail: proposed by people (or, later, automated investigations) over copies
//! fixed at proposal, approved under the four-eyes rule, run exactly once as a job through the mailbox
//! interface, re-evaluated while they wait as their copies move, and expired after 7 days. Every change
//! writes the incident's activity log and the outbox (`actionChanged`, and `incidentChanged` when an
//! incident's pending-action count moves) in its own transaction.

pub mod decide;
pub mod evidence;
pub mod expiry;
pub mod mailbox;
pub mod notes;
pub mod propose;
pub mod reevaluate;
pub mod remote;
pub mod rules;
pub mod run;
pub mod stranded;

/// The tenant's action lock (`db::queries::actions::tenant_lock`): taken first by every transaction
/// that proposes, decides, expires or re-evaluates the tenant's actions, so they never deadlock on it.
pub fn lock(tenant_id: &str) -> i64 {
    crate::domain::locks::lock_id(tenant_id, "ACTIONS", "")
}

/// The job kind that runs an action; its payload is `{"actionId": "<uuid>"}`, its dedupe key the id.
pub const JOB_KIND: &str = "ACTION";
