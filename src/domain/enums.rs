//! The model's enumerations: one Rust type each, spelled in SCREAMING_SNAKE_CASE in GraphQL and stored as
//! the same text in PostgreSQL.

use std::fmt;
use std::str::FromStr;

/// Defines an enum that is a GraphQL enum and a Diesel `Text` value at once.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 diesel::expression::AsExpression, diesel::deserialize::FromSqlRow, serde::Serialize, serde::Deserialize)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* #[graphql(name = $text)] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and GraphQL spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} value {other:?}", stringify!($name))),
                }
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>)
                -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(), out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let s = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)?;
                s.parse().map_err(Into::into)
            }
        }
    };
}

text_enum!(
    /// Incident and alert severity, ordered from least to most severe.
    Severity {
        Unknown => "UNKNOWN",
        Informational => "INFORMATIONAL",
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
    }
);

text_enum!(
    /// Incident status. `REDIRECTED` is set by the system only (merge).
    IncidentStatus {
        Active => "ACTIVE",
        InProgress => "IN_PROGRESS",
        Resolved => "RESOLVED",
        Redirected => "REDIRECTED",
    }
);

text_enum!(
    /// Alert status.
    AlertStatus {
        New => "NEW",
        InProgress => "IN_PROGRESS",
        Resolved => "RESOLVED",
    }
);

text_enum!(
    /// What an analyst concluded about an incident or alert.
    Classification {
        Unknown => "UNKNOWN",
        FalsePositive => "FALSE_POSITIVE",
        TruePositive => "TRUE_POSITIVE",
        InformationalExpectedActivity => "INFORMATIONAL_EXPECTED_ACTIVITY",
    }
);

text_enum!(
    /// The finer grain of a classification; `Classification::allows` says which pairs fit.
    Determination {
        Unknown => "UNKNOWN",
        Malware => "MALWARE",
        Phishing => "PHISHING",
        Other => "OTHER",
        MultiStagedAttack => "MULTI_STAGED_ATTACK",
        CompromisedAccount => "COMPROMISED_ACCOUNT",
        MaliciousUserActivity => "MALICIOUS_USER_ACTIVITY",
        UnwantedSoftware => "UNWANTED_SOFTWARE",
        NotMalicious => "NOT_MALICIOUS",
        NotEnoughDataToValidate => "NOT_ENOUGH_DATA_TO_VALIDATE",
        SecurityTesting => "SECURITY_TESTING",
        ConfirmedActivity => "CONFIRMED_ACTIVITY",
        LineOfBusinessApplication => "LINE_OF_BUSINESS_APPLICATION",
    }
);

impl Severity {
    /// The severity's rank, UNKNOWN 0 to HIGH 4: its place in the declaration order, which is also the
    /// order `Ord` compares by. Queries sort and aggregate by it (the stored text sorts alphabetically).
    pub fn rank(self) -> i32 {
        Severity::ALL.iter().position(|s| *s == self).and_then(|i| i32::try_from(i).ok()).unwrap_or(0)
    }

    /// The severity of a rank; `UNKNOWN` for a rank that names none.
    pub fn from_rank(rank: i32) -> Severity {
        usize::try_from(rank).ok().and_then(|i| Severity::ALL.get(i)).copied().unwrap_or(Severity::Unknown)
    }
}

impl Classification {
    /// Whether `determination` may stand with this classification (reference §1.1.3). `UNKNOWN`
    /// determination fits every classification ("not set yet").
    pub fn allows(self, determination: Determination) -> bool {
        use Determination as D;
        if determination == D::Unknown {
            return true;
        }
        match self {
            Classification::Unknown => false,
            Classification::TruePositive => matches!(
                determination,
                D::MultiStagedAttack
                    | D::MaliciousUserActivity
                    | D::CompromisedAccount
                    | D::Malware
                    | D::Phishing
                    | D::UnwantedSoftware
                    | D::Other
            ),
            Classification::InformationalExpectedActivity => matches!(
                determination,
                D::SecurityTesting | D::LineOfBusinessApplication | D::ConfirmedActivity | D::Other
            ),
            Classification::FalsePositive => {
                matches!(determination, D::NotMalicious | D::NotEnoughDataToValidate | D::Other)
            }
        }
    }
}

