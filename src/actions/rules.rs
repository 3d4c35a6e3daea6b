//! Inbox-rule actions: `removeInboxRule` proposes a `REMOVE_INBOX_RULE` action on one rule of one
//! mailbox (read over ManageSieve at proposal, so an approver sees what goes), under the same approval
//! rules as e-mail actions; running it rewrites the mailbox's active script without that rule and
//! reactivates it. A rule already gone is `ALREADY_IN_DESTINATION`, so a run repeated after a crash
//! changes nothing; a server that can't be reached is tried again by the runner, 5 times at most.

use super::evidence;
use super::notes::{what, Notes};
use super::propose::{comment, enqueue, open_proposal, Draft};
use crate::auth::{Caller, Role};
use crate::db::models::Action;
use crate::db::queries::actions as q;
use crate::db::queries::remote_targets as rq;
use crate::db::retry::retry_transient;
use crate::db::{Conn, Pool};
use crate::domain::actions::Preview;
use crate::domain::enums::{ActionOutcome, ActionStatus, ActionType};
use crate::domain::sieve;
use crate::error::{AppError, AppResult};
use crate::jobs::JobError;
use crate::mailserver::imap::MailError;
use crate::mailserver::rules::{self as mrules, mailbox_address};
use crate::mailserver::server::{MailAccess, Server};
use crate::mailserver::sieve_session;
use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

/// Tries a removal gets before it ends `FAILED`.
pub const MAX_TRIES: i32 = 5;
/// Longest rule name, in characters.
pub const MAX_RULE_NAME_CHARS: usize = 255;

/// What to remove, as an analyst asked.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The mailbox (an address).
    pub mailbox: String,
    /// The rule's name as `mailboxRules` shows it.
    pub rule_name: String,
    /// The incident it is taken from.
    pub incident_id: Option<Uuid>,
    /// Why.
    pub comment: Option<String>,
}

/// Proposes removing a rule (analysts and above): `PENDING`, or approved and queued at once when the
/// four-eyes rule is off and the caller may approve. The rule must exist now.
pub async fn propose(pool: &Pool, access: &MailAccess, caller: &Caller, r: Removal) -> AppResult<Action> {
    caller.require(Role::Analyst)?;
    let mailbox = mailbox_address("mailbox", &r.mailbox)?;
    let rule_name = crate::domain::text::required("ruleName", &r.rule_name, MAX_RULE_NAME_CHARS)
        .map_err(AppError::BadInput)?;
    let comment = comment("comment", r.comment.clone())?;
    let server = mrules::server(pool, access, &caller.tenant_id).await?;
    let Some(script) = mrules::active_script(access, &server, &mailbox).await? else {
        return Err(AppError::NotFound(format!(
            "{mailbox} has no active Sieve script, so no rule {rule_name:?}"
        )));
    };
    let rules = mrules::parse(&mailbox, &script)?;
    let judged = mrules::judge(pool, &caller.tenant_id, &mailbox, &script.name, rules).await?;
    let named: Vec<_> = judged.into_iter().filter(|j| j.rule.name == rule_name).collect();
    if named.len() > 1 {
        return Err(AppError::bad(format!(
            "{mailbox} has {} inbox rules named {rule_name:?}: rename them in the mail client first",
            named.len()
        )));
    }
    let Some(found) = named.into_iter().next() else {
        return Err(AppError::NotFound(format!("{mailbox} has no inbox rule named {rule_name:?}")));
    };
    // The rule's own text: the run removes the rule only if it still reads the same.
    let text = script.text.get(found.rule.span.clone()).unwrap_or_default();
    let snapshot = json!({
        "script": script.name, "rule": found.rule, "text": text, "suspicious": found.reason.is_some(),
        "reason": found.reason,
    });
    let (mailbox, rule_name, snapshot, comment) = (&mailbox, &rule_name, &snapshot, &comment);
    retry_transient(pool, "proposing an inbox-rule removal", async move |conn: &mut Conn| {
        conn.transaction::<_, AppError, _>(async |conn| {
            insert(conn, caller, mailbox, rule_name, snapshot.clone(), r.incident_id, comment.clone()).await
        })
        .await
    })
    .await
}

async fn insert(
    conn: &mut Conn,
    caller: &Caller,
    mailbox: &str,
    rule_name: &str,
    rule: serde_json::Value,
    incident_id: Option<Uuid>,
    comment: Option<String>,
) -> AppResult<Action> {
    let now = Utc::now();
    let tid = caller.tenant_id.as_str();
    let four_eyes = open_proposal(conn, tid, incident_id).await?;
    if q::pending_rule_removal(conn, tid, mailbox, rule_name).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "a removal of rule {rule_name:?} of {mailbox} already waits for a decision"
        )));
    }
    let preview = Preview { selected: 1, targets: 1, mailboxes: 1, ..Default::default() };
    let draft = Draft {
        action_type: ActionType::RemoveInboxRule,
        incident_id,
        comment,
        four_eyes,
        preview: &preview,
        target_count: 1,
    };
    let action = Action {
        mailbox: Some(mailbox.to_string()),
        rule_name: Some(rule_name.to_string()),
        rule: Some(rule),
        ..draft.action(caller, now)?
    };
    let runs_now = action.status == ActionStatus::Approved;
    q::insert(conn, &action).await?;
    let mut notes = Notes::default();
    if runs_now {
        enqueue(conn, &action, now).await?;
        let m = format!("{} taken by {} (four-eyes rule off)", what(&action), caller.sub);
        notes.status(&action, None, &caller.sub, m, now);
    } else {
        evidence::pending(conn, &action).await?;
        notes.status(
            &action,
            None,
            &caller.sub,
            format!("{} proposed by {}", what(&action), caller.sub),
            now,
        );
    }
    notes.write(conn, tid, now).await?;
    Ok(action)
}

