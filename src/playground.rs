//! The GraphiQL playground: `GET /playground` and its scripts and styles under `/playground/assets/<name>`,
//! all compiled into the binary, so the page works in an air-gapped network and runs no code but ours
//! and the pinned builds vendored under `playground/vendor/` (versions and origins in its README).
//!
//! Every response carries a Content-Security-Policy ([`CONTENT_SECURITY_POLICY`]; the page's adds a
//! style nonce, see [`page_policy`]) and `X-Content-Type-Options: nosniff`. Asset names never change
//! meaning: the vendored ones carry their package version, ours a hash of their content (the page is
//! rewritten once to name them), so assets are cached as `immutable` with an `ETag`, and the page, which
//! names them and holds a fresh nonce, is never cached.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The page as written; [`routes`] serves it with our own assets' names rewritten and a fresh nonce.
pub const INDEX_HTML: &str = include_str!("../playground/index.html");

/// Where the assets are served.
pub const ASSETS_PATH: &str = "/playground/assets/";

/// Stands in `index.html` for the per-response nonce (see [`page_policy`]).
pub const NONCE_PLACEHOLDER: &str = "PARAPET-CSP-NONCE";

/// The policy of the assets: our origin only, for everything. CSP Level 3 makes `'self'` cover `ws:` and
/// `wss:` to the page's own host, so `connect-src 'self'` lets the page reach `/graphql/ws` and nothing
/// else (Chromium and Firefox do; a browser that predates that rule refuses the subscriptions socket,
/// never anything more). GraphiQL needs neither `'unsafe-inline'` nor `'unsafe-eval'`: CodeMirror and
/// React set styles through the CSSOM (`element.style`), which CSP does not govern, and its fonts and
/// icons are `data:` URLs inside its stylesheet.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page's policy: [`CONTENT_SECURITY_POLICY`], plus one nonce for `<style>` elements. GraphiQL's
/// dialogs (settings, short keys) insert a `<style>` element to lock the body's scrolling while open
/// (react-remove-scroll-bar); its text holds measured pixel widths, so no fixed hash can allow it, and
/// without the nonce each dialog logs a CSP violation. The library stamps the nonce found in the global
/// `__webpack_nonce__` on that element; `playground.js` sets it from its own `<script nonce>`. A nonce
/// is new for each response, so injected markup could not guess it; `'unsafe-inline'` is never needed.
pub fn page_policy(nonce: &str) -> String {
    CONTENT_SECURITY_POLICY.replacen("style-src 'self'", &format!("style-src 'self' 'nonce-{nonce}'"), 1)
}

/// Assets are named by version or content hash, so a year of caching never serves a stale one.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One file the page loads: the name the page uses for it, its type and its bytes.
struct Source {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Ours, edited in place: served under a name carrying its content hash instead.
    hashed: bool,
}

/// Everything `/playground` loads. A vendored name carries the exact package version, so updating one
/// means a new name here and in `index.html` (a test checks that every name the page uses is served).
const SOURCES: &[Source] = &[
    Source {
        name: "react-18.3.1.production.min.js",
        content_type: JS,
        body: include_bytes!("../playground/vendor/react-18.3.1/react.production.min.js"),
        hashed: false,
    },
    Source {
        name: "react-dom-18.3.1.production.min.js",
        content_type: JS,
        body: include_bytes!("../playground/vendor/react-dom-18.3.1/react-dom.production.min.js"),
        hashed: false,
    },
    Source {
        name: "graphql-ws-5.16.2.min.js",
        content_type: JS,
        body: include_bytes!("../playground/vendor/graphql-ws-5.16.2/graphql-ws.min.js"),
        hashed: false,
    },
    Source {
        name: "graphiql-3.9.0.min.js",
        content_type: JS,
        body: include_bytes!("../playground/vendor/graphiql-3.9.0/graphiql.min.js"),
        hashed: false,
    },
    Source {
        name: "graphiql-3.9.0.min.css",
        content_type: CSS,
        body: include_bytes!("../playground/vendor/graphiql-3.9.0/graphiql.min.css"),
        hashed: false,
    },
    Source {
        name: "playground.js",
        content_type: JS,
        body: include_bytes!("../playground/playground.js"),
        hashed: true,
    },
    Source {
        name: "playground.css",
        content_type: CSS,
        body: include_bytes!("../playground/playground.css"),
        hashed: true,
    },
];

/// An asset as served.
struct Asset {
    /// The name under [`ASSETS_PATH`].
    name: String,
    content_type: &'static str,
    body: &'static [u8],
    etag: HeaderValue,
}

