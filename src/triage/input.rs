//! What analysts ask to change, and the checks that need no database: text trimmed, bounded and free of
//! NUL (the shared rule of `crate::domain::text`), tags normalised, `REDIRECTED` refused,
//! classification/determination pairs.

use super::{MAX_TAGS, MAX_TAG_LEN};
use crate::domain::enums::{AlertStatus, Classification, Determination, IncidentStatus, Severity};
use crate::domain::text::{self, MAX_COMMENT_LEN, MAX_NAME_LEN};
use crate::error::{AppError, AppResult};

/// An update of an incident. `None` leaves a field as it is; for the clearable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    /// New status (`REDIRECTED` is refused: only a merge sets it).
    pub status: Option<IncidentStatus>,
    /// `Some(Some(s))` sets the severity by hand; `Some(None)` drops the override, so the severity
    /// follows the alerts again (their highest).
    pub severity: Option<Option<Severity>>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<String>>,
    /// New classification.
    pub classification: Option<Classification>,
    /// New determination.
    pub determination: Option<Determination>,
    /// New name (then kept over the generated one).
    pub display_name: Option<String>,
    /// Note on the resolution; `Some(None)` clears it.
    pub resolving_comment: Option<Option<String>>,
}

impl IncidentPatch {
    /// Checks and normalises the fields that need no database.
    pub(crate) fn validated(self) -> AppResult<Self> {
        if self.status == Some(IncidentStatus::Redirected) {
            return Err(AppError::bad(
                "status REDIRECTED is set by the system when incidents are merged; \
                 choose ACTIVE, IN_PROGRESS or RESOLVED",
            ));
        }
        Ok(Self {
            assigned_to: clearable(self.assigned_to, "assignedTo", MAX_NAME_LEN)?,
            display_name: self
                .display_name
                .map(|n| text::field("displayName", &n, MAX_NAME_LEN))
                .transpose()?,
            resolving_comment: clearable(self.resolving_comment, "resolvingComment", MAX_COMMENT_LEN)?,
            ..self
        })
    }
}

/// An update of an alert. `None` leaves a field as it is; `assigned_to: Some(None)` unassigns.
#[derive(Debug, Clone, Default)]
pub struct AlertPatch {
    /// New status.
    pub status: Option<AlertStatus>,
    /// New owner, or `Some(None)` to unassign.
    pub assigned_to: Option<Option<String>>,
    /// New classification.
    pub classification: Option<Classification>,
    /// New determination.
    pub determination: Option<Determination>,
}

impl AlertPatch {
    /// Checks and normalises the fields that need no database.
    pub(crate) fn validated(self) -> AppResult<Self> {
        Ok(Self { assigned_to: clearable(self.assigned_to, "assignedTo", MAX_NAME_LEN)?, ..self })
    }
}

/// [`text::field`] for a field that `null` clears; a blank value is refused rather than guessed at.
fn clearable(value: Option<Option<String>>, field: &str, max: usize) -> AppResult<Option<Option<String>>> {
    match value {
        Some(Some(v)) => text::field(field, &v, max)
            .map_err(|e| AppError::bad(format!("{} (use null to clear it)", e.public_message())))
            .map(|v| Some(Some(v))),
        other => Ok(other),
    }
}

/// Tags as given: each trimmed, not blank, at most `MAX_TAG_LEN` characters, duplicates (ignoring case)
/// dropped keeping the first spelling; at least one and at most `MAX_TAGS`.
pub(crate) fn tags(tags: &[String]) -> AppResult<Vec<String>> {
    if tags.is_empty() {
        return Err(AppError::bad("give at least one tag"));
    }
    if tags.len() > MAX_TAGS {
        return Err(AppError::bad(format!("at most {MAX_TAGS} tags at once ({} given)", tags.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = text::field("a tag", t, MAX_TAG_LEN)?;
        if !contains_tag(&out, &t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Whether `list` holds `tag`, ignoring case.
pub(crate) fn contains_tag(list: &[String], tag: &str) -> bool {
    let lower = tag.to_lowercase();
    list.iter().any(|t| t.to_lowercase() == lower)
}

/// Refuses a classification/determination pair that does not fit (reference §1.1.3).
pub(crate) fn check_pair(c: Classification, d: Determination) -> AppResult<()> {
    if c.allows(d) {
        return Ok(());
    }
    if c == Classification::Unknown {
        return Err(AppError::bad(format!(
            "determination {d} needs a classification: set classification too \
             (a determination can only be given with a classification)"
        )));
    }
    let allowed: Vec<&str> =
        Determination::ALL.iter().filter(|x| c.allows(**x)).map(|x| x.as_str()).collect();
    Err(AppError::bad(format!(
        "determination {d} does not fit classification {c}; with {c} choose one of {}",
        allowed.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_and_deduplicated_ignoring_case() {
        let t = tags(&[" Phish ".into(), "phish".into(), "VIP".into()]).expect("valid");
        assert_eq!(t, vec!["Phish".to_string(), "VIP".to_string()]);
        assert!(tags(&["  ".into()]).is_err());
        assert!(tags(&["x".repeat(101)]).is_err());
        assert!(tags(&["ok".into(), "a\0b".into()]).is_err());
        assert!(tags(&[]).is_err());
    }

    #[test]
    fn pairs_and_redirected() {
        assert!(check_pair(Classification::TruePositive, Determination::Phishing).is_ok());
        assert!(check_pair(Classification::Unknown, Determination::Phishing).is_err());
        let p = IncidentPatch { status: Some(IncidentStatus::Redirected), ..Default::default() };
        assert!(p.validated().is_err());
        let p = IncidentPatch { assigned_to: Some(Some("  ".into())), ..Default::default() };
        assert!(p.validated().is_err());
    }
}