/// How a removal on the server went.
enum Removed {
    /// The script was rewritten without the rule.
    Now,
    /// No such rule (any more): nothing to do.
    Already(String),
    /// The script or the rule is not what was approved: nothing done, and no retry helps.
    Refused(String),
}

/// What removing the rule `name` approved as `approved` (its text) from `script` gives.
fn rewrite(script: &str, name: &str, approved: Option<&str>, mailbox: &str) -> Result<String, Removed> {
    let rules = sieve::parse(script)
        .map_err(|e| {
            Removed::Refused(format!(
                "the active script of {mailbox} no longer parses ({e}): nothing changed"
            ))
        })?
        .rules;
    let named: Vec<&sieve::Rule> = rules.iter().filter(|r| r.name == name).collect();
    match named.as_slice() {
        [] => Err(Removed::Already(format!("the active script of {mailbox} has no rule {name:?}"))),
        [rule] => {
            let now = script.get(rule.span.clone()).unwrap_or_default();
            if approved.is_some_and(|a| a != now) {
                return Err(Removed::Refused(format!(
                    "rule {name:?} of {mailbox} changed since its removal was proposed: nothing changed; propose again"
                )));
            }
            sieve::remove_rule(script, name).ok_or_else(|| {
                Removed::Already(format!("the active script of {mailbox} has no rule {name:?}"))
            })
        }
        more => Err(Removed::Refused(format!(
            "the active script of {mailbox} now has {} rules named {name:?}: nothing changed",
            more.len()
        ))),
    }
}

async fn remove(
    access: &MailAccess,
    server: &Server,
    mailbox: &str,
    rule_name: &str,
    approved: Option<&str>,
) -> Result<Removed, MailError> {
    let _slot = access.slot(&server.tenant_id).await.map_err(|_| MailError("no session slot".into()))?;
    let mut session = sieve_session::open(server, mailbox).await?;
    let done = async {
        let Some(active) = session.active().await? else {
            return Ok(Removed::Already(format!("{mailbox} has no active Sieve script")));
        };
        match rewrite(&active.text, rule_name, approved, mailbox) {
            Err(r) => Ok(r),
            Ok(text) => session.replace(&active.name, &text).await.map(|()| Removed::Now),
        }
    }
    .await;
    session.logout().await;
    done
}

/// Runs a running `REMOVE_INBOX_RULE` action (`server`: the tenant's mail server, if it still has one).
pub async fn run(
    pool: &Pool,
    access: &MailAccess,
    server: Option<&Server>,
    action: &Action,
) -> Result<(), JobError> {
    let tid = action.tenant_id.as_str();
    let retry = |e: AppError| JobError::Retry(format!("{e:?}"));
    let try_no = retry_transient(pool, "starting an inbox-rule removal", async |conn: &mut Conn| {
        Ok(rq::start_rule_try(conn, tid, action.id).await?)
    })
    .await
    .map_err(retry)?;
    let Some(try_no) = try_no else { return Ok(()) };
    let (Some(mailbox), Some(rule_name)) = (&action.mailbox, &action.rule_name) else {
        return Err(JobError::Fatal(format!("action {} names no mailbox rule", action.id)));
    };
    let result = match server {
        None => Err((false, "the tenant has no mail server any more".to_string())),
        Some(server) => {
            let approved = action.rule.as_ref().and_then(|r| r["text"].as_str());
            remove(access, server, mailbox, rule_name, approved).await.map_err(|e| (true, e.0))
        }
    };
    let (outcome, error) = match &result {
        Ok(Removed::Now) => (Some(ActionOutcome::Success), None),
        Ok(Removed::Already(why)) => (Some(ActionOutcome::AlreadyInDestination), Some(why.clone())),
        Ok(Removed::Refused(why)) => (Some(ActionOutcome::Failed), Some(why.clone())),
        Err((true, e)) if try_no < MAX_TRIES => (None, Some(e.clone())),
        Err((true, e)) => (Some(ActionOutcome::Failed), Some(format!("after {try_no} tries: {e}"))),
        Err((false, e)) => (Some(ActionOutcome::Failed), Some(e.clone())),
    };
    let Some(outcome) = outcome else {
        let e = error.unwrap_or_default();
        tracing::warn!(tenant = tid, action = %action.id, error = %e, "an inbox rule could not be removed yet");
        retry_transient(pool, "noting an inbox-rule removal's error", async |conn: &mut Conn| {
            Ok(rq::note_rule_error(conn, tid, action.id, &e).await?)
        })
        .await
        .map_err(retry)?;
        let m = format!("inbox rule of action {} not removed yet: {e}", action.id);
        return Err(JobError::RetryAfter(access.retry_wait(try_no + 1), m));
    };
    let error = error.as_deref();
    retry_transient(pool, "recording an inbox-rule removal", async |conn: &mut Conn| {
        conn.transaction::<_, AppError, _>(async |conn| {
            let now = Utc::now();
            q::tenant_lock(conn, super::lock(tid), false).await?;
            rq::record_rule_outcome(conn, tid, action.id, outcome, error, now).await?;
            let mut notes = Notes::default();
            super::run::finish(conn, action, &mut notes).await?;
            notes.write(conn, tid, now).await?;
            Ok(())
        })
        .await
    })
    .await
    .map_err(retry)
}
