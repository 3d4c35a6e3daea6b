//! A ManageSieve (RFC 5804) client: lists, reads, uploads, activates and deletes a mailbox's Sieve
//! scripts (its server-side inbox rules). It works over any stream, so the caller chooses plain TCP or
//! TLS and bounds every call with its own timeout.
//!
//! After any error other than [`SieveError::No`] (and after a call cancelled by a timeout) the session
//! is out of step with the server: further commands fail at once, and the caller opens a new session.

use base64::Engine as _;
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest literal (a script, a long reason) accepted from the server.
pub const MAX_LITERAL_BYTES: usize = 1 << 20;
/// The longest line accepted from the server, line break excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The most one whole response (data lines, literals and the final line) may hold, so a server cannot
/// make us buffer without end by sending many lines or many literals.
const MAX_RESPONSE_BYTES: usize = MAX_LITERAL_BYTES + 4 * MAX_LINE_BYTES;
/// Response codes nest parentheses only a level or two deep; anything deeper is hostile.
const MAX_NESTING: usize = 8;
/// Longer SASL responses go as a literal: RFC 5804 advises quoted strings only for short text.
const MAX_QUOTED_BYTES: usize = 1000;

/// Why a ManageSieve call failed. Messages hold what the server said, never a password.
#[derive(Debug, thiserror::Error)]
pub enum SieveError {
    /// The connection failed or was closed.
    #[error("ManageSieve connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered `NO`. The text is the server's reason, after its response code in
    /// parentheses when it gave one (`(NONEXISTENT) Sieve script 'x' not found`).
    #[error("the ManageSieve server refused: {0}")]
    No(String),
    /// The server answered `BYE` and closed the session.
    #[error("the ManageSieve server closed the session: {0}")]
    Bye(String),
    /// The server's answer broke the protocol or our limits, or a request could not be sent as given.
    #[error("the ManageSieve server answered something unexpected: {0}")]
    Protocol(String),
}

impl SieveError {
    /// Whether the same call may succeed later: connection failures, `BYE`, and `NO (TRYLATER)`.
    pub fn is_transient(&self) -> bool {
        match self {
            SieveError::Io(_) | SieveError::Bye(_) => true,
            SieveError::No(_) => self.response_code().is_some_and(|c| c.eq_ignore_ascii_case("TRYLATER")),
            SieveError::Protocol(_) => false,
        }
    }

    /// The response code of a `NO` or `BYE` (`NONEXISTENT`, `QUOTA/MAXSIZE`, `TRYLATER`…), if the server
    /// gave one: a `DELETESCRIPT` answered `NONEXISTENT`, say, has nothing left to do.
    pub fn response_code(&self) -> Option<&str> {
        match self {
            SieveError::No(t) | SieveError::Bye(t) => {
                t.strip_prefix('(')?.split_once(')').map(|(code, _)| code)
            }
            SieveError::Io(_) | SieveError::Protocol(_) => None,
        }
    }
}

/// What the server announced in its greeting (or after `STARTTLS`).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// `IMPLEMENTATION`: the server's name and version.
    pub implementation: Option<String>,
    /// `SASL`: the authentication mechanisms offered now.
    pub sasl: Vec<String>,
    /// `SIEVE`: the Sieve extensions the server understands (`fileinto`, `imap4flags`…).
    pub sieve: Vec<String>,
    /// `STARTTLS`: TLS can be started on this connection.
    pub starttls: bool,
    /// `VERSION`: the ManageSieve protocol version (`1.0` for RFC 5804).
    pub version: Option<String>,
    /// Every capability line as sent: its name and value, if any.
    pub raw: Vec<(String, Option<String>)>,
}

/// One ManageSieve session on `S`.
pub struct Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    stream: S,
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
    /// Bytes the response being read has taken so far, against [`MAX_RESPONSE_BYTES`].
    taken: usize,
    /// Set while a command's answer is not fully read: the session is then out of step, for good.
    busy: bool,
}

impl<S> fmt::Debug for Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("buffered", &self.buf.len()).field("busy", &self.busy).finish()
    }
}

