//! The layers import only downwards: reads every `src/**.rs`, collects each reference to another top
//! module (`crate::x::…` in `use` lines, `use crate::{x, y}` groups, inline paths, and `super::` paths
//! that climb out of their top module), and fails listing every file:line that reaches a layer its own
//! layer may not import from. `LAYERS` below is the rule; README "Layers" explains it.
//!
//! A plain-std tokenizer, not a Rust parser: it skips comments (so doc links do not count), string and
//! character literals, and tracks inline `mod x { … }` blocks so `super::` resolves as the compiler does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Marks a layer that may import from every other one (the edges that wire the server together).
const ANY: &[&str] = &["*"];

/// Every top module of `src/` and the layers it may import from (its own layer is always allowed).
/// Lowest first; the domain services import one another only in the order listed (incidents, then
/// triage and correlation, then ingest), which is acyclic.
const LAYERS: &[(&str, &[&str])] = &[
    // The bottom: errors, and the neutral home of shared types, ids, lock ids, event types and rules.
    ("error", &[]),
    ("domain", &["error"]),
    // Tokens and roles: who the caller is.
    ("auth", &["domain", "error"]),
    // Tables and queries; they know tables, not roles.
    ("db", &["domain", "error"]),
    // The outbox, the event hub and retention; counters.
    ("events", &["db", "domain", "error"]),
    ("metrics", &["db", "domain", "error"]),
    // Domain services. `incidents` holds the incident rules correlation, triage and manual operations
    // share (recompute, merge); triage and correlation build on it; ingest on correlation.
    ("incidents", &["auth", "db", "events", "domain", "error"]),
    ("triage", &["incidents", "auth", "db", "events", "domain", "error"]),
    ("correlation", &["incidents", "db", "events", "domain", "error"]),
    (
        "ingest",
        &[
            "correlation",
            "incidents",
            "mail",
            "allowblock",
            "auth",
            "db",
            "events",
            "metrics",
            "domain",
            "error",
        ],
    ),
    ("tenants", &["db", "domain", "error"]),
    // The tenant allow/block list: its rules, writes (with the audit log) and the matcher ingestion
    // calls.
    ("allowblock", &["auth", "db", "domain", "error"]),
    // The mail store: mail flow, copies' timelines, partitions; mail-flow records meet the list here.
    ("mail", &["actions", "allowblock", "auth", "db", "events", "domain", "error"]),
    // Submissions: evaluated from the list, the mail store and the verdicts; may create an entry.
    ("submissions", &["allowblock", "mail", "auth", "db", "domain", "error"]),
    // The job queue and its runner: claims, leases, retries, and the queue's metrics.
    ("jobs", &["db", "metrics", "domain", "error"]),
    // Remediation actions: proposed from Explorer hunts, run as jobs, announced on the outbox.
    ("actions", &["explorer", "jobs", "mailserver", "auth", "db", "events", "domain", "error"]),
    // A tenant's own mail server: its configuration, the password sealed.
    ("mailserver", &["auth", "db", "domain", "error"]),
    // The job runner's handlers by kind.
    ("work", &["actions", "jobs", "mailserver", "db", "domain", "error"]),
    // Threat Explorer: hunting filters and aggregations over the mail store.
    ("explorer", &["db", "domain", "error"]),
    // Settings from the environment, for the layers below; what every request shares.
    ("config", &["auth", "db", "events", "domain", "error"]),
    ("state", &["auth", "db", "events", "metrics", "mailserver", "domain", "error"]),
    // Thin resolvers: they call services for every write and rule, and read rows through `db` (row
    // models, the queue's read queries, the loaders' batched reads), as they always have.
    (
        "graphql",
        &[
            "ingest",
            "actions",
            "mailserver",
            "allowblock",
            "mail",
            "explorer",
            "submissions",
            "correlation",
            "incidents",
            "triage",
            "tenants",
            "config",
            "state",
            "auth",
            "db",
            "events",
            "domain",
            "error",
        ],
    ),
    // The edges: HTTP, WebSocket and playground serving, the crate root (`lib`) and the binary (`main`).
    ("http", ANY),
    ("playground", ANY),
    ("ws", ANY),
    ("lib", ANY),
    ("main", ANY),
];

