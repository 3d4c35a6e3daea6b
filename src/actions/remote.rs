//! Running an approved e-mail action on the tenant's own mail server. A step counts a try of up to
//! [`STEP`] open targets (committed at once), works in the recipients' mailboxes outside any
//! transaction (at most `CONNECTIONS_PER_TENANT` sessions at once), then records what each mailbox did
//! in one transaction: the target's outcome, the copy's move in the store and its timeline. A run killed
//! between the two finds the messages where it put them, so the next try reports them
//! `ALREADY_IN_DESTINATION` and nothing moves twice. A target whose mailbox could not be reached stays
//! open with its error for the runner's next try; its fifth failed try ends it `FAILED`.

use super::mailbox::{record_moves, Move};
use super::notes::Notes;
use super::{evidence, reevaluate};
use crate::db::models::Action;
use crate::db::queries::actions::{self as q, Outcome};
use crate::db::queries::remote_targets::{self as rq, Try};
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::actions::{destination, fit, Fit};
use crate::domain::activity::SYSTEM_ACTOR;
use crate::domain::enums::{ActionOutcome, ActionType, DeliveryLocation};
use crate::error::{AppError, AppResult};
use crate::mailserver::imap::{self, Found, Item, MailError};
use crate::mailserver::server::{MailAccess, Server};
use chrono::Utc;
use diesel_async::AsyncConnection;
use futures::StreamExt;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Targets one step tries.
pub const STEP: i64 = 1_000;
/// Tries a target gets before it ends `FAILED`.
pub const MAX_TRIES: i32 = 5;
/// A mailbox session may last this many command timeouts at most.
const SESSION_COMMANDS: u32 = 20;

/// What a step did.
#[derive(Debug, Default)]
pub struct Stepped {
    /// Targets tried (0: none left to try in this run).
    pub tried: usize,
    /// The last target tried, where the run's next step goes on from.
    pub last: Option<Uuid>,
    /// Targets left open for a later try, and one of their errors.
    pub left_open: usize,
    /// An error among them.
    pub error: Option<String>,
    /// The highest try number among them.
    pub tries: i32,
}

/// What became of one tried target.
enum Result_ {
    /// The mailbox answered.
    Done(Found),
    /// The mailbox could not be reached or refused: another try may do better.
    Unreached(String),
    /// Nothing the mail server does can help this copy.
    Refused(String),
}

/// The location a folder of `server` stands for.
fn location_of(server: &Server, folder: &str) -> DeliveryLocation {
    if folder == server.junk {
        DeliveryLocation::Junk
    } else if folder == server.deleted_items {
        DeliveryLocation::DeletedItems
    } else if folder == server.recoverable_items {
        DeliveryLocation::SoftDeleted
    } else {
        DeliveryLocation::Inbox
    }
}

/// The folder a copy the store saw at `at` is most likely in.
fn hint(server: &Server, at: Option<DeliveryLocation>) -> Option<String> {
    match at? {
        l @ (DeliveryLocation::Inbox
        | DeliveryLocation::Junk
        | DeliveryLocation::DeletedItems
        | DeliveryLocation::SoftDeleted) => server.folder_for(l),
        _ => None,
    }
}