/// The page and its assets, named and tagged once.
struct Catalog {
    page: String,
    assets: Vec<Asset>,
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let mut page = INDEX_HTML.to_string();
    let assets = SOURCES
        .iter()
        .map(|s| {
            let digest = hex::encode(Sha256::digest(s.body));
            let name = if s.hashed {
                let served = hashed_name(s.name, digest.get(..16).unwrap_or(&digest));
                // Quotes included, so only the attribute value that names this file is rewritten.
                page = page
                    .replace(&format!("\"{ASSETS_PATH}{}\"", s.name), &format!("\"{ASSETS_PATH}{served}\""));
                served
            } else {
                s.name.to_string()
            };
            Asset { name, content_type: s.content_type, body: s.body, etag: etag_of(&digest) }
        })
        .collect();
    Catalog { page, assets }
});

/// `playground.js` with `hash` before its extension: `playground.<hash>.js`.
fn hashed_name(name: &str, hash: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

/// A strong `ETag` from a content digest (its first 128 bits are plenty to tell versions apart).
fn etag_of(hex_digest: &str) -> HeaderValue {
    let short = hex_digest.get(..32).unwrap_or(hex_digest);
    // Hex digits in quotes are always a valid header value; the fallback is never taken.
    HeaderValue::from_str(&format!("\"{short}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The page as served, before its nonce is filled in: our own assets carry their hashed names.
pub fn page_html() -> &'static str {
    &CATALOG.page
}

/// The names served under [`ASSETS_PATH`].
pub fn asset_names() -> Vec<&'static str> {
    CATALOG.assets.iter().map(|a| a.name.as_str()).collect()
}

/// The playground's routes, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/playground", get(page)).route("/playground/assets/{name}", get(asset))
}

async fn page() -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let html = CATALOG.page.replace(NONCE_PLACEHOLDER, &nonce);
    let mut resp = axum::response::Html(html).into_response();
    let h = resp.headers_mut();
    // Each response has its own nonce, and the page names the current assets: never reuse a copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    protect(h);
    // Hex digits always make a valid header value; were it refused, the stricter policy stays.
    if let Ok(policy) = HeaderValue::from_str(&page_policy(&nonce)) {
        h.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    resp
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>, headers: HeaderMap) -> Response {
    match CATALOG.assets.iter().find(|a| a.name == name) {
        Some(a) => respond(&headers, a),
        None => {
            let mut resp = (StatusCode::NOT_FOUND, "no such playground asset\n").into_response();
            protect(resp.headers_mut());
            resp
        }
    }
}

/// 200 with the asset, or 304 when the client already holds it.
fn respond(request: &HeaderMap, a: &Asset) -> Response {
    let mut resp = if matches_etag(request, &a.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.body.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ETAG, a.etag.clone());
    protect(h);
    resp
}

fn protect(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this header) or is `*`.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(ours) = etag.to_str() else { return false };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_assets_are_renamed_in_the_page_and_every_name_it_uses_is_served() {
        let page = page_html();
        assert!(!page.contains("/playground/assets/playground.js\""), "{page}");
        assert!(!page.contains("/playground/assets/playground.css\""), "{page}");
        let names = asset_names();
        // Attribute values only (they open with a quote), not the page's comment.
        let quoted = format!("\"{ASSETS_PATH}");
        let used: Vec<&str> =
            page.split(quoted.as_str()).skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert_eq!(used.len(), SOURCES.len(), "{used:?}");
        for n in used {
            assert!(names.contains(&n), "{n} is not served; served: {names:?}");
        }
    }

    #[test]
    fn the_page_policy_adds_only_a_style_nonce() {
        let p = page_policy("00ff");
        assert_eq!(p.replace(" 'nonce-00ff'", ""), CONTENT_SECURITY_POLICY);
        assert!(p.contains("style-src 'self' 'nonce-00ff';"), "{p}");
        // Only the attribute holds the placeholder, so only it receives the nonce.
        assert_eq!(page_html().matches(NONCE_PLACEHOLDER).count(), 1);
        assert!(page_html().contains(&format!("nonce=\"{NONCE_PLACEHOLDER}\"")));
    }

    #[test]
    fn hashed_names_keep_the_extension() {
        assert_eq!(hashed_name("playground.js", "abc"), "playground.abc.js");
        assert_eq!(hashed_name("x", "abc"), "x.abc");
    }

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            h
        };
        assert!(matches_etag(&with("\"abc\""), &etag));
        assert!(matches_etag(&with("W/\"abc\""), &etag));
        assert!(matches_etag(&with("\"x\", \"abc\""), &etag));
        assert!(matches_etag(&with("*"), &etag));
        assert!(!matches_etag(&with("\"abd\""), &etag));
        assert!(!matches_etag(&HeaderMap::new(), &etag));
    }
}
