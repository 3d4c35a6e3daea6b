//! The `MailServer` type (a tenant's own mail server, without its password) and its input.

use crate::db::models;
use crate::domain::enums::MailServerTls;
use crate::domain::sieve;
use crate::mailserver::Requested;
use async_graphql::{InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A tenant's own mail server: where remediation moves real mail (IMAP) and inbox rules are read
/// (ManageSieve). The master password is never read back.
pub struct MailServer(pub models::MailServer);

/// The folders actions move mail to.
#[derive(SimpleObject)]
pub struct MailServerFolders {
    /// `MOVE_TO_JUNK`.
    pub junk: String,
    /// `MOVE_TO_DELETED_ITEMS`.
    pub deleted_items: String,
    /// `SOFT_DELETE`.
    pub recoverable_items: String,
}

#[Object]
impl MailServer {
    /// IMAP host.
    async fn host(&self) -> &str {
        &self.0.host
    }
    /// IMAP port.
    async fn port(&self) -> i32 {
        self.0.port
    }
    /// Transport security.
    async fn tls(&self) -> MailServerTls {
        self.0.tls
    }
    /// The master login that opens every mailbox (Dovecot: `user*master`).
    async fn master_user(&self) -> &str {
        &self.0.master_user
    }
    /// Whether a master password is stored (it is never shown).
    async fn password_set(&self) -> bool {
        !self.0.password_sealed.is_empty()
    }
    /// ManageSieve host.
    async fn sieve_host(&self) -> Option<&str> {
        self.0.sieve_host.as_deref()
    }
    /// ManageSieve port.
    async fn sieve_port(&self) -> Option<i32> {
        self.0.sieve_port
    }
    /// The folders actions move mail to.
    async fn folders(&self) -> MailServerFolders {
        MailServerFolders {
            junk: self.0.junk_folder.clone(),
            deleted_items: self.0.deleted_items_folder.clone(),
            recoverable_items: self.0.recoverable_items_folder.clone(),
        }
    }
    /// Who last changed it.
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
    /// When.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Folder names (defaults: `Junk`, `Trash`, `Recoverable Items`).
#[derive(InputObject, Clone, Debug, Default)]
pub struct MailServerFoldersInput {
    /// For `MOVE_TO_JUNK`.
    pub junk: Option<String>,
    /// For `MOVE_TO_DELETED_ITEMS`.
    pub deleted_items: Option<String>,
    /// For `SOFT_DELETE`.
    pub recoverable_items: Option<String>,
}

/// A mail server's configuration.
#[derive(InputObject, Clone)]
pub struct ConfigureMailServerInput {
    /// IMAP host name or address.
    pub host: String,
    /// IMAP port (default 993 with `TLS`, else 143).
    pub port: Option<i32>,
    /// Transport security (default `TLS`).
    pub tls: Option<MailServerTls>,
    /// The master login.
    pub master_user: String,
    /// Its password: required the first time; left out, the stored one stays. Sealed at rest, never
    /// read back or logged.
    #[graphql(secret)]
    pub master_password: Option<String>,
    /// ManageSieve host (default: the IMAP host).
    pub sieve_host: Option<String>,
    /// ManageSieve port (default 4190).
    pub sieve_port: Option<i32>,
    /// Folder names.
    pub folders: Option<MailServerFoldersInput>,
}

impl std::fmt::Debug for ConfigureMailServerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigureMailServerInput")
            .field("host", &self.host)
            .field("masterPassword", &"<redacted>")
            .finish()
    }
}

impl ConfigureMailServerInput {
    /// The request the service checks.
    pub fn requested(self) -> Requested {
        let folders = self.folders.unwrap_or_default();
        Requested {
            host: self.host,
            port: self.port,
            tls: self.tls,
            master_user: self.master_user,
            master_password: self.master_password,
            sieve_host: self.sieve_host,
            sieve_port: self.sieve_port,
            junk: folders.junk,
            deleted_items: folders.deleted_items,
            recoverable_items: folders.recoverable_items,
        }
    }
}

/// A folder of the mailbox `testMailServer` logged in to.
#[derive(SimpleObject)]
pub struct MailFolder {
    /// Its name.
    pub name: String,
    /// Its special use (`\Junk`, `\Trash`, …), if the server marks one.
    pub special_use: Option<String>,
}

/// What `testMailServer` found: whether the master login opens IMAP and ManageSieve, and what the
/// servers offer. Failures are reported here, not as errors.
pub struct MailServerTest(pub crate::mailserver::check::Check);