/// Works one mailbox's targets; one result per target, in order.
async fn in_mailbox(
    access: &MailAccess,
    server: &Server,
    action_type: ActionType,
    mailbox: &str,
    tries: &[Try],
) -> Vec<Result_> {
    let to = destination(action_type).and_then(|d| server.folder_for(d));
    let mut results: Vec<Option<Result_>> = tries.iter().map(|_| None).collect();
    let mut items = Vec::new();
    let mut index = Vec::new();
    for (i, t) in tries.iter().enumerate() {
        let at = t.location.as_deref().and_then(|l| l.parse::<DeliveryLocation>().ok());
        if let Some(at) = at.filter(|at| fit(action_type, *at) == Fit::NotRemediable) {
            results[i] =
                Some(Result_::Refused(format!("the copy is {}: out of this action's reach", at.as_str())));
            continue;
        }
        match &t.internet_message_id {
            Some(mid) if !imap::valid_message_id(mid.trim()) => {
                results[i] = Some(Result_::Refused(format!(
                "the copy's Internet Message-ID {} is not of the form <left@right>: it is not searched for",
                crate::domain::text::excerpt(mid)
            )))
            }
            Some(mid) => {
                items.push(Item { message_id: mid.trim().to_string(), hint: hint(server, at) });
                index.push(i);
            }
            _ => {
                results[i] = Some(Result_::Refused(
                    "the copy has no Internet Message-ID to find it by in the mailbox".to_string(),
                ))
            }
        }
    }
    if !items.is_empty() {
        // A try that ended without recording an error was cut short (a crash): it may have acted.
        let retried: Vec<bool> =
            index.iter().map(|&i| tries[i].attempts > 1 && tries[i].previous_error.is_none()).collect();
        let done = match access.slot(&server.tenant_id).await {
            Err(_) => Err(MailError("no mail server session could be had".into())),
            Ok(_slot) => match imap::open(server, mailbox).await {
                Err(e) => Err(e),
                Ok(mut mb) => {
                    // Each command has its own timeout; the whole session has one too, so a slow server
                    // cannot hold a tenant's slot and a job worker for hours.
                    let deadline = server.timeout * SESSION_COMMANDS;
                    let r =
                        match tokio::time::timeout(deadline, mb.remediate(&items, to.as_deref(), &retried))
                            .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(MailError(format!(
                                "the mailbox session took longer than {} s",
                                deadline.as_secs()
                            ))),
                        };
                    mb.logout().await;
                    r
                }
            },
        };
        match done {
            Ok(found) => {
                for (k, f) in found.into_iter().enumerate() {
                    results[index[k]] = Some(Result_::Done(f));
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %server.tenant_id, mailbox, error = %e.0, "a mailbox could not be remediated");
                for &i in &index {
                    results[i] = Some(Result_::Unreached(e.0.clone()));
                }
            }
        }
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Result_::Unreached("not tried".into()))).collect()
}

/// Tries the next open targets of running `action` (those after `after`) on `server`.
pub async fn step(
    pool: &Pool,
    access: &MailAccess,
    server: &Server,
    action: &Action,
    after: Option<Uuid>,
) -> AppResult<Stepped> {
    let tid = action.tenant_id.as_str();
    let tries = retry_transient(pool, "starting a try on the mail server", async |conn: &mut Conn| {
        conn.transaction::<_, AppError, _>(async |conn| {
            q::tenant_lock(conn, super::lock(tid), false).await?;
            Ok(rq::start_try(conn, tid, action.id, after, STEP).await?)
        })
        .await
    })
    .await?;
    let mut stepped =
        Stepped { tried: tries.len(), last: tries.last().map(|t| t.email_id), ..Default::default() };
    if tries.is_empty() {
        return Ok(stepped);
    }
    let mut by_mailbox: BTreeMap<String, Vec<Try>> = BTreeMap::new();
    for t in &tries {
        by_mailbox.entry(t.recipient.to_lowercase()).or_default().push(t.clone());
    }
    let per_mailbox: Vec<(Vec<Try>, Vec<Result_>)> = futures::stream::iter(by_mailbox)
        .map(|(mailbox, ts)| async move {
            let r = in_mailbox(access, server, action.action_type, &mailbox, &ts).await;
            (ts, r)
        })
        .buffer_unordered(crate::mailserver::server::CONNECTIONS_PER_TENANT)
        .collect()
        .await;
    let mut results: BTreeMap<Uuid, (Try, Result_)> = BTreeMap::new();
    for (ts, rs) in per_mailbox {
        for (t, r) in ts.into_iter().zip(rs) {
            results.insert(t.email_id, (t, r));
        }
    }
    let results = &results;
    stepped.tries = results.values().map(|(t, _)| t.attempts).max().unwrap_or(1);
    let (open, error) =
        retry_transient(pool, "recording what the mail server did", async |conn: &mut Conn| {
            conn.transaction::<_, AppError, _>(async |conn| settle(conn, server, action, results).await).await
        })
        .await?;
    stepped.left_open = open;
    stepped.error = error;
    Ok(stepped)
}