text_enum!(
    /// How an alert came to be in its incident.
    CorrelationKind {
        NewIncident => "NEW_INCIDENT",
        Joined => "JOINED",
        Merged => "MERGED",
        Manual => "MANUAL",
    }
);

text_enum!(
    /// Kinds of correlation key. The first five are strong, `MAILBOX` and `IP` weak.
    KeyKind {
        NetworkMessageId => "NETWORK_MESSAGE_ID",
        MailCluster => "MAIL_CLUSTER",
        Url => "URL",
        FileSha256 => "FILE_SHA256",
        Sender => "SENDER",
        Mailbox => "MAILBOX",
        Ip => "IP",
    }
);

impl KeyKind {
    /// Strong keys correlate on their own; weak keys only with a shared alert policy.
    pub fn is_strong(self) -> bool {
        !matches!(self, KeyKind::Mailbox | KeyKind::Ip)
    }
}

text_enum!(
    /// Why a key of an alert took no part in correlation.
    SkipReason {
        /// The value is on the tenant's correlation ignore list.
        IgnoreList => "IGNORE_LIST",
        /// More than `maxKeyPrevalence` alerts carry it inside the window.
        TooPrevalent => "TOO_PREVALENT",
    }
);

text_enum!(
    /// Verdict on a piece of evidence.
    Verdict {
        Unknown => "UNKNOWN",
        Suspicious => "SUSPICIOUS",
        Malicious => "MALICIOUS",
        NoThreatsFound => "NO_THREATS_FOUND",
    }
);

text_enum!(
    /// Remediation state of a piece of evidence.
    RemediationStatus {
        None => "NONE",
        Remediated => "REMEDIATED",
        Prevented => "PREVENTED",
        Blocked => "BLOCKED",
        NotFound => "NOT_FOUND",
        Active => "ACTIVE",
        PendingApproval => "PENDING_APPROVAL",
        Declined => "DECLINED",
        Unremediated => "UNREMEDIATED",
        Running => "RUNNING",
        PartiallyRemediated => "PARTIALLY_REMEDIATED",
    }
);

text_enum!(
    /// Role an entity played in an alert.
    EvidenceRole {
        Unknown => "UNKNOWN",
        Contextual => "CONTEXTUAL",
        Scanned => "SCANNED",
        Source => "SOURCE",
        Destination => "DESTINATION",
        Created => "CREATED",
        Added => "ADDED",
        Compromised => "COMPROMISED",
        Edited => "EDITED",
        Attacked => "ATTACKED",
        Attacker => "ATTACKER",
        CommandAndControl => "COMMAND_AND_CONTROL",
        Loaded => "LOADED",
        Suspicious => "SUSPICIOUS",
        PolicyViolator => "POLICY_VIOLATOR",
    }
);

text_enum!(
    /// Kind of evidence.
    EvidenceKind {
        Email => "EMAIL",
        MailCluster => "MAIL_CLUSTER",
        Mailbox => "MAILBOX",
        MailboxConfiguration => "MAILBOX_CONFIGURATION",
        User => "USER",
        Url => "URL",
        File => "FILE",
        Ip => "IP",
    }
);

text_enum!(
    /// Direction of a message relative to the tenant.
    Direction {
        Inbound => "INBOUND",
        Outbound => "OUTBOUND",
        IntraOrg => "INTRA_ORG",
    }
);

text_enum!(
    /// What the filtering stack did with a message.
    DeliveryAction {
        Delivered => "DELIVERED",
        DeliveredToJunk => "DELIVERED_TO_JUNK",
        Blocked => "BLOCKED",
        Replaced => "REPLACED",
    }
);

text_enum!(
    /// Where a message copy is (or was first) delivered.
    DeliveryLocation {
        Inbox => "INBOX",
        Junk => "JUNK",
        DeletedItems => "DELETED_ITEMS",
        SoftDeleted => "SOFT_DELETED",
        HardDeleted => "HARD_DELETED",
        Quarantine => "QUARANTINE",
        OnPremExternal => "ON_PREM_EXTERNAL",
        Failed => "FAILED",
        Dropped => "DROPPED",
        Unknown => "UNKNOWN",
    }
);

text_enum!(
    /// Threat found in a message.
    ThreatType {
        Malware => "MALWARE",
        Phish => "PHISH",
        Spam => "SPAM",
    }
);

text_enum!(
    /// Confidence of a phish verdict.
    PhishConfidence {
        Normal => "NORMAL",
        High => "HIGH",
    }
);