fn allowed(from: &str, to: &str) -> Option<bool> {
    let (_, may) = LAYERS.iter().find(|(name, _)| *name == from)?;
    Some(from == to || may.contains(&"*") || may.contains(&to))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Other(char),
}

/// Tokens with their 1-based line; comments, strings and char literals are dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if (ch == 'r' || ((ch == 'b' || ch == 'c') && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch != 'r')), '"' | '#')
        {
            // A raw string: r"…", r#"…"#, br"…".
            let mut j = i + 1 + usize::from(ch != 'r');
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                // `r#ident`, a raw identifier.
                out.push((Tok::Ident(String::new()), line));
                i = j;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                line += usize::from(c[j] == '\n');
                j += 1;
            }
            i = j;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{1f}') or a lifetime ('a): a literal closes within a few
            // characters, a lifetime does not close at all.
            let close = if at(i + 1) == '\\' {
                (i + 2..(i + 12).min(c.len())).find(|&j| c[j] == '\'')
            } else {
                (at(i + 2) == '\'').then_some(i + 2)
            };
            match close {
                Some(j) => i = j + 1,
                None => {
                    out.push((Tok::Other('\''), line));
                    i += 1;
                }
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((
                match ch {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    other => Tok::Other(other),
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The first segments named right after a path prefix that ends at `toks[i]` (the `::`): one ident, or
/// the first ident of every item of a `{…}` group.
fn first_segments(toks: &[(Tok, usize)], i: usize) -> Vec<String> {
    match toks.get(i + 1) {
        Some((Tok::Ident(s), _)) => vec![s.clone()],
        Some((Tok::Open, _)) => {
            let mut out = vec![];
            let mut depth = 0;
            let mut item_start = true;
            for (t, _) in &toks[i + 1..] {
                match t {
                    Tok::Open => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    Tok::Close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Other(',') if depth == 1 => item_start = true,
                    Tok::Ident(s) if depth == 1 && item_start => {
                        out.push(s.clone());
                        item_start = false;
                    }
                    _ => item_start = false,
                }
            }
            out
        }
        _ => vec![],
    }
}

/// Every top-level segment a file reaches at crate level, with its line. `module` is the file's
/// module path (`["triage", "alert"]` for src/triage/alert.rs, `[]` for lib.rs and main.rs).
fn references(src: &str, module: &[String]) -> Vec<(String, usize)> {
    let toks = tokens(src);
    let mut out = vec![];
    let mut path: Vec<String> = module.to_vec();
    // Inline modules open at these brace depths.
    let mut inline: Vec<usize> = vec![];
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let prev_is_sep = i > 0 && matches!(toks[i - 1].0, Tok::PathSep | Tok::Other('$'));
        match &toks[i].0 {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if inline.last() == Some(&depth) {
                    inline.pop();
                    path.pop();
                }
            }
            Tok::Ident(k) if k == "mod" => {
                if let (Some(name), Some((Tok::Open, _))) = (ident(toks.get(i + 1)), toks.get(i + 2)) {
                    path.push(name.to_string());
                    inline.push(depth);
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(k)
                if k == "crate" && !prev_is_sep && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) =>
            {
                let line = toks[i].1;
                out.extend(first_segments(&toks, i + 1).into_iter().map(|s| (s, line)));
            }
            Tok::Ident(k) if k == "super" && !prev_is_sep => {
                let line = toks[i].1;
                let mut j = i;
                let mut ups = 0;
                while ident(toks.get(j)) == Some("super")
                    && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                {
                    ups += 1;
                    j += 2;
                }
                if ups > 0 && ups >= path.len() {
                    // Climbed to the crate root: what follows names a top module.
                    out.extend(first_segments(&toks, j - 1).into_iter().map(|s| (s, line)));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under src/.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_string());
    }
    parts
}

fn layer_of(rel: &Path) -> String {
    let first = rel.iter().next().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn layers_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "expected the crate's sources under {}", src.display());
    let tops: BTreeSet<String> =
        files.iter().map(|f| layer_of(f.strip_prefix(&src).expect("under src"))).collect();

    let mut offences: Vec<String> = vec![];
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let from = layer_of(rel);
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        if allowed(&from, &from).is_none() {
            offences.push(format!("src/{}: layer `{from}` is not in LAYERS; add it", rel.display()));
            continue;
        }
        for (seg, line) in references(&text, &module_path(rel)) {
            // A segment that is no top module names an item of the crate root (lib.rs).
            let to = if tops.contains(&seg) { seg.clone() } else { "lib".to_string() };
            if allowed(&from, &to) != Some(true) {
                let may =
                    LAYERS.iter().find(|(n, _)| *n == from).map(|(_, m)| m.join(", ")).unwrap_or_default();
                offences.push(format!(
                    "src/{}:{line}: `{from}` imports crate::{seg} (layer `{to}`); `{from}` may import only: {may}",
                    rel.display()
                ));
            }
        }
    }
    assert!(offences.is_empty(), "{} upward or sideways imports:\n{}", offences.len(), offences.join("\n"));
}

#[test]
fn the_layer_table_has_no_cycle() {
    // Edges (`*`) import from everything and nothing imports from them, so they cannot close a cycle.
    let graph: BTreeMap<&str, Vec<&str>> =
        LAYERS.iter().map(|(n, may)| (*n, may.iter().copied().filter(|m| *m != "*").collect())).collect();
    for (name, may) in &graph {
        for m in may {
            assert!(graph.contains_key(m), "`{name}` names `{m}`, which is not a layer");
        }
    }
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(n) {
            return;
        }
        assert!(!stack.contains(&n), "the layer table has a cycle: {} -> {n}", stack.join(" -> "));
        stack.push(n);
        for m in &g[n] {
            visit(m, g, stack, done);
        }
        stack.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut vec![], &mut done);
    }
    for (name, may) in LAYERS {
        if may.contains(&"*") {
            assert!(
                LAYERS.iter().all(|(_, m)| m.contains(&"*") || !m.contains(name)),
                "`{name}` may import anything, so nothing below may import it"
            );
        }
    }
}

#[test]
fn the_scanner_reads_paths_as_the_compiler_does() {
    let m = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let src = r##"
//! [`crate::nope`] in a doc comment is no import
use crate::{a, b::{c, d}, e as f};
use super::sibling;
fn f() { let s = "crate::in_string"; let r = r#"crate::raw"#; let ch = '{'; crate::g::h(); }
fn lt<'a>(x: &'a str) -> &'a str { super::super::up::it(x) }
#[cfg(test)]
mod tests { use super::*; fn t() { super::super::super::top(); } }
macro_rules! m { () => { $crate::skip }; }
pub(crate) fn v() {}
"##;
    let got = references(src, &m(&["t", "mod_"]));
    let want: Vec<(String, usize)> = [("a", 3), ("b", 3), ("e", 3), ("g", 5), ("up", 6), ("top", 8)]
        .iter()
        .map(|(s, l)| (s.to_string(), *l))
        .collect();
    assert_eq!(got, want);
    assert_eq!(module_path(Path::new("triage/mod.rs")), m(&["triage"]));
    assert_eq!(module_path(Path::new("triage/alert.rs")), m(&["triage", "alert"]));
    assert_eq!(module_path(Path::new("lib.rs")), Vec::<String>::new());
    assert_eq!(module_path(Path::new("config.rs")), m(&["config"]));
    // In a top-level file `super::` is the crate root.
    assert_eq!(references("use super::db::Conn;", &m(&["config"])), vec![("db".to_string(), 1)]);
}