/// One piece of a response line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Atom(String),
    /// A quoted string or a literal, unescaped.
    Str(Vec<u8>),
    /// A parenthesised list, such as a response code.
    List(Vec<Token>),
}

/// What the final `OK`/`NO`/`BYE` line said besides its status.
#[derive(Debug, Default)]
struct Done {
    code: Option<String>,
    text: String,
}

impl Done {
    fn describe(&self) -> String {
        match (&self.code, self.text.is_empty()) {
            (Some(c), false) => format!("({c}) {}", self.text),
            (Some(c), true) => format!("({c})"),
            (None, false) => self.text.clone(),
            (None, true) => "no reason given".to_string(),
        }
    }
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(stream: S) -> Self {
        Client { stream, buf: Vec::new(), taken: 0, busy: false }
    }

    /// Reads the server's greeting on a new connection: its capabilities, then `OK`.
    pub async fn greet(stream: S) -> Result<(Self, Capabilities), SieveError> {
        let mut client = Self::new(stream);
        let caps = client.read_capabilities().await?;
        Ok((client, caps))
    }

    /// Asks the server to start TLS and, once it agrees, gives back the stream for the caller to wrap in
    /// TLS and hand to [`Client::after_tls`].
    pub async fn starttls(mut self) -> Result<S, SieveError> {
        self.command(b"STARTTLS\r\n").await?;
        // Anything already received would be read as if it had come over TLS: a man in the middle
        // could inject responses that way (the STARTTLS command injection of CVE-2011-0411's kind).
        if !self.buf.is_empty() {
            return Err(SieveError::Protocol(format!(
                "{} byte(s) arrived after the STARTTLS answer, before TLS",
                self.buf.len()
            )));
        }
        Ok(self.stream)
    }

    /// Starts the session again on a stream now under TLS: RFC 5804 has the server send its
    /// capabilities again, and only those are to be trusted.
    pub async fn after_tls(stream: S) -> Result<(Self, Capabilities), SieveError> {
        Self::greet(stream).await
    }

