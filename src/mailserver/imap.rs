//! Mailbox sessions over IMAP: one recipient's mailbox opened with the tenant's master login (SASL
//! PLAIN, the mailbox as authorisation id), and remediation in it: find each message by its Internet
//! Message-ID, looking in the destination first so a retried move is seen as done, then move it
//! (`MOVE`, else COPY, delete and EXPUNGE) or expunge it. Every command is bounded by the server's
//! timeout; errors name what failed, never the password.

use super::server::Server;
use super::transport::{self, Stream};
use crate::domain::enums::MailServerTls;
use async_imap::types::NameAttribute;
use futures::TryStreamExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Instant;

/// Why a session could not do what it was asked; safe to show and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// How one message of a remediation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Moved out of `from` into the destination.
    Moved {
        /// The folder it was in.
        from: String,
    },
    /// Expunged from `from` (a hard delete).
    Deleted {
        /// The folder it was in.
        from: String,
    },
    /// Already in the destination: nothing done.
    AlreadyThere,
    /// In no folder of the mailbox.
    NotFound,
}

/// A message to act on: its Internet Message-ID (with angle brackets) and the folder it is most likely in.
#[derive(Debug, Clone)]
pub struct Item {
    /// The `Message-ID` header's value.
    pub message_id: String,
    /// Where to look first after the destination.
    pub hint: Option<String>,
}

/// What the server offers, read after login.
#[derive(Debug, Clone, Default)]
pub struct Offers {
    /// Every capability, as the server named it.
    pub capabilities: Vec<String>,
    /// `MOVE` (RFC 6851).
    pub move_: bool,
    /// `UIDPLUS` (RFC 4315).
    pub uidplus: bool,
    /// `SPECIAL-USE` (RFC 6154).
    pub special_use: bool,
}

/// A folder as `LIST` shows it.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Its name.
    pub name: String,
    /// Whether it can be selected.
    pub selectable: bool,
    /// Its special use (`\Junk`, `\Trash`, …), if any.
    pub special_use: Option<String>,
}

/// One open mailbox session.
pub struct Mailbox {
    session: async_imap::Session<Stream>,
    server: Server,
    /// What the server offers.
    pub offers: Offers,
    folders: Option<Vec<Folder>>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("server", &self.server).field("offers", &self.offers).finish()
    }
}

struct Plain<'a> {
    authzid: &'a str,
    authcid: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for &Plain<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        [self.authzid.as_bytes(), self.authcid.as_bytes(), self.password.as_bytes()].join(&0u8)
    }
}

fn imap_err(what: &str, e: async_imap::error::Error) -> MailError {
    use async_imap::error::Error as E;
    let why = match e {
        E::Io(e) => format!("connection failed ({e})"),
        E::Bad(m) => format!("the server said BAD: {m}"),
        E::No(m) => format!("the server said NO: {m}"),
        E::ConnectionLost => "the server closed the connection".to_string(),
        E::Parse(_) => "the server's answer could not be read".to_string(),
        E::Validate(_) => "a name holds a line break".to_string(),
        E::Append => "APPEND failed".to_string(),
        _ => "the session failed".to_string(),
    };
    MailError(format!("{what}: {why}"))
}

/// Runs `f` within the server's timeout, naming `what` when it fails.
async fn bounded<T>(
    server: &Server,
    what: &str,
    f: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, MailError> {
    match tokio::time::timeout(server.timeout, f).await {
        Ok(r) => r.map_err(|e| imap_err(what, e)),
        Err(_) => Err(MailError(format!("{what}: no answer within {} s", server.timeout.as_secs()))),
    }
}

/// Longest Internet Message-ID searched for (RFC 5322's line limit).
pub const MAX_MESSAGE_ID_CHARS: usize = 998;

/// Whether `id` is an Internet Message-ID Parapet searches mailboxes by: `<left@right>`, printable
/// ASCII without spaces, quotes or backslashes (so no search can match more than that message).
pub fn valid_message_id(id: &str) -> bool {
    id.len() <= MAX_MESSAGE_ID_CHARS
        && id.starts_with('<')
        && id.ends_with('>')
        && id.len() > 4
        && id[1..id.len() - 1].contains('@')
        && id[1..id.len() - 1].chars().all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\'))
}

/// The `Message-ID` header's value in a message's header block (unfolded, trimmed).
fn header_message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r')).peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_string();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            value.push_str(next.trim());
            lines.next();
        }
        return Some(value);
    }
    None
}

