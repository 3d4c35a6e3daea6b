//! The playground's page and assets over the real router, without a browser: the page names only our
//! own assets and carries its Content-Security-Policy with a fresh style nonce; every asset answers with
//! its type, an immutable cache lifetime and an `ETag`; an unknown one is 404; and every vendored
//! package has its licence and its entry in `playground/vendor/README.md`. The page in a real browser is
//! tests/playground_browser.rs.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use parapet::playground::{page_policy, ASSETS_PATH, CONTENT_SECURITY_POLICY};
use std::path::Path;
use tower::ServiceExt;

async fn get(app: &TestApp, path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    let resp = app.router.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body").to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header in {h:?}"))
}

/// The values of every `attr="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let marker = format!(" {attr}=\"");
    html.split(marker.as_str()).skip(1).filter_map(|rest| rest.split('"').next()).collect()
}

/// `html` without its `<!-- ... -->` comments.
fn without_comments(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..].find("-->").map_or("", |end| &rest[start + end + 3..]);
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_page_loads_nothing_from_another_origin_and_says_so_in_its_policy() {
    let app = TestApp::new().await;
    let (status, h, body) = get(&app, "/playground", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "cache-control"), "no-store");
    let html = String::from_utf8(body).expect("UTF-8");

    // The policy is the fixed one plus this response's style nonce, which the page hands to GraphiQL.
    let csp = header(&h, "content-security-policy");
    let nonces = attribute_values(&html, "nonce");
    assert_eq!(nonces.len(), 1, "{html}");
    let nonce = nonces[0];
    assert!(nonce.len() >= 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit()), "nonce {nonce}");
    assert_eq!(csp, page_policy(nonce));
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.split(';').any(|d| d.trim() == directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    let (_, again, _) = get(&app, "/playground", None).await;
    assert_ne!(header(&again, "content-security-policy"), csp, "a nonce must not repeat");

    // Every script, style and icon is ours; no script or style is inline; no URL names another origin.
    let code = without_comments(&html);
    for url in attribute_values(&code, "src").into_iter().chain(attribute_values(&code, "href")) {
        assert!(url.starts_with(ASSETS_PATH) || url == "data:,", "{url} is not one of our assets");
    }
    assert_eq!(code.matches("<script").count(), attribute_values(&code, "src").len(), "an inline script");
    assert!(!code.contains("<style") && !code.contains(" style="), "inline style in {code}");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg"), "{html}");
}

#[tokio::test]
async fn every_asset_the_page_names_is_served_with_its_type_and_cached_for_good() {
    let app = TestApp::new().await;
    let (_, _, body) = get(&app, "/playground", None).await;
    let html = String::from_utf8(body).expect("UTF-8");
    let code = without_comments(&html);
    let scripts = attribute_values(&code, "src");
    let styles: Vec<&str> =
        attribute_values(&code, "href").into_iter().filter(|u| u.starts_with(ASSETS_PATH)).collect();
    assert_eq!((scripts.len(), styles.len()), (5, 2), "{code}");
    let playground = Path::new(env!("CARGO_MANIFEST_DIR")).join("playground");
    let files = vendored_files();
    let assets = scripts.iter().map(|p| (p, "text/javascript")).chain(styles.iter().map(|p| (p, "text/css")));
    for (path, kind) in assets {
        let (status, h, served) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&h, "content-type"), format!("{kind}; charset=utf-8"), "{path}");
        assert_eq!(header(&h, "cache-control"), "public, max-age=31536000, immutable", "{path}");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&h, "content-security-policy"), CONTENT_SECURITY_POLICY, "{path}");
        // Our own files are served as they are in playground/; the others are the vendored files.
        let name = path.trim_start_matches(ASSETS_PATH);
        let source = match name.split('.').next() {
            Some("playground") => {
                let ext = name.rsplit('.').next().unwrap_or_default();
                vec![std::fs::read(playground.join(format!("playground.{ext}"))).expect("our own file")]
            }
            _ => files.clone(),
        };
        assert!(source.contains(&served), "{path} is none of the files in playground/");

        // A client holding it gets 304 and no body.
        let etag = header(&h, "etag").to_string();
        assert!(etag.len() > 8 && etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let (status, h304, body) = get(&app, path, Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(header(&h304, "etag"), etag);
        let (status, _, _) = get(&app, path, Some("\"something-else\"")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // Only the current names are served: not an unhashed or older name, not a path outside.
    for path in [
        "/playground/assets/playground.js",
        "/playground/assets/playground.0000000000000000.js",
        "/playground/assets/react-18.2.0.production.min.js",
        "/playground/assets/..%2F..%2FCargo.toml",
        "/playground/assets/",
        "/playground/assets/vendor/react-18.3.1/LICENSE",
    ] {
        let (status, h, _) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        if path.matches('/').count() == 3 && !path.ends_with('/') {
            assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{path}");
        }
    }
}

/// Every file under playground/vendor/<package>/.
fn vendored_files() -> Vec<Vec<u8>> {
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("playground/vendor");
    std::fs::read_dir(vendor)
        .expect("playground/vendor")
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|f| std::fs::read(f.path()).ok())
        .collect()
}

#[test]
fn every_vendored_package_has_its_licence_and_its_line_in_the_readme() {
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("playground/vendor");
    let readme = std::fs::read_to_string(vendor.join("README.md")).expect("playground/vendor/README.md");
    let mut packages = 0;
    for dir in std::fs::read_dir(&vendor).expect("playground/vendor").flatten().filter(|d| d.path().is_dir())
    {
        let name = dir.file_name().to_string_lossy().into_owned();
        let licence = std::fs::read_to_string(dir.path().join("LICENSE")).unwrap_or_default();
        assert!(licence.contains("Permission is hereby granted"), "{name}/LICENSE is missing or not MIT");
        // `graphiql-3.9.0` is named in the README as `graphiql@3.9.0`, beside its tarball's integrity.
        let (package, version) = name.rsplit_once('-').unwrap_or((&name, ""));
        let line = readme
            .lines()
            .find(|l| l.contains(&format!("{package}@{version}")))
            .unwrap_or_else(|| panic!("{package}@{version} is not in playground/vendor/README.md"));
        assert!(line.contains("sha512-"), "no integrity for {package}@{version}: {line}");
        packages += 1;
    }
    assert_eq!(packages, 4, "graphiql, react, react-dom and graphql-ws");
}