    /// Logs in with SASL PLAIN: `authcid` and `password` are checked, and the session acts for `authzid`
    /// (empty: for `authcid` itself). Dovecot's master users log in to a mailbox with the mailbox as
    /// `authzid` and the master user as `authcid`.
    pub async fn authenticate_plain(
        &mut self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<(), SieveError> {
        if [authzid, authcid, password].iter().any(|s| s.contains('\0')) {
            return Err(SieveError::Protocol(
                "a user name or the password holds a NUL character, which SASL PLAIN cannot carry".into(),
            ));
        }
        let response =
            base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{authcid}\0{password}"));
        let mut cmd = b"AUTHENTICATE \"PLAIN\" ".to_vec();
        string_arg(&mut cmd, response.as_bytes());
        cmd.extend_from_slice(b"\r\n");
        let result = self.authenticate(&cmd).await;
        // A server that echoes what it was sent must not get the password into our messages or logs.
        result.map_err(|e| match redact(e, &[password, &response]) {
            // Unreadable answers are quoted in part, and a part of an echo is not caught by redaction.
            SieveError::Protocol(_) => {
                SieveError::Protocol("the answer to AUTHENTICATE could not be read".into())
            }
            other => other,
        })
    }

    async fn authenticate(&mut self, cmd: &[u8]) -> Result<(), SieveError> {
        self.start(cmd).await?;
        let first = self.read_tokens().await?;
        if matches!(first.first(), Some(Token::Str(_))) {
            // A challenge: PLAIN with an initial response needs none, so this server wants something we
            // cannot give. Cancelling (RFC 5804 2.1) keeps the session in step.
            self.send(b"\"*\"\r\n").await?;
            let _ = self.read_final(None).await;
            return Err(SieveError::Protocol("a SASL challenge after the PLAIN initial response".into()));
        }
        self.read_final(Some(first)).await?;
        Ok(())
    }

    /// Every script of the mailbox, with whether it is the active one.
    pub async fn list_scripts(&mut self) -> Result<Vec<(String, bool)>, SieveError> {
        let lines = self.command(b"LISTSCRIPTS\r\n").await?;
        let mut scripts = Vec::with_capacity(lines.len());
        for line in lines {
            let script = match line.as_slice() {
                [Token::Str(name)] => (utf8(name, "a script name")?, false),
                [Token::Str(name), Token::Atom(a)] if a.eq_ignore_ascii_case("ACTIVE") => {
                    (utf8(name, "a script name")?, true)
                }
                _ => return Err(unexpected("a LISTSCRIPTS line", &line)),
            };
            scripts.push(script);
        }
        Ok(scripts)
    }

    /// The text of the script `name`.
    pub async fn get_script(&mut self, name: &str) -> Result<String, SieveError> {
        let mut cmd = b"GETSCRIPT ".to_vec();
        quote_name(&mut cmd, name)?;
        cmd.extend_from_slice(b"\r\n");
        let lines = self.command(&cmd).await?;
        match lines.as_slice() {
            [line] => match line.as_slice() {
                [Token::Str(text)] => utf8(text, "the script"),
                _ => Err(unexpected("a GETSCRIPT answer", line)),
            },
            _ => Err(SieveError::Protocol(format!("{} data lines in a GETSCRIPT answer", lines.len()))),
        }
    }

    /// Stores `text` as the script `name`, replacing any script of that name (the active one stays
    /// active). The server checks the script first and refuses an invalid one with its reason.
    pub async fn put_script(&mut self, name: &str, text: &str) -> Result<(), SieveError> {
        let mut cmd = b"PUTSCRIPT ".to_vec();
        quote_name(&mut cmd, name)?;
        cmd.push(b' ');
        // A non-synchronising literal carries any text as is (RFC 5804 4: the only literal a client sends).
        literal(&mut cmd, text.as_bytes());
        cmd.extend_from_slice(b"\r\n");
        self.command(&cmd).await?;
        Ok(())
    }

    /// Makes `name` the active script; `""` leaves no script active.
    pub async fn set_active(&mut self, name: &str) -> Result<(), SieveError> {
        let mut cmd = b"SETACTIVE ".to_vec();
        quote_name(&mut cmd, name)?;
        cmd.extend_from_slice(b"\r\n");
        self.command(&cmd).await?;
        Ok(())
    }

    /// Deletes the script `name` (servers refuse to delete the active one).
    pub async fn delete_script(&mut self, name: &str) -> Result<(), SieveError> {
        let mut cmd = b"DELETESCRIPT ".to_vec();
        quote_name(&mut cmd, name)?;
        cmd.extend_from_slice(b"\r\n");
        self.command(&cmd).await?;
        Ok(())
    }

    /// Ends the session and shuts the stream down.
    pub async fn logout(mut self) -> Result<(), SieveError> {
        match self.command(b"LOGOUT\r\n").await {
            // Some servers say goodbye with BYE rather than OK; either way the session is over.
            Ok(_) | Err(SieveError::Bye(_)) => {}
            Err(e) => return Err(e),
        }
        // The server closes its side now, so a failing shutdown has nothing left to lose.
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    async fn read_capabilities(&mut self) -> Result<Capabilities, SieveError> {
        self.taken = 0;
        let (lines, _) = self.read_final(None).await?;
        let mut caps = Capabilities::default();
        for line in lines {
            let (name, value) = match line.as_slice() {
                [Token::Str(n)] => (utf8(n, "a capability")?, None),
                [Token::Str(n), Token::Str(v)] => (utf8(n, "a capability")?, Some(utf8(v, "a capability")?)),
                _ => return Err(unexpected("a capability line", &line)),
            };
            let words = || value.as_deref().unwrap_or("").split_whitespace().map(str::to_string).collect();
            match name.to_ascii_uppercase().as_str() {
                "IMPLEMENTATION" => caps.implementation = value.clone(),
                "SASL" => caps.sasl = words(),
                "SIEVE" => caps.sieve = words(),
                "STARTTLS" => caps.starttls = true,
                "VERSION" => caps.version = value.clone(),
                _ => {}
            }
            caps.raw.push((name, value));
        }
        Ok(caps)
    }

    /// Sends `cmd` and reads its whole answer: the data lines when it ends in `OK`.
    async fn command(&mut self, cmd: &[u8]) -> Result<Vec<Vec<Token>>, SieveError> {
        self.start(cmd).await?;
        Ok(self.read_final(None).await?.0)
    }

    async fn start(&mut self, cmd: &[u8]) -> Result<(), SieveError> {
        if self.busy {
            return Err(SieveError::Protocol(
                "an earlier command's answer was not read to its end; this session cannot go on".into(),
            ));
        }
        self.busy = true;
        self.taken = 0;
        self.send(cmd).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SieveError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads data lines up to the final `OK`, `NO` or `BYE`, starting with `first` if already read.
    async fn read_final(
        &mut self,
        mut first: Option<Vec<Token>>,
    ) -> Result<(Vec<Vec<Token>>, Done), SieveError> {
        let mut data = Vec::new();
        loop {
            let tokens = match first.take() {
                Some(t) => t,
                None => self.read_tokens().await?,
            };
            let status = match tokens.first() {
                Some(Token::Atom(a)) => a.to_ascii_uppercase(),
                _ => {
                    data.push(tokens);
                    continue;
                }
            };
            let done = final_parts(&tokens[1..])?;
            return match status.as_str() {
                "OK" => {
                    self.busy = false;
                    Ok((data, done))
                }
                "NO" => {
                    self.busy = false;
                    Err(SieveError::No(done.describe()))
                }
                "BYE" => Err(SieveError::Bye(done.describe())),
                _ => Err(unexpected("a response line", &tokens)),
            };
        }
    }

    /// Reads one response line, with the literals it holds (each runs on past a line break).
    async fn read_tokens(&mut self) -> Result<Vec<Token>, SieveError> {
        let mut line = self.read_line().await?;
        let mut pos = 0;
        let mut top = Vec::new();
        let mut outer: Vec<Vec<Token>> = Vec::new();
        loop {
            while line.get(pos) == Some(&b' ') {
                pos += 1;
            }
            let Some(&c) = line.get(pos) else {
                if !outer.is_empty() {
                    return Err(SieveError::Protocol("a parenthesis left open".into()));
                }
                return Ok(top);
            };
            match c {
                b'"' => {
                    let (s, next) = quoted(&line, pos)?;
                    top.push(Token::Str(s));
                    pos = next;
                }
                b'{' => {
                    let n = literal_len(&line[pos..])?;
                    let data = self.read_literal(n).await?;
                    top.push(Token::Str(data));
                    line = self.read_line().await?;
                    pos = 0;
                }
                b'(' => {
                    if outer.len() >= MAX_NESTING {
                        return Err(SieveError::Protocol("parentheses nested too deep".into()));
                    }
                    outer.push(std::mem::take(&mut top));
                    pos += 1;
                }
                b')' => {
                    let inner = std::mem::take(&mut top);
                    top = outer.pop().ok_or_else(|| SieveError::Protocol("an unmatched ')'".into()))?;
                    top.push(Token::List(inner));
                    pos += 1;
                }
                _ => {
                    let end = line[pos..]
                        .iter()
                        .position(|b| matches!(b, b' ' | b'(' | b')' | b'"' | b'{'))
                        .map_or(line.len(), |i| pos + i);
                    top.push(Token::Atom(String::from_utf8_lossy(&line[pos..end]).into_owned()));
                    pos = end;
                }
            }
        }
    }

    /// Reads up to the next line break (CRLF; a bare LF is taken too) and returns the line without it.
    async fn read_line(&mut self) -> Result<Vec<u8>, SieveError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                if end > MAX_LINE_BYTES + 1 {
                    return Err(too_long());
                }
                self.charge(end + 1)?;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE_BYTES + 1 {
                return Err(too_long());
            }
            self.fill().await?;
        }
    }

    async fn read_literal(&mut self, n: usize) -> Result<Vec<u8>, SieveError> {
        if n > MAX_LITERAL_BYTES {
            return Err(SieveError::Protocol(format!(
                "a literal of {n} bytes (at most {MAX_LITERAL_BYTES} are accepted)"
            )));
        }
        self.charge(n)?;
        self.buf.reserve(n.saturating_sub(self.buf.len()));
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn charge(&mut self, n: usize) -> Result<(), SieveError> {
        self.taken += n;
        if self.taken > MAX_RESPONSE_BYTES {
            return Err(SieveError::Protocol(format!("an answer of more than {MAX_RESPONSE_BYTES} bytes")));
        }
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), SieveError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(SieveError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-answer",
            )));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn too_long() -> SieveError {
    SieveError::Protocol(format!("a line longer than {MAX_LINE_BYTES} bytes"))
}

/// The code and text after `OK`, `NO` or `BYE`: `[SP "(" code ")"] [SP string]`.
fn final_parts(rest: &[Token]) -> Result<Done, SieveError> {
    let mut done = Done::default();
    let mut rest = rest;
    if let [Token::List(code), tail @ ..] = rest {
        match code.first() {
            Some(Token::Atom(name)) => done.code = Some(name.to_ascii_uppercase()),
            _ => return Err(unexpected("a response code", code)),
        }
        rest = tail;
    }
    match rest {
        [] => {}
        [Token::Str(text)] => done.text = clean(text),
        _ => return Err(unexpected("the end of a response", rest)),
    }
    Ok(done)
}

/// A server's reason as one readable text: lossy UTF-8, `\n` line breaks, no trailing blank lines.
fn clean(text: &[u8]) -> String {
    String::from_utf8_lossy(text).replace("\r\n", "\n").trim_end().to_string()
}

/// The unescaped content of the quoted string opening at `start`, and where it ends.
fn quoted(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), SieveError> {
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        match line.get(i) {
            None => return Err(SieveError::Protocol("an unterminated quoted string".into())),
            Some(b'"') => return Ok((out, i + 1)),
            Some(b'\\') => match line.get(i + 1) {
                Some(&c) => {
                    out.push(c);
                    i += 2;
                }
                None => return Err(SieveError::Protocol("an unterminated quoted string".into())),
            },
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// The length announced by `{N}` or `{N+}`, which must end the line.
fn literal_len(rest: &[u8]) -> Result<usize, SieveError> {
    let bad = || SieveError::Protocol(format!("a malformed literal {}", excerpt(rest)));
    let inner = rest.strip_prefix(b"{").and_then(|r| r.strip_suffix(b"}")).ok_or_else(bad)?;
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(bad)
}

/// Appends `name` as a quoted string, refusing what no quoted string may carry.
fn quote_name(out: &mut Vec<u8>, name: &str) -> Result<(), SieveError> {
    if name.contains(['\r', '\n', '\0']) {
        return Err(SieveError::Protocol(
            "a script name with a line break or NUL character was not sent".into(),
        ));
    }
    quote(out, name.as_bytes());
    Ok(())
}

fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}+}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// Appends `s` (free of line breaks and NUL) as a quoted string when short, else as a literal.
fn string_arg(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= MAX_QUOTED_BYTES {
        quote(out, s);
    } else {
        literal(out, s);
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, SieveError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| SieveError::Protocol(format!("{what} that is not UTF-8")))
}

fn unexpected(wanted: &str, got: &[Token]) -> SieveError {
    SieveError::Protocol(format!("{wanted}, but got {}", describe_tokens(got)))
}

fn describe_tokens(tokens: &[Token]) -> String {
    let parts: Vec<String> = tokens
        .iter()
        .map(|t| match t {
            Token::Atom(a) => excerpt(a.as_bytes()),
            Token::Str(s) => format!("\"{}\"", excerpt(s)),
            Token::List(l) => format!("({})", describe_tokens(l)),
        })
        .collect();
    let joined = parts.join(" ");
    if joined.is_empty() {
        "an empty line".to_string()
    } else {
        joined
    }
}

/// At most 60 characters of what the server sent, with control characters escaped, for messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(60).flat_map(char::escape_debug).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn redact(e: SieveError, secrets: &[&str]) -> SieveError {
    let scrub = |mut s: String| {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            s = s.replace(secret, "[redacted]");
        }
        s
    };
    match e {
        SieveError::Io(e) => SieveError::Io(e),
        SieveError::No(s) => SieveError::No(scrub(s)),
        SieveError::Bye(s) => SieveError::Bye(scrub(s)),
        SieveError::Protocol(s) => SieveError::Protocol(scrub(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    const GREETING: &[u8] = b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\
        \"SIEVE\" \"fileinto reject envelope imap4flags\"\r\n\
        \"NOTIFY\" \"mailto\"\r\n\
        \"SASL\" \"PLAIN LOGIN\"\r\n\
        \"STARTTLS\"\r\n\
        \"VERSION\" \"1.0\"\r\n\
        OK \"Dovecot ready.\"\r\n";

    /// A scripted server: sends `greeting`, then for each step reads exactly the bytes expected from the
    /// client (and checks them) and answers. Join the handle to see its assertion failures.
    fn server(
        greeting: &'static [u8],
        steps: Vec<(&'static [u8], &'static [u8])>,
    ) -> (DuplexStream, tokio::task::JoinHandle<DuplexStream>) {
        let (client, mut srv) = tokio::io::duplex(1 << 16);
        let handle = tokio::spawn(async move {
            srv.write_all(greeting).await.expect("greeting");
            for (expected, answer) in steps {
                let mut got = vec![0u8; expected.len()];
                srv.read_exact(&mut got).await.expect("the client's command");
                assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
                srv.write_all(answer).await.expect("answer");
            }
            srv
        });
        (client, handle)
    }

    #[tokio::test]
    async fn the_greeting_gives_the_capabilities() {
        let (io, srv) = server(GREETING, vec![]);
        let (client, caps) = Client::greet(io).await.expect("greeting");
        assert_eq!(caps.implementation.as_deref(), Some("Dovecot Pigeonhole"));
        assert_eq!(caps.sieve, ["fileinto", "reject", "envelope", "imap4flags"]);
        assert_eq!(caps.sasl, ["PLAIN", "LOGIN"]);
        assert!(caps.starttls);
        assert_eq!(caps.version.as_deref(), Some("1.0"));
        assert_eq!(caps.raw.len(), 6);
        assert_eq!(caps.raw[2], ("NOTIFY".to_string(), Some("mailto".to_string())));
        assert_eq!(caps.raw[4], ("STARTTLS".to_string(), None));
        assert!(!format!("{client:?}").is_empty());
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn a_greeting_of_bye_is_transient() {
        let (io, srv) = server(b"BYE \"Too many connections\"\r\n", vec![]);
        let err = Client::greet(io).await.expect_err("BYE");
        assert!(matches!(&err, SieveError::Bye(t) if t == "Too many connections"), "{err:?}");
        assert!(err.is_transient());
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn starttls_hands_back_the_stream_and_capabilities_are_read_again() {
        let (io, srv) = server(GREETING, vec![(b"STARTTLS\r\n", b"OK \"Begin TLS negotiation now.\"\r\n")]);
        let (client, _) = Client::greet(io).await.expect("greeting");
        let mut io = client.starttls().await.expect("STARTTLS");
        let mut srv = srv.await.expect("server");
        srv.write_all(b"\"SASL\" \"PLAIN\"\r\n\"SIEVE\" \"fileinto\"\r\nOK\r\n").await.expect("caps");
        io.flush().await.expect("flush");
        let (_, caps) = Client::after_tls(io).await.expect("after TLS");
        assert_eq!(caps.sasl, ["PLAIN"]);
        assert!(!caps.starttls);
    }

    #[tokio::test]
    async fn starttls_refuses_bytes_that_came_before_tls() {
        let (io, srv) =
            server(GREETING, vec![(b"STARTTLS\r\n", b"OK \"Begin TLS\"\r\n\"SASL\" \"PLAIN\"\r\nOK\r\n")]);
        let (client, _) = Client::greet(io).await.expect("greeting");
        // The injected lines arrive together with the OK, as a man in the middle would send them.
        let err = client.starttls().await.expect_err("injected bytes");
        assert!(matches!(err, SieveError::Protocol(_)), "{err:?}");
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn plain_login_sends_the_initial_response_and_never_shows_the_password() {
        let (io, srv) = server(
            GREETING,
            vec![
                // base64("bob@acme.test\0parapet\0hunter2")
                (
                    b"AUTHENTICATE \"PLAIN\" \"Ym9iQGFjbWUudGVzdABwYXJhcGV0AGh1bnRlcjI=\"\r\n",
                    b"NO \"Authentication failed for Ym9iQGFjbWUudGVzdABwYXJhcGV0AGh1bnRlcjI= (hunter2).\"\r\n",
                ),
                (
                    b"AUTHENTICATE \"PLAIN\" \"Ym9iQGFjbWUudGVzdABwYXJhcGV0AGh1bnRlcjI=\"\r\n",
                    b"OK \"Logged in.\"\r\n",
                ),
            ],
        );
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        let err = client.authenticate_plain("bob@acme.test", "parapet", "hunter2").await.expect_err("NO");
        let shown = format!("{err} {err:?} {client:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("AGh1bnRlcjI"), "{shown}");
        assert!(!err.is_transient());
        client.authenticate_plain("bob@acme.test", "parapet", "hunter2").await.expect("logged in");
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn literals_carry_scripts_and_names() {
        let script = "require \"fileinto\";\r\n# ünïcode\nif true { fileinto \"Junk\"; }\r\n";
        let (io, srv) = server(
            GREETING,
            vec![
                (b"LISTSCRIPTS\r\n", b"\"a \\\"b\\\\\" ACTIVE\r\n{6}\r\nsecond\r\n\"third\"\r\nOK\r\n"),
                (
                    b"GETSCRIPT \"a \\\"b\\\\\"\r\n",
                    "{63}\r\nrequire \"fileinto\";\r\n# ünïcode\nif true { fileinto \"Junk\"; }\r\n\r\nOK \"Getscript completed.\"\r\n"
                        .as_bytes(),
                ),
                (
                    "PUTSCRIPT \"x\" {63+}\r\nrequire \"fileinto\";\r\n# ünïcode\nif true { fileinto \"Junk\"; }\r\n\r\n"
                        .as_bytes(),
                    b"OK (WARNINGS) \"line 2: something\"\r\n",
                ),
                (b"SETACTIVE \"\"\r\n", b"OK\r\n"),
                (b"DELETESCRIPT \"x\"\r\n", b"ok \"done\"\r\n"),
                (b"LOGOUT\r\n", b"OK \"Logout completed.\"\r\n"),
            ],
        );
        assert_eq!(script.len(), 63);
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        let list = client.list_scripts().await.expect("LISTSCRIPTS");
        assert_eq!(
            list,
            [("a \"b\\".to_string(), true), ("second".to_string(), false), ("third".to_string(), false)]
        );
        assert_eq!(client.get_script("a \"b\\").await.expect("GETSCRIPT"), script);
        client.put_script("x", script).await.expect("PUTSCRIPT");
        client.set_active("").await.expect("SETACTIVE");
        client.delete_script("x").await.expect("DELETESCRIPT");
        client.logout().await.expect("LOGOUT");
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn no_gives_its_code_and_text() {
        let (io, srv) = server(
            GREETING,
            vec![
                (b"GETSCRIPT \"nope\"\r\n", b"NO (NONEXISTENT) \"Sieve script `nope' not found\"\r\n"),
                (
                    b"PUTSCRIPT \"bad\" {4+}\r\nfoo;\r\n",
                    b"NO {46}\r\nbad: line 1: error: unknown command 'foo'.\r\n\r\n\r\n",
                ),
                (b"SETACTIVE \"a\"\r\n", b"NO (TRYLATER) \"Busy\"\r\n"),
                (b"DELETESCRIPT \"a\"\r\n", b"NO (QUOTA/MAXSCRIPTS \"x\" (y)) \"Quota\"\r\n"),
                (b"LISTSCRIPTS\r\n", b"NO\r\n"),
            ],
        );
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        let err = client.get_script("nope").await.expect_err("NO");
        assert!(
            matches!(&err, SieveError::No(t) if t == "(NONEXISTENT) Sieve script `nope' not found"),
            "{err:?}"
        );
        assert_eq!(err.response_code(), Some("NONEXISTENT"));
        assert!(!err.is_transient());
        let err = client.put_script("bad", "foo;").await.expect_err("NO");
        assert!(
            matches!(&err, SieveError::No(t) if t == "bad: line 1: error: unknown command 'foo'."),
            "{err:?}"
        );
        assert_eq!(err.response_code(), None);
        let err = client.set_active("a").await.expect_err("NO");
        assert!(err.is_transient(), "{err:?}");
        let err = client.delete_script("a").await.expect_err("NO");
        assert_eq!(err.response_code(), Some("QUOTA/MAXSCRIPTS"));
        let err = client.list_scripts().await.expect_err("NO");
        assert!(matches!(&err, SieveError::No(t) if t == "no reason given"), "{err:?}");
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn bye_ends_the_session() {
        let (io, srv) = server(GREETING, vec![(b"LISTSCRIPTS\r\n", b"BYE (TRYLATER) \"Shutting down\"\r\n")]);
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        let err = client.list_scripts().await.expect_err("BYE");
        assert!(matches!(&err, SieveError::Bye(t) if t == "(TRYLATER) Shutting down"), "{err:?}");
        assert!(err.is_transient());
        let again = client.list_scripts().await.expect_err("out of step");
        assert!(matches!(again, SieveError::Protocol(_)), "{again:?}");
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn a_closed_connection_is_transient() {
        let (io, srv) = server(b"\"SASL\" \"PLAIN\"\r\n", vec![]);
        drop(srv.await.expect("server"));
        let err = Client::greet(io).await.expect_err("EOF");
        assert!(matches!(err, SieveError::Io(_)) && err.is_transient(), "{err:?}");
    }

    #[tokio::test]
    async fn an_oversized_literal_is_refused_before_it_is_read() {
        let (io, srv) = server(GREETING, vec![(b"GETSCRIPT \"big\"\r\n", b"{1048577}\r\nxxxx")]);
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        let err = client.get_script("big").await.expect_err("too big");
        assert!(matches!(&err, SieveError::Protocol(t) if t.contains("1048577")), "{err:?}");
        assert!(!err.is_transient());
        srv.await.expect("server");
    }

    #[tokio::test]
    async fn an_endless_line_is_refused() {
        let (client_io, mut srv) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            let chunk = vec![b'a'; 8192];
            // The client gives up after MAX_LINE_BYTES; its end then closes and writing fails.
            for _ in 0..64 {
                if srv.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let err = Client::greet(client_io).await.expect_err("too long");
        assert!(matches!(&err, SieveError::Protocol(t) if t.contains("line longer")), "{err:?}");
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn names_that_cannot_be_quoted_are_not_sent() {
        let (io, srv) = server(GREETING, vec![]);
        let (mut client, _) = Client::greet(io).await.expect("greeting");
        for name in ["a\r\nDELETESCRIPT \"b\"", "a\nb", "a\0b"] {
            let err = client.put_script(name, "keep;").await.expect_err("refused");
            assert!(matches!(err, SieveError::Protocol(_)), "{err:?}");
        }
        // Nothing was sent, so the session is still in step.
        let mut srv = srv.await.expect("server");
        let answer = client.set_active("");
        let mut got = [0u8; 14];
        let (r, _) = tokio::join!(answer, async {
            srv.read_exact(&mut got).await.expect("command");
            srv.write_all(b"OK\r\n").await.expect("answer");
        });
        r.expect("SETACTIVE");
        assert_eq!(&got, b"SETACTIVE \"\"\r\n");
    }

    #[test]
    fn literal_lengths_parse_strictly() {
        assert_eq!(literal_len(b"{12}").ok(), Some(12));
        assert_eq!(literal_len(b"{0+}").ok(), Some(0));
        for bad in [&b"{}"[..], b"{12", b"{1 2}", b"{-1}", b"{99999999999999999999}", b"{12} x"] {
            assert!(literal_len(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
