//! The rules of remediation actions: which copies an action can act on, when a copy is already where an
//! action would put it, what running it does to one copy, how the action ends, and what the evidence
//! naming a copy shows meanwhile. Pure functions; the services apply them.

use super::enums::{
    ActionOutcome, ActionSource, ActionStatus, ActionType, DeliveryLocation, EmailEventKind,
    RemediationStatus,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Days a pending action waits for a decision before it expires.
pub const EXPIRY_DAYS: i64 = 7;
/// Most copies an action over an Explorer filter may target (Defender's query-selection limit).
pub const MAX_FILTER_COPIES: usize = 200_000;
/// Most copy ids one call may name (past it, select by filter).
pub const MAX_EMAIL_IDS: usize = 1_000;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// Where an action puts a copy (`None`: it does not move copies).
pub fn destination(t: ActionType) -> Option<DeliveryLocation> {
    match t {
        ActionType::MoveToInbox => Some(DeliveryLocation::Inbox),
        ActionType::MoveToJunk => Some(DeliveryLocation::Junk),
        ActionType::MoveToDeletedItems => Some(DeliveryLocation::DeletedItems),
        ActionType::SoftDelete => Some(DeliveryLocation::SoftDeleted),
        ActionType::HardDelete => Some(DeliveryLocation::HardDeleted),
        ActionType::RemoveInboxRule => None,
    }
}

/// Whether an action moves e-mail copies.
pub fn is_email_action(t: ActionType) -> bool {
    destination(t).is_some()
}

fn is_delete(t: ActionType) -> bool {
    matches!(t, ActionType::MoveToDeletedItems | ActionType::SoftDelete | ActionType::HardDelete)
}

/// Whether a copy at `at` is already where `t` would put it. A hard-deleted copy satisfies any delete.
pub fn satisfied(t: ActionType, at: DeliveryLocation) -> bool {
    destination(t) == Some(at) || (is_delete(t) && at == DeliveryLocation::HardDeleted)
}

/// How an action fits a copy at a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Fit {
    /// The action moves it.
    Act,
    /// Already at the destination: nothing to do.
    AlreadyThere,
    /// Not in a cloud mailbox the action can reach (hard-deleted, on-premises, failed, dropped,
    /// unknown), or quarantined and the action is not a release.
    NotRemediable,
}

/// How `t` fits a copy at `at`.
pub fn fit(t: ActionType, at: DeliveryLocation) -> Fit {
    use DeliveryLocation::*;
    if !is_email_action(t) {
        return Fit::NotRemediable;
    }
    if satisfied(t, at) {
        return Fit::AlreadyThere;
    }
    match at {
        HardDeleted | OnPremExternal | Failed | Dropped | Unknown => Fit::NotRemediable,
        Quarantine if t != ActionType::MoveToInbox => Fit::NotRemediable,
        _ => Fit::Act,
    }
}

/// What running `t` does to a copy now at `at` (`None`: no longer in the store): its outcome, and
/// where it goes when it moves.
pub fn execute(t: ActionType, at: Option<DeliveryLocation>) -> (ActionOutcome, Option<DeliveryLocation>) {
    match at.map(|at| fit(t, at)) {
        None => (ActionOutcome::NotFound, None),
        Some(Fit::AlreadyThere) => (ActionOutcome::AlreadyInDestination, None),
        Some(Fit::NotRemediable) => (ActionOutcome::Failed, None),
        Some(Fit::Act) => match destination(t) {
            Some(to) => (ActionOutcome::Success, Some(to)),
            None => (ActionOutcome::Failed, None),
        },
    }
}

/// The timeline kind of a move an action made.
pub fn event_kind(source: ActionSource, from: DeliveryLocation, t: ActionType) -> EmailEventKind {
    if from == DeliveryLocation::Quarantine && t == ActionType::MoveToInbox {
        return EmailEventKind::QuarantineRelease;
    }
    match source {
        ActionSource::Automated => EmailEventKind::AutomatedRemediation,
        ActionSource::Manual | ActionSource::Explorer => EmailEventKind::ManualRemediation,
    }
}

/// Outcome counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Moved.
    pub success: i32,
    /// Could not be moved.
    pub failed: i32,
    /// Already at the destination.
    pub already: i32,
    /// No longer in the store.
    pub not_found: i32,
}

impl Counts {
    /// Counts one outcome.
    pub fn add(&mut self, o: ActionOutcome) {
        match o {
            ActionOutcome::Success => self.success += 1,
            ActionOutcome::Failed => self.failed += 1,
            ActionOutcome::AlreadyInDestination => self.already += 1,
            ActionOutcome::NotFound => self.not_found += 1,
        }
    }

    /// How a run with these outcomes ends: `FAILED` when something failed and nothing moved or was
    /// already there, else `COMPLETED` (the targets say which failed).
    pub fn final_status(self) -> ActionStatus {
        if self.failed > 0 && self.success == 0 && self.already == 0 {
            ActionStatus::Failed
        } else {
            ActionStatus::Completed
        }
    }
}

/// The remediation status evidence naming a copy shows after the copy's outcome.
pub fn evidence_status(o: ActionOutcome) -> RemediationStatus {
    match o {
        ActionOutcome::Success | ActionOutcome::AlreadyInDestination => RemediationStatus::Remediated,
        ActionOutcome::Failed => RemediationStatus::Unremediated,
        ActionOutcome::NotFound => RemediationStatus::NotFound,
    }
}

/// Whether an action in `status` still waits for a decision.
pub fn is_open(status: ActionStatus) -> bool {
    status == ActionStatus::Pending
}

