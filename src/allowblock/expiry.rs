//! When an entry stops applying (reference §1.8). A BLOCK expires 30 days after it is created by
//! default, on a date at most 90 days ahead, or never. An ALLOW expires 45 days after it was last used
//! by default (counted from its creation, or from the last reset of its expiry, until its first use),
//! or on a date at most 30 days ahead (the real system's limit for allow dates); an ALLOW cannot be set
//! to never expire. A date must lie in the future, and cannot come with `neverExpire: true`.

use crate::domain::enums::AllowBlockAction;
use crate::domain::time;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};

/// Days a BLOCK lasts when no date is given.
pub const BLOCK_DEFAULT_DAYS: i64 = 30;
/// Furthest a BLOCK's date may lie ahead, in days.
pub const BLOCK_MAX_DAYS: i64 = 90;
/// Days after its last use an ALLOW without a date expires.
pub const ALLOW_REMOVE_AFTER_DAYS: i32 = 45;
/// Furthest an ALLOW's date may lie ahead, in days.
pub const ALLOW_MAX_DAYS: i64 = 30;

/// What a person asked for: a date, never, or (neither) the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExpiryRequest {
    /// A date the entry expires on.
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(true)`: never expires; `Some(false)`: back to the default.
    pub never_expire: Option<bool>,
}

/// How an entry expires, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The effective expiry; `None` exactly when `never_expire`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Never expires.
    pub never_expire: bool,
    /// An ALLOW following the last-use rule: each use moves `expires_at` to the use + this many days.
    pub remove_after_days: Option<i32>,
}

/// The expiry of a new entry created `now`.
pub fn on_create(action: AllowBlockAction, req: ExpiryRequest, now: DateTime<Utc>) -> AppResult<Expiry> {
    Ok(decide(action, req, now)?.unwrap_or_else(|| default(action, now)))
}

/// The new expiry an update asks for at `now`, or `None` when it leaves the expiry alone.
/// `neverExpire: false` without a date resets it to the default, counted from `now`.
pub fn on_update(
    action: AllowBlockAction,
    req: ExpiryRequest,
    now: DateTime<Utc>,
) -> AppResult<Option<Expiry>> {
    if req.expires_at.is_none() && req.never_expire.is_none() {
        return Ok(None);
    }
    Ok(Some(decide(action, req, now)?.unwrap_or_else(|| default(action, now))))
}

/// The default expiry of an entry whose rule starts `now`.
fn default(action: AllowBlockAction, now: DateTime<Utc>) -> Expiry {
    match action {
        AllowBlockAction::Block => Expiry {
            expires_at: Some(now + Duration::days(BLOCK_DEFAULT_DAYS)),
            never_expire: false,
            remove_after_days: None,
        },
        AllowBlockAction::Allow => Expiry {
            expires_at: Some(now + Duration::days(i64::from(ALLOW_REMOVE_AFTER_DAYS))),
            never_expire: false,
            remove_after_days: Some(ALLOW_REMOVE_AFTER_DAYS),
        },
    }
}

/// A date or never when asked for (checked); `None` for the default.
fn decide(action: AllowBlockAction, req: ExpiryRequest, now: DateTime<Utc>) -> AppResult<Option<Expiry>> {
    let never = req.never_expire == Some(true);
    match (req.expires_at, never) {
        (Some(_), true) => Err(AppError::bad(
            "give either expiresAt or neverExpire: true, not both (an entry with a date does expire)",
        )),
        (None, true) => match action {
            AllowBlockAction::Block => {
                Ok(Some(Expiry { expires_at: None, never_expire: true, remove_after_days: None }))
            }
            AllowBlockAction::Allow => Err(AppError::bad(format!(
                "neverExpire: an ALLOW entry cannot be set to never expire; it expires \
                 {ALLOW_REMOVE_AFTER_DAYS} days after it was last used, or on an expiresAt at most \
                 {ALLOW_MAX_DAYS} days ahead"
            ))),
        },
        (Some(at), false) => {
            let at = time::check("expiresAt", at).map_err(AppError::BadInput)?;
            if at <= now {
                return Err(AppError::bad(format!(
                    "expiresAt must lie in the future ({} is past)",
                    at.to_rfc3339()
                )));
            }
            let max_days = match action {
                AllowBlockAction::Block => BLOCK_MAX_DAYS,
                AllowBlockAction::Allow => ALLOW_MAX_DAYS,
            };
            if at > now + Duration::days(max_days) {
                return Err(AppError::bad(format!(
                    "expiresAt may lie at most {max_days} days ahead for {} entry ({} given){}",
                    if action == AllowBlockAction::Block { "a BLOCK" } else { "an ALLOW" },
                    at.to_rfc3339(),
                    if action == AllowBlockAction::Block {
                        "; use neverExpire: true for a permanent block"
                    } else {
                        ""
                    }
                )));
            }
            Ok(Some(Expiry { expires_at: Some(at), never_expire: false, remove_after_days: None }))
        }
        (None, false) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowBlockAction::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn req(at: Option<i64>, never: Option<bool>) -> ExpiryRequest {
        ExpiryRequest { expires_at: at.map(|d| now() + Duration::days(d)), never_expire: never }
    }

    #[test]
    fn defaults_block_30_days_allow_45_after_use() {
        let b = on_create(Block, req(None, None), now()).expect("default");
        assert_eq!(b.expires_at, Some(now() + Duration::days(30)));
        assert_eq!((b.never_expire, b.remove_after_days), (false, None));
        let a = on_create(Allow, req(None, Some(false)), now()).expect("default");
        assert_eq!(a.expires_at, Some(now() + Duration::days(45)));
        assert_eq!(a.remove_after_days, Some(45));
    }

    #[test]
    fn dates_are_bounded_and_future() {
        assert!(on_create(Block, req(Some(90), None), now()).is_ok());
        assert!(on_create(Block, req(Some(91), None), now())
            .is_err_and(|e| e.public_message().contains("90 days")));
        assert!(on_create(Allow, req(Some(30), None), now()).is_ok());
        assert!(on_create(Allow, req(Some(31), None), now())
            .is_err_and(|e| e.public_message().contains("30 days")));
        assert!(on_create(Block, req(Some(-1), None), now())
            .is_err_and(|e| e.public_message().contains("future")));
        assert!(on_create(Block, req(Some(0), None), now()).is_err());
        let far = ExpiryRequest { expires_at: Some(DateTime::<Utc>::MAX_UTC), never_expire: None };
        assert!(on_create(Block, far, now()).is_err());
    }

    #[test]
    fn never_is_for_blocks_and_excludes_a_date() {
        let n = on_create(Block, req(None, Some(true)), now()).expect("never");
        assert_eq!((n.expires_at, n.never_expire), (None, true));
        assert!(on_create(Allow, req(None, Some(true)), now())
            .is_err_and(|e| e.public_message().contains("ALLOW")));
        assert!(on_create(Block, req(Some(5), Some(true)), now())
            .is_err_and(|e| e.public_message().contains("not both")));
    }

    #[test]
    fn updates_change_only_what_they_name() {
        assert_eq!(on_update(Block, req(None, None), now()).expect("nothing"), None);
        let reset = on_update(Block, req(None, Some(false)), now()).expect("reset");
        assert_eq!(reset.and_then(|e| e.expires_at), Some(now() + Duration::days(30)));
        let dated = on_update(Allow, req(Some(10), Some(false)), now()).expect("dated");
        assert_eq!(dated.map(|e| e.remove_after_days), Some(None));
    }
}