#[Object]
impl MailServerTest {
    /// Whether everything remediation and inbox rules need works (IMAP and ManageSieve logins).
    async fn ok(&self) -> bool {
        self.0.ok()
    }
    /// The mailbox it logged in to (null: the master login's own).
    async fn mailbox(&self) -> Option<&str> {
        Some(self.0.mailbox.as_str()).filter(|m| !m.is_empty())
    }
    /// Whether the IMAP server answered.
    async fn imap_reachable(&self) -> bool {
        self.0.imap.reachable
    }
    /// Whether the IMAP login worked.
    async fn imap_logged_in(&self) -> bool {
        self.0.imap.logged_in
    }
    /// Every IMAP capability after login.
    async fn capabilities(&self) -> &[String] {
        &self.0.imap.offers.capabilities
    }
    /// `MOVE` (else actions copy, delete and expunge).
    async fn r#move(&self) -> bool {
        self.0.imap.offers.move_
    }
    /// `UIDPLUS` (else a fallback move expunges every deleted message of the folder).
    async fn uidplus(&self) -> bool {
        self.0.imap.offers.uidplus
    }
    /// `SPECIAL-USE` folder marks.
    async fn special_use(&self) -> bool {
        self.0.imap.offers.special_use
    }
    /// The mailbox's folders.
    async fn folders(&self) -> Vec<MailFolder> {
        self.0
            .imap
            .folders
            .iter()
            .map(|f| MailFolder { name: f.name.clone(), special_use: f.special_use.clone() })
            .collect()
    }
    /// Configured folders the mailbox lacks (an action creates its destination when first needed).
    async fn missing_folders(&self) -> &[String] {
        &self.0.missing_folders
    }
    /// What failed on the IMAP side.
    async fn imap_error(&self) -> Option<&str> {
        self.0.imap.error.as_deref()
    }
    /// Whether the ManageSieve login worked (inbox rules can be read and removed).
    async fn manage_sieve(&self) -> bool {
        self.0.sieve_logged_in
    }
    /// The ManageSieve server's implementation.
    async fn sieve_implementation(&self) -> Option<&str> {
        self.0.sieve_implementation.as_deref()
    }
    /// The Sieve extensions it supports.
    async fn sieve_extensions(&self) -> &[String] {
        &self.0.sieve_extensions
    }
    /// What failed on the ManageSieve side.
    async fn sieve_error(&self) -> Option<&str> {
        self.0.sieve_error.as_deref()
    }
    /// Milliseconds the check took.
    async fn elapsed_ms(&self) -> u64 {
        self.0.elapsed_ms
    }
}

/// A condition of an inbox rule.
#[derive(SimpleObject)]
pub struct InboxRuleCondition {
    /// What it tests.
    pub kind: sieve::ConditionKind,
    /// The header(s) it reads.
    pub header: Option<String>,
    /// `is`, `contains`, `matches`, `regex`, `over`, `under`…
    pub match_type: String,
    /// For address tests: `all`, `localpart` or `domain`.
    pub address_part: Option<String>,
    /// What it compares with.
    pub values: Vec<String>,
    /// Whether it is negated (`not`).
    pub negated: bool,
}

/// An action of an inbox rule.
#[derive(SimpleObject)]
pub struct InboxRuleAction {
    /// What it does.
    pub kind: sieve::ActionKind,
    /// The Sieve command as written.
    pub name: String,
    /// The address it redirects to, the folder it files into, or its first argument.
    pub argument: Option<String>,
    /// Whether it keeps a copy (`:copy`).
    pub copy: bool,
}

/// An inbox rule of a mailbox, read from its active Sieve script.
pub struct InboxRule(pub crate::mailserver::rules::InboxRule);

#[Object]
impl InboxRule {
    /// Its name (`# rule:[Name]` above it, else `rule N`): what `removeInboxRule` takes.
    async fn name(&self) -> &str {
        &self.0.rule.name
    }
    /// The mailbox.
    async fn mailbox(&self) -> &str {
        &self.0.mailbox
    }
    /// The Sieve script it is in (the active one).
    async fn script(&self) -> &str {
        &self.0.script
    }
    /// Whether it is enabled (a disabled rule reads `if false # …`).
    async fn enabled(&self) -> bool {
        self.0.rule.enabled
    }
    /// Whether any condition suffices (`anyof`) rather than all.
    async fn match_any(&self) -> bool {
        self.0.rule.any_of
    }
    /// Its conditions.
    async fn conditions(&self) -> Vec<InboxRuleCondition> {
        self.0
            .rule
            .conditions
            .iter()
            .map(|c| InboxRuleCondition {
                kind: c.kind,
                header: c.header.clone(),
                match_type: c.match_type.clone(),
                address_part: c.address_part.clone(),
                values: c.values.clone(),
                negated: c.negated,
            })
            .collect()
    }
    /// Its actions.
    async fn actions(&self) -> Vec<InboxRuleAction> {
        self.0
            .rule
            .actions
            .iter()
            .map(|a| InboxRuleAction {
                kind: a.kind,
                name: a.name.clone(),
                argument: a.argument.clone(),
                copy: a.copy,
            })
            .collect()
    }
    /// Whether it looks like an attacker's: it forwards outside the tenant's domains, or discards or
    /// files away mail from a sender of an incident.
    async fn suspicious(&self) -> bool {
        self.0.reason.is_some()
    }
    /// Why it is suspicious.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
}