/// A copy a proposal considers: where it is now and whose mailbox it is in.
#[derive(Debug, Clone)]
pub struct Candidate<Id> {
    /// What identifies the copy to the caller.
    pub id: Id,
    /// Its latest delivery location.
    pub location: DeliveryLocation,
    /// Its recipient (the mailbox).
    pub recipient: String,
}

/// A location and how many copies are there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationCount {
    /// The location.
    pub location: DeliveryLocation,
    /// Copies there.
    pub count: i64,
}

/// The blast radius of a proposal, shown before approval: what the action will move and what it
/// leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Copies the selection named.
    pub selected: i64,
    /// Copies the action will act on (its targets).
    pub targets: i64,
    /// Distinct mailboxes (recipients) among the targets.
    pub mailboxes: i64,
    /// Targets by their location at proposal.
    pub by_location: Vec<LocationCount>,
    /// Copies left out because they are already at the destination.
    pub already_in_destination: i64,
    /// Copies left out because the action cannot reach them, by location.
    pub not_remediable: Vec<LocationCount>,
    /// Ids named that are not copies of the tenant's 30-day store.
    pub not_found: i64,
}

/// Splits `candidates` into the action's targets and its preview (`not_found`: ids named that matched
/// nothing).
pub fn select<Id: Clone>(
    t: ActionType,
    candidates: &[Candidate<Id>],
    not_found: i64,
) -> (Vec<Candidate<Id>>, Preview) {
    let mut targets = Vec::new();
    let mut by_location: BTreeMap<DeliveryLocation, i64> = BTreeMap::new();
    let mut excluded: BTreeMap<DeliveryLocation, i64> = BTreeMap::new();
    let mut mailboxes: BTreeSet<&str> = BTreeSet::new();
    let mut already = 0;
    for c in candidates {
        match fit(t, c.location) {
            Fit::Act => {
                *by_location.entry(c.location).or_default() += 1;
                mailboxes.insert(c.recipient.as_str());
                targets.push(c.clone());
            }
            Fit::AlreadyThere => already += 1,
            Fit::NotRemediable => *excluded.entry(c.location).or_default() += 1,
        }
    }
    let counts = |m: BTreeMap<DeliveryLocation, i64>| {
        m.into_iter().map(|(location, count)| LocationCount { location, count }).collect()
    };
    let preview = Preview {
        selected: candidates.len() as i64 + not_found,
        targets: targets.len() as i64,
        mailboxes: mailboxes.len() as i64,
        by_location: counts(by_location),
        already_in_destination: already,
        not_remediable: counts(excluded),
        not_found,
    };
    (targets, preview)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionType::*;
    use DeliveryLocation::*;

    #[test]
    fn a_hard_deleted_copy_satisfies_any_delete_and_nothing_else() {
        for t in [MoveToDeletedItems, SoftDelete, HardDelete] {
            assert_eq!(fit(t, HardDeleted), Fit::AlreadyThere);
        }
        assert_eq!(fit(MoveToInbox, HardDeleted), Fit::NotRemediable);
        assert_eq!(fit(MoveToJunk, HardDeleted), Fit::NotRemediable);
        assert_eq!(fit(HardDelete, SoftDeleted), Fit::Act);
        assert_eq!(fit(SoftDelete, DeletedItems), Fit::Act);
    }

    #[test]
    fn quarantine_only_releases() {
        assert_eq!(fit(MoveToInbox, Quarantine), Fit::Act);
        assert_eq!(fit(SoftDelete, Quarantine), Fit::NotRemediable);
        assert_eq!(
            event_kind(ActionSource::Manual, Quarantine, MoveToInbox),
            EmailEventKind::QuarantineRelease
        );
        assert_eq!(event_kind(ActionSource::Explorer, Junk, MoveToInbox), EmailEventKind::ManualRemediation);
    }

    #[test]
    fn copies_out_of_reach_fail_and_gone_ones_are_not_found() {
        for at in [OnPremExternal, Failed, Dropped, Unknown] {
            assert_eq!(execute(SoftDelete, Some(at)), (ActionOutcome::Failed, None));
        }
        assert_eq!(execute(SoftDelete, None), (ActionOutcome::NotFound, None));
        assert_eq!(execute(SoftDelete, Some(Inbox)), (ActionOutcome::Success, Some(SoftDeleted)));
        assert_eq!(execute(SoftDelete, Some(SoftDeleted)), (ActionOutcome::AlreadyInDestination, None));
    }

    #[test]
    fn a_run_fails_only_when_nothing_moved_or_was_there() {
        let mut c = Counts::default();
        c.add(ActionOutcome::Failed);
        assert_eq!(c.final_status(), ActionStatus::Failed);
        c.add(ActionOutcome::AlreadyInDestination);
        assert_eq!(c.final_status(), ActionStatus::Completed);
        assert_eq!(Counts::default().final_status(), ActionStatus::Completed);
    }

    #[test]
    fn the_preview_counts_what_is_left_out() {
        let c = |id: u32, location, r: &str| Candidate { id, location, recipient: r.to_string() };
        let cands =
            [c(1, Inbox, "a"), c(2, Inbox, "b"), c(3, Junk, "a"), c(4, SoftDeleted, "c"), c(5, Failed, "d")];
        let (targets, p) = select(SoftDelete, &cands, 2);
        assert_eq!(targets.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.selected, 7);
        assert_eq!(p.targets, 3);
        assert_eq!(p.mailboxes, 2);
        assert_eq!(p.already_in_destination, 1);
        assert_eq!(p.not_remediable, vec![LocationCount { location: Failed, count: 1 }]);
        assert_eq!(
            p.by_location,
            vec![LocationCount { location: Inbox, count: 2 }, LocationCount { location: Junk, count: 1 }]
        );
        assert_eq!(p.not_found, 2);
    }
}