text_enum!(
    /// The list a tenant allow/block entry belongs to: what its value names.
    AllowBlockKind {
        /// An e-mail address, a domain, or `*.domain` (the domain and its subdomains).
        Sender => "SENDER",
        /// A URL (a prefix of the URLs it matches) or a domain (every URL on that host).
        Url => "URL",
        /// A file's SHA-256.
        FileHash => "FILE_HASH",
        /// An IPv4 or IPv6 address or CIDR range (the sending server's address).
        Ip => "IP",
    }
);

text_enum!(
    /// What a tenant allow/block entry does to matching mail. Blocks win over allows.
    AllowBlockAction {
        /// Overrides spam and normal-confidence phish verdicts (never malware or high-confidence phish).
        Allow => "ALLOW",
        /// Makes matching mail high-confidence phish (sender, URL, IP) or malware (file).
        Block => "BLOCK",
    }
);

text_enum!(
    /// What an audit-log entry changed.
    AuditTargetKind {
        /// An entry of the tenant allow/block list (`targetId` is its id).
        AllowBlockEntry => "ALLOW_BLOCK_ENTRY",
        /// The tenant's settings (`targetId` is null).
        TenantSettings => "TENANT_SETTINGS",
        /// The tenant's mail server (`targetId` is null; the password is never recorded).
        MailServer => "MAIL_SERVER",
    }
);

text_enum!(
    /// How an audit-log entry changed its target.
    AuditAction {
        /// Created it (`before` is null).
        Create => "CREATE",
        /// Changed it.
        Update => "UPDATE",
        /// Deleted it (`after` is null).
        Delete => "DELETE",
    }
);

text_enum!(
    /// Kind of mailbox configuration evidence.
    MailboxConfigurationType {
        MailForwardingRule => "MAIL_FORWARDING_RULE",
        OwaSettings => "OWA_SETTINGS",
        EwsSettings => "EWS_SETTINGS",
        MailDelegation => "MAIL_DELEGATION",
        UserInboxRule => "USER_INBOX_RULE",
    }
);

text_enum!(
    /// What moved a message copy, in its delivery timeline.
    EmailEventKind {
        /// The first delivery, as the mail flow (or an alert) reported it.
        OriginalDelivery => "ORIGINAL_DELIVERY",
        /// Zero-hour auto purge moved it after delivery.
        Zap => "ZAP",
        /// An analyst moved or deleted it.
        ManualRemediation => "MANUAL_REMEDIATION",
        /// An automated investigation's approved action moved it.
        AutomatedRemediation => "AUTOMATED_REMEDIATION",
        /// Released from quarantine.
        QuarantineRelease => "QUARANTINE_RELEASE",
        /// Safe Attachments dynamic delivery replaced it.
        DynamicDelivery => "DYNAMIC_DELIVERY",
        /// Re-scanned and found good.
        Reprocessed => "REPROCESSED",
        /// Any other change the mail flow reported.
        DeliveryUpdate => "DELIVERY_UPDATE",
    }
);

text_enum!(
    /// Where Parapet learned of a message copy.
    EmailSource {
        /// A mail-flow record pushed by a gateway (`ingestEmails`).
        MailFlow => "MAIL_FLOW",
        /// An alert's e-mail evidence named it before any mail-flow record did.
        Alert => "ALERT",
    }
);

text_enum!(
    /// What a submission reports.
    SubmissionContentType {
        /// An e-mail copy.
        Email => "EMAIL",
        /// A URL.
        Url => "URL",
        /// A file (by SHA-256).
        File => "FILE",
    }
);

text_enum!(
    /// What the submitter says the item is: `NOT_JUNK` reports a false positive (wrongly blocked), the
    /// others a false negative (wrongly allowed).
    SubmissionCategory {
        /// Clean: it should not have been blocked.
        NotJunk => "NOT_JUNK",
        /// Spam.
        Spam => "SPAM",
        /// Phishing.
        Phishing => "PHISHING",
        /// Malware.
        Malware => "MALWARE",
    }
);

text_enum!(
    /// Where a submission stands.
    SubmissionStatus {
        /// Being evaluated.
        Pending => "PENDING",
        /// Evaluated; see its result.
        Completed => "COMPLETED",
    }
);