/// An IMAP quoted string, or an error for what no quoted string can carry.
fn quoted(s: &str) -> Result<String, MailError> {
    if s.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) || !s.is_ascii() {
        return Err(MailError(format!(
            "{} cannot be searched for over IMAP (line breaks or non-ASCII characters)",
            crate::domain::text::excerpt(s)
        )));
    }
    Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

fn uid_set(uids: &BTreeSet<u32>) -> String {
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Logs in to `mailbox` on `server` with the master login (`mailbox` empty: the master's own).
pub async fn open(server: &Server, mailbox: &str) -> Result<Mailbox, MailError> {
    let at = format!("{}:{}", server.host, server.port);
    let stream = transport::connect(&server.host, server.port, server.tls, server.timeout)
        .await
        .map_err(|e| MailError(format!("connecting to IMAP at {at}: {e}")))?;
    let mut client = async_imap::Client::new(stream);
    let greeting = tokio::time::timeout(server.timeout, client.read_response())
        .await
        .map_err(|_| {
            MailError(format!("IMAP at {at} sent no greeting within {} s", server.timeout.as_secs()))
        })?
        .map_err(|e| MailError(format!("IMAP at {at}: {e}")))?;
    if greeting.is_none() {
        return Err(MailError(format!("IMAP at {at} closed the connection before its greeting")));
    }
    if server.tls == MailServerTls::Starttls {
        bounded(server, "STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?;
        let tls = transport::upgrade(client.into_inner(), &server.host, server.timeout)
            .await
            .map_err(|e| MailError(format!("STARTTLS with {at}: {e}")))?;
        client = async_imap::Client::new(tls);
    }
    let plain = Plain { authzid: mailbox, authcid: &server.master_user, password: server.password() };
    let who = if mailbox.is_empty() { server.master_user.clone() } else { mailbox.to_string() };
    let session = match tokio::time::timeout(server.timeout, client.authenticate("PLAIN", &plain)).await {
        Ok(Ok(s)) => s,
        Ok(Err((e, _))) => {
            // A server that echoes the login must not get the password into our messages.
            let MailError(m) = imap_err(&format!("logging in to {who}"), e);
            let plain =
                [mailbox.as_bytes(), server.master_user.as_bytes(), server.password().as_bytes()].join(&0u8);
            let sent = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, plain);
            let m = m.replace(&sent, "[redacted]");
            let m = if server.password().is_empty() { m } else { m.replace(server.password(), "[redacted]") };
            return Err(MailError(m));
        }
        Err(_) => {
            return Err(MailError(format!(
                "logging in to {who}: no answer within {} s",
                server.timeout.as_secs()
            )))
        }
    };
    let mut mb = Mailbox { session, server: server.clone(), offers: Offers::default(), folders: None };
    let caps = bounded(&mb.server, "CAPABILITY", mb.session.capabilities()).await?;
    let mut names: Vec<String> = caps
        .iter()
        .map(|c| match c {
            async_imap::types::Capability::Imap4rev1 => "IMAP4rev1".to_string(),
            async_imap::types::Capability::Auth(a) => format!("AUTH={a}"),
            async_imap::types::Capability::Atom(a) => a.to_string(),
        })
        .collect();
    names.sort();
    mb.offers = Offers {
        move_: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
        special_use: caps.has_str("SPECIAL-USE"),
        capabilities: names,
    };
    Ok(mb)
}

impl Mailbox {
    /// Every folder of the mailbox (read once per session).
    pub async fn folders(&mut self) -> Result<Vec<Folder>, MailError> {
        if let Some(f) = &self.folders {
            return Ok(f.clone());
        }
        let server = self.server.clone();
        let list = bounded(&server, "LIST", async {
            let names = self.session.list(Some(""), Some("*")).await?;
            names.try_collect::<Vec<_>>().await
        })
        .await?;
        let folders: Vec<Folder> = list
            .iter()
            .map(|n| {
                let attrs = n.attributes();
                let special = attrs.iter().find_map(|a| match a {
                    NameAttribute::Junk => Some("\\Junk".to_string()),
                    NameAttribute::Trash => Some("\\Trash".to_string()),
                    NameAttribute::Sent => Some("\\Sent".to_string()),
                    NameAttribute::Drafts => Some("\\Drafts".to_string()),
                    NameAttribute::Archive => Some("\\Archive".to_string()),
                    NameAttribute::All => Some("\\All".to_string()),
                    NameAttribute::Flagged => Some("\\Flagged".to_string()),
                    _ => None,
                });
                Folder {
                    name: n.name().to_string(),
                    selectable: !attrs.iter().any(|a| matches!(a, NameAttribute::NoSelect)),
                    special_use: special,
                }
            })
            .collect();
        self.folders = Some(folders.clone());
        Ok(folders)
    }

    async fn select(&mut self, folder: &str) -> Result<(), MailError> {
        let server = self.server.clone();
        bounded(&server, &format!("SELECT {folder}"), self.session.select(folder)).await.map(|_| ())
    }

    /// Selects `folder`; `false` when the server refuses it (no rights, a shared namespace), so one such
    /// folder does not stop the search of the others.
    async fn select_if_allowed(&mut self, folder: &str) -> Result<bool, MailError> {
        use async_imap::error::Error as E;
        match tokio::time::timeout(self.server.timeout, self.session.select(folder)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(E::No(_) | E::Bad(_))) => Ok(false),
            Ok(Err(e)) => Err(imap_err(&format!("SELECT {folder}"), e)),
            Err(_) => Err(MailError(format!(
                "SELECT {folder}: no answer within {} s",
                self.server.timeout.as_secs()
            ))),
        }
    }

    /// The messages of the selected `folder` whose Message-ID is exactly `message_id`. `SEARCH HEADER`
    /// matches substrings, so each hit's header is read and compared before anything acts on it.
    async fn search(&mut self, folder: &str, message_id: &str) -> Result<BTreeSet<u32>, MailError> {
        let q = format!("HEADER Message-ID {}", quoted(message_id)?);
        let server = self.server.clone();
        let hits: BTreeSet<u32> =
            bounded(&server, &format!("SEARCH in {folder}"), self.session.uid_search(q))
                .await?
                .into_iter()
                .collect();
        if hits.is_empty() {
            return Ok(hits);
        }
        let set = uid_set(&hits);
        let fetched = bounded(&server, &format!("FETCH in {folder}"), async {
            let s = self.session.uid_fetch(&set, "(UID BODY.PEEK[HEADER])").await?;
            s.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(fetched
            .iter()
            .filter(|f| f.header().and_then(header_message_id).as_deref() == Some(message_id))
            .filter_map(|f| f.uid)
            .collect())
    }

    /// Creates `folder` when the mailbox has none of that name (a destination the server did not make).
    async fn ensure_folder(&mut self, folder: &str) -> Result<(), MailError> {
        if self.folders().await?.iter().any(|f| f.name == folder) {
            return Ok(());
        }
        let server = self.server.clone();
        bounded(&server, &format!("CREATE {folder}"), self.session.create(folder)).await?;
        self.folders = None;
        Ok(())
    }

    async fn store_deleted(&mut self, uids: &BTreeSet<u32>) -> Result<(), MailError> {
        // A plain EXPUNGE would also remove what the user had marked deleted in the folder.
        if !self.offers.uidplus {
            return Err(MailError(
                "the server offers no UIDPLUS, so a message cannot be expunged alone: nothing was deleted"
                    .into(),
            ));
        }
        let server = self.server.clone();
        let set = uid_set(uids);
        bounded(&server, "STORE \\Deleted", async {
            let s = self.session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
            s.try_collect::<Vec<_>>().await
        })
        .await?;
        bounded(&server, "EXPUNGE", async {
            let s = self.session.uid_expunge(&set).await?;
            s.try_collect::<Vec<_>>().await.map(|_| ())
        })
        .await
    }

    async fn move_out(&mut self, uids: &BTreeSet<u32>, to: &str) -> Result<(), MailError> {
        let server = self.server.clone();
        let set = uid_set(uids);
        if self.offers.move_ {
            return bounded(&server, &format!("MOVE to {to}"), self.session.uid_mv(&set, to)).await;
        }
        if !self.offers.uidplus {
            return Err(MailError(
                "the server offers neither MOVE nor UIDPLUS, so a message cannot be moved alone: nothing was moved"
                    .into(),
            ));
        }
        bounded(&server, &format!("COPY to {to}"), self.session.uid_copy(&set, to)).await?;
        self.store_deleted(uids).await
    }

    /// Puts each of `items` into folder `to` (`None`: expunges it), looking in `to` first; one answer
    /// per item, in order. `retried` says a try before this one may have expunged them already, so a
    /// hard delete that finds nothing reports `AlreadyThere`.
    pub async fn remediate(
        &mut self,
        items: &[Item],
        to: Option<&str>,
        retried: &[bool],
    ) -> Result<Vec<Found>, MailError> {
        let mut found: Vec<Option<Found>> = vec![None; items.len()];
        if let Some(to) = to {
            self.ensure_folder(to).await?;
            self.select(to).await?;
            for (i, item) in items.iter().enumerate() {
                if !self.search(to, &item.message_id).await?.is_empty() {
                    found[i] = Some(Found::AlreadyThere);
                }
            }
        }
        // The other folders: each item's hint first, then INBOX, then the rest as listed.
        let mut order: Vec<String> = Vec::new();
        for item in items {
            if let Some(h) = &item.hint {
                if !order.contains(h) {
                    order.push(h.clone());
                }
            }
        }
        if !order.iter().any(|f| f == "INBOX") {
            order.push("INBOX".to_string());
        }
        for f in self.folders().await? {
            if f.selectable && !order.contains(&f.name) {
                order.push(f.name);
            }
        }
        let known: BTreeSet<String> = self.folders().await?.into_iter().map(|f| f.name).collect();
        for folder in order {
            if found.iter().all(Option::is_some) {
                break;
            }
            if Some(folder.as_str()) == to || !(known.contains(&folder) || folder == "INBOX") {
                continue;
            }
            if !self.select_if_allowed(&folder).await? {
                continue;
            }
            let mut here = BTreeSet::new();
            let mut which = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if found[i].is_some() {
                    continue;
                }
                let uids = self.search(&folder, &item.message_id).await?;
                if !uids.is_empty() {
                    here.extend(uids);
                    which.push(i);
                }
            }
            if here.is_empty() {
                continue;
            }
            match to {
                Some(to) => self.move_out(&here, to).await?,
                None => self.store_deleted(&here).await?,
            }
            for i in which {
                found[i] = Some(match to {
                    Some(_) => Found::Moved { from: folder.clone() },
                    None => Found::Deleted { from: folder.clone() },
                });
            }
        }
        Ok(found
            .into_iter()
            .enumerate()
            .map(|(i, f)| match f {
                Some(f) => f,
                None if to.is_none() && retried.get(i).copied().unwrap_or(false) => Found::AlreadyThere,
                None => Found::NotFound,
            })
            .collect())
    }

    /// Ends the session politely (errors ignored: the work is done or already failed).
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(self.server.timeout, self.session.logout()).await;
    }
}

/// What `testMailServer` reports of the IMAP side.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Whether a connection was made.
    pub reachable: bool,
    /// Whether the master login was accepted.
    pub logged_in: bool,
    /// What the server offers (after login).
    pub offers: Offers,
    /// The mailbox's folders.
    pub folders: Vec<Folder>,
    /// What failed, if anything.
    pub error: Option<String>,
    /// Milliseconds from connect to the end of the probe.
    pub elapsed_ms: u64,
}