/// Records what the mailboxes did with the tried targets still open; returns how many stay open.
async fn settle(
    conn: &mut Conn,
    server: &Server,
    action: &Action,
    results: &BTreeMap<Uuid, (Try, Result_)>,
) -> AppResult<(usize, Option<String>)> {
    let now = Utc::now();
    let tid = action.tenant_id.as_str();
    q::tenant_lock(conn, super::lock(tid), false).await?;
    let ids: Vec<Uuid> = results.keys().copied().collect();
    let locked = rq::lock_open(conn, tid, action.id, &ids).await?;
    let dest = destination(action.action_type);
    let (mut outcomes, mut moves, mut open_ids, mut open_errors) = (vec![], vec![], vec![], vec![]);
    for c in &locked {
        let Some((t, r)) = results.get(&c.email_id) else { continue };
        let at = c.location.as_deref().and_then(|l| l.parse::<DeliveryLocation>().ok());
        let outcome = |outcome, from, to, error| Outcome { email_id: c.email_id, outcome, from, to, error };
        match r {
            Result_::Done(found) => {
                outcomes.push(match found {
                    Found::Moved { from } | Found::Deleted { from } => {
                        outcome(ActionOutcome::Success, at.or(Some(location_of(server, from))), dest, None)
                    }
                    Found::AlreadyThere => outcome(ActionOutcome::AlreadyInDestination, at, None, None),
                    Found::NotFound => outcome(
                        ActionOutcome::NotFound,
                        at,
                        None,
                        Some(format!(
                            "no message with Message-ID {} in any folder of {}",
                            t.internet_message_id.as_deref().unwrap_or("?"),
                            c.recipient
                        )),
                    ),
                });
                // The store follows the mailbox, also for a copy a killed run had moved but not recorded.
                if let (Some(from), Some(to)) = (at, dest) {
                    if *found != Found::NotFound && from != to {
                        moves.push(Move { email_id: c.email_id, received_at: c.received_at, from, to });
                    }
                }
            }
            Result_::Refused(e) => outcomes.push(outcome(ActionOutcome::Failed, at, None, Some(e.clone()))),
            Result_::Unreached(e) if t.attempts >= MAX_TRIES => {
                let why = format!("after {} tries: {e}", t.attempts);
                outcomes.push(outcome(ActionOutcome::Failed, at, None, Some(why)));
            }
            Result_::Unreached(e) => {
                open_ids.push(c.email_id);
                open_errors.push(e.clone());
            }
        }
    }
    record_moves(conn, action, &moves, now).await?;
    q::record_outcomes(conn, tid, action.id, &outcomes, now).await?;
    rq::note_errors(conn, tid, action.id, &open_ids, &open_errors).await?;
    let done: Vec<Uuid> = outcomes.iter().map(|o| o.email_id).collect();
    evidence::outcomes(conn, action, &done).await?;
    let moved: Vec<Uuid> = moves.iter().map(|m| m.email_id).collect();
    let mut notes = Notes::default();
    reevaluate::after_moves(conn, tid, &moved, &mut notes, now).await?;
    notes.progress(action, SYSTEM_ACTOR);
    notes.write(conn, tid, now).await?;
    Ok((open_ids.len(), open_errors.into_iter().next()))
}

/// The tenant's mail server, opened, if it has one.
pub async fn server_of(conn: &mut Conn, access: &MailAccess, tenant_id: &str) -> AppResult<Option<Server>> {
    match crate::db::queries::mail_servers::find(conn, tenant_id).await? {
        None => Ok(None),
        Some(row) => access.server(&row).map(Some),
    }
}