text_enum!(
    /// What the evaluation of a submission found.
    SubmissionResultCategory {
        /// The tenant allow list let it through.
        AllowedByPolicy => "ALLOWED_BY_POLICY",
        /// The tenant block list blocks it.
        BlockedByPolicy => "BLOCKED_BY_POLICY",
        /// Parapet's verdicts mark it as a threat.
        ThreatsFound => "THREATS_FOUND",
        /// Nothing in Parapet's data marks it as a threat.
        NoThreatsFound => "NO_THREATS_FOUND",
        /// Filtering held it for spam or normal-confidence phish only, which the submitter disputes.
        NotJunk => "NOT_JUNK",
    }
);

text_enum!(
    /// What a remediation action does to each e-mail copy it targets.
    ActionType {
        /// Move to the Inbox; for a quarantined copy this is a release.
        MoveToInbox => "MOVE_TO_INBOX",
        /// Move to the Junk folder.
        MoveToJunk => "MOVE_TO_JUNK",
        /// Move to Deleted Items.
        MoveToDeletedItems => "MOVE_TO_DELETED_ITEMS",
        /// Move to Recoverable Items (the user or an admin can recover it).
        SoftDelete => "SOFT_DELETE",
        /// Purge (only an admin can recover it).
        HardDelete => "HARD_DELETE",
        /// Remove a suspicious inbox rule (mailbox configuration; not an e-mail action, so
        /// `remediateEmails` refuses it).
        RemoveInboxRule => "REMOVE_INBOX_RULE",
    }
);

text_enum!(
    /// Where a remediation action came from.
    ActionSource {
        /// Recommended by an automated investigation.
        Automated => "AUTOMATED",
        /// Taken by a person from an incident.
        Manual => "MANUAL",
        /// Taken by a person from Threat Explorer (hunting).
        Explorer => "EXPLORER",
    }
);

text_enum!(
    /// Where a remediation action stands.
    ActionStatus {
        /// Waiting for a responder's approval.
        Pending => "PENDING",
        /// Approved; its job is queued.
        Approved => "APPROVED",
        /// Declined by a responder.
        Rejected => "REJECTED",
        /// Withdrawn by its proposer before a decision.
        Cancelled => "CANCELLED",
        /// Its job is moving the copies.
        Running => "RUNNING",
        /// Ran; every target has an outcome.
        Completed => "COMPLETED",
        /// Ran, and no target could be moved.
        Failed => "FAILED",
        /// Nobody decided within 7 days.
        Expired => "EXPIRED",
        /// Every target reached the destination (another action, a person, ZAP) while it waited.
        AlreadyRemediated => "ALREADY_REMEDIATED",
    }
);

text_enum!(
    /// What running an action did to one copy.
    ActionOutcome {
        /// Moved: no longer where it was.
        Success => "SUCCESS",
        /// Could not be moved (its location no longer allows this action).
        Failed => "FAILED",
        /// Nothing to do: already at the destination.
        AlreadyInDestination => "ALREADY_IN_DESTINATION",
        /// The copy is no longer in the store.
        NotFound => "NOT_FOUND",
    }
);

text_enum!(
    /// How Parapet talks to a mail server.
    MailServerTls {
        /// Plain text (a test server on loopback only).
        None => "NONE",
        /// Plain text upgraded with STARTTLS.
        Starttls => "STARTTLS",
        /// TLS from the first byte (IMAPS).
        Tls => "TLS",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_follow_the_reference() {
        assert!(Classification::TruePositive.allows(Determination::Phishing));
        assert!(!Classification::TruePositive.allows(Determination::NotMalicious));
        assert!(Classification::FalsePositive.allows(Determination::NotMalicious));
        assert!(!Classification::Unknown.allows(Determination::Malware));
        assert!(Classification::Unknown.allows(Determination::Unknown));
    }

    #[test]
    fn text_round_trips() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(*s));
        }
        assert!(Severity::High > Severity::Medium);
    }

    #[test]
    fn severity_ranks_follow_the_order() {
        let ranks: Vec<i32> = Severity::ALL.iter().map(|s| s.rank()).collect();
        assert_eq!(ranks, vec![0, 1, 2, 3, 4]);
        for s in Severity::ALL {
            assert_eq!(Severity::from_rank(s.rank()), *s);
        }
        assert_eq!(Severity::from_rank(5), Severity::Unknown);
        assert_eq!(Severity::from_rank(-1), Severity::Unknown);
    }
}