/// Connects, logs in to `mailbox` (empty: the master's own) and reads what the server offers.
pub async fn probe(server: &Server, mailbox: &str) -> Probe {
    let start = Instant::now();
    let mut p = Probe::default();
    match open(server, mailbox).await {
        Ok(mut mb) => {
            p.reachable = true;
            p.logged_in = true;
            p.offers = mb.offers.clone();
            match mb.folders().await {
                Ok(f) => p.folders = f,
                Err(e) => p.error = Some(e.0),
            }
            mb.logout().await;
        }
        Err(e) => {
            p.reachable = !e.0.starts_with("connecting to");
            p.error = Some(e.0);
        }
    }
    p.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_message_ids_are_searched_for() {
        assert!(valid_message_id("<abc.123@mail.contoso.com>"));
        for bad in ["abc@x", "<abc>", "<>", "<a b@x>", "<a\"@x>", "<a@x>>", "<a\\@x>", "<a@x>\r\n"] {
            assert!(!valid_message_id(bad), "{bad:?}");
        }
        assert!(!valid_message_id(&format!("<{}@x>", "a".repeat(1000))));
    }

    #[test]
    fn the_message_id_header_is_read_exactly_and_unfolded() {
        let h = b"From: a@b\r\nMessage-ID:\r\n <abc@x.test>\r\nSubject: s\r\n\r\n";
        assert_eq!(header_message_id(h).as_deref(), Some("<abc@x.test>"));
        let h = b"message-id: <xabc@x.testy>\nSubject: s\n";
        assert_eq!(header_message_id(h).as_deref(), Some("<xabc@x.testy>"));
        assert_eq!(header_message_id(b"Subject: none\r\n"), None);
    }
}
