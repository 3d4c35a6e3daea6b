//! What the activity log names: the kinds of its rows and the actors the system writes them as. One
//! list, because correlation, manual operations and triage write the same kinds (an alert arriving is
//! `ALERT_CORRELATED` however it came) and clients filter on them.

/// The actor the activity log and `lastModifiedBy` name for changes the rules make on their own (a
/// status roll-up).
pub const SYSTEM_ACTOR: &str = "system";

/// The actor correlation writes as.
pub const CORRELATION_ACTOR: &str = "Parapet correlation";

/// Longest excerpt of a comment an activity message quotes (the whole comment is stored beside it).
const EXCERPT_LEN: usize = 140;

/// `Comment: <its first 140 characters>` (and `…` when cut): how an activity message quotes a comment.
pub fn comment_excerpt(body: &str) -> String {
    let mut excerpt: String = body.chars().take(EXCERPT_LEN).collect();
    if body.chars().count() > EXCERPT_LEN {
        excerpt.push('…');
    }
    format!("Comment: {excerpt}")
}

/// Kinds of activity-log rows.
pub mod kind {
    /// A person changed a field.
    pub const UPDATE: &str = "UPDATE";
    /// A person added custom tags.
    pub const TAG_ADDED: &str = "TAG_ADDED";
    /// A person removed custom tags.
    pub const TAG_REMOVED: &str = "TAG_REMOVED";
    /// A person commented.
    pub const COMMENT: &str = "COMMENT";
    /// A field changed because another one did (incident ↔ alerts).
    pub const ROLLUP: &str = "ROLLUP";
    /// An incident was created by hand from alerts.
    pub const INCIDENT_CREATED: &str = "INCIDENT_CREATED";
    /// Alerts were linked to this incident by hand.
    pub const ALERTS_LINKED: &str = "ALERTS_LINKED";
    /// Alerts of this incident were moved to another one by hand.
    pub const ALERTS_MOVED: &str = "ALERTS_MOVED";
    /// An alert arrived in this incident (correlated, or moved by hand).
    pub const ALERT_CORRELATED: &str = "ALERT_CORRELATED";
    /// An incident was merged into this one (automatically or by hand).
    pub const MERGED: &str = "MERGED";
    /// This incident now redirects to the one it was merged into.
    pub const REDIRECTED: &str = "REDIRECTED";
    /// A remediation action of this incident was proposed, decided, ran or ended (`field` is `status`).
    pub const ACTION: &str = "ACTION";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_long_comments() {
        assert_eq!(comment_excerpt("why"), "Comment: why");
        let long = comment_excerpt(&"é".repeat(141));
        assert!(long.ends_with('…'));
        assert_eq!(long.chars().count(), "Comment: ".len() + 140 + 1);
    }
}
