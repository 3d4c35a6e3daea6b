//! The ManageSieve client against a real Dovecot (Pigeonhole): greeting, master login with an
//! authorisation id, scripts stored, listed, read back byte for byte, activated and deactivated, the
//! server's refusals; and the test Dovecot harness itself (mail appended, read back, kept over a restart).

mod common;

use common::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER, USER_PASSWORD};
use parapet::mailserver::managesieve::{Client, SieveError};
use std::time::Duration;
use tokio::net::TcpStream;

const BOB: &str = "bob@acme.test";

/// Every call is bounded, as the caller of the client must do.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f).await.expect("an answer within 15 s")
}

async fn connect(dc: &Dovecot) -> (Client<TcpStream>, parapet::mailserver::managesieve::Capabilities) {
    let tcp = TcpStream::connect(("127.0.0.1", dc.sieve_port)).await.expect("connect to ManageSieve");
    within(Client::greet(tcp)).await.expect("greeting")
}

/// A session logged in to `mailbox` as the master user.
async fn master(dc: &Dovecot, mailbox: &str) -> Client<TcpStream> {
    let (mut c, _) = connect(dc).await;
    within(c.authenticate_plain(mailbox, MASTER_USER, MASTER_PASSWORD)).await.expect("master login");
    c
}

#[tokio::test]
async fn the_greeting_lists_sieve_extensions_and_sasl_plain() {
    let Some(dc) = Dovecot::start("managesieve: greeting", &[BOB]).await else { return };
    let (c, caps) = connect(&dc).await;
    assert!(caps.sasl.iter().any(|m| m.eq_ignore_ascii_case("PLAIN")), "{caps:?}");
    for ext in ["fileinto", "imap4flags", "envelope"] {
        assert!(caps.sieve.iter().any(|e| e == ext), "{ext} missing: {caps:?}");
    }
    assert_eq!(caps.version.as_deref(), Some("1.0"));
    assert!(caps.implementation.as_deref().is_some_and(|i| i.contains("Dovecot")), "{caps:?}");
    assert!(!caps.starttls, "the test Dovecot has no TLS: {caps:?}");
    assert!(caps.raw.iter().any(|(k, _)| k == "SIEVE"), "{caps:?}");
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn a_master_login_acts_for_the_mailbox_named_as_authzid() {
    let Some(dc) = Dovecot::start("managesieve: master login", &[BOB, "carol@acme.test"]).await else {
        return;
    };
    let mut c = master(&dc, BOB).await;
    within(c.put_script("bob-only", "keep;\n")).await.expect("PUTSCRIPT");
    within(c.logout()).await.expect("LOGOUT");
    // The master's session for carol sees carol's scripts, not bob's.
    let mut c = master(&dc, "carol@acme.test").await;
    assert_eq!(within(c.list_scripts()).await.expect("LISTSCRIPTS"), []);
    within(c.logout()).await.expect("LOGOUT");
    // The mailbox's own password works too (no authzid).
    let (mut c, _) = connect(&dc).await;
    within(c.authenticate_plain("", BOB, USER_PASSWORD)).await.expect("user login");
    assert_eq!(within(c.list_scripts()).await.expect("LISTSCRIPTS"), [("bob-only".to_string(), false)]);
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn scripts_round_trip_and_activate() {
    let Some(dc) = Dovecot::start("managesieve: scripts", &[BOB]).await else { return };
    let mut c = master(&dc, BOB).await;
    let junk = "require [\"fileinto\", \"imap4flags\"];\r\n\
                # Règles de « Parapet » — ünïcödé ✓\r\n\
                if header :contains \"subject\" [\"[SPAM]\", \"Ärger\"] {\r\n\
                \x20   addflag \"\\\\Seen\";\r\n\
                \x20   fileinto \"Junk\";\r\n\
                \x20   stop;\r\n\
                }\r\n";
    let lf_only = "# lines end in LF only\nkeep;\n\n";
    within(c.put_script("parapet", junk)).await.expect("PUTSCRIPT parapet");
    within(c.put_script("other \"quoted\" \\ name", lf_only)).await.expect("PUTSCRIPT other");
    let mut list = within(c.list_scripts()).await.expect("LISTSCRIPTS");
    list.sort();
    assert_eq!(list, [("other \"quoted\" \\ name".to_string(), false), ("parapet".to_string(), false)]);
    assert_eq!(within(c.get_script("parapet")).await.expect("GETSCRIPT"), junk);
    assert_eq!(within(c.get_script("other \"quoted\" \\ name")).await.expect("GETSCRIPT"), lf_only);

    within(c.set_active("parapet")).await.expect("SETACTIVE");
    let list = within(c.list_scripts()).await.expect("LISTSCRIPTS");
    assert!(list.contains(&("parapet".to_string(), true)), "{list:?}");
    assert_eq!(list.iter().filter(|(_, active)| *active).count(), 1, "{list:?}");
    assert_eq!(dc.active_script(BOB).await, Some(("parapet".to_string(), junk.to_string())));

    // Replacing the active script keeps it active.
    let v2 = format!("{junk}# v2\r\n");
    within(c.put_script("parapet", &v2)).await.expect("PUTSCRIPT again");
    assert_eq!(dc.active_script(BOB).await, Some(("parapet".to_string(), v2)));

    within(c.set_active("")).await.expect("SETACTIVE \"\"");
    let list = within(c.list_scripts()).await.expect("LISTSCRIPTS");
    assert!(list.iter().all(|(_, active)| !active), "{list:?}");
    assert_eq!(dc.active_script(BOB).await, None);

    within(c.delete_script("other \"quoted\" \\ name")).await.expect("DELETESCRIPT");
    assert_eq!(within(c.list_scripts()).await.expect("LISTSCRIPTS"), [("parapet".to_string(), false)]);
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn a_missing_script_is_a_permanent_no() {
    let Some(dc) = Dovecot::start("managesieve: nonexistent", &[BOB]).await else { return };
    let mut c = master(&dc, BOB).await;
    for err in [
        within(c.get_script("nope")).await.expect_err("GETSCRIPT of nothing"),
        within(c.set_active("nope")).await.expect_err("SETACTIVE of nothing"),
        within(c.delete_script("nope")).await.expect_err("DELETESCRIPT of nothing"),
    ] {
        assert!(matches!(err, SieveError::No(_)), "{err:?}");
        assert_eq!(err.response_code(), Some("NONEXISTENT"), "{err}");
        assert!(!err.is_transient(), "{err}");
    }
    // A refusal leaves the session usable.
    assert_eq!(within(c.list_scripts()).await.expect("LISTSCRIPTS"), []);
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn a_bad_password_is_refused_without_showing_it() {
    let Some(dc) = Dovecot::start("managesieve: bad password", &[BOB]).await else { return };
    let password = "Wr0ng-master-Passw0rd";
    let (mut c, _) = connect(&dc).await;
    let err = within(c.authenticate_plain(BOB, MASTER_USER, password)).await.expect_err("bad password");
    let shown = format!("{err} / {err:?} / {c:?}");
    assert!(matches!(err, SieveError::No(_)), "{shown}");
    assert!(!err.is_transient(), "{shown}");
    assert!(!shown.contains(password), "{shown}");
    // Nor its base64 form in the command sent.
    assert!(!shown.contains("V3IwbmctbWFzdGVyLVBhc3N3MHJk"), "{shown}");
    // A refusal leaves the session in step. (Logging in again here would wait out Dovecot's penalty.)
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn an_invalid_script_is_refused_with_the_servers_reason() {
    let Some(dc) = Dovecot::start("managesieve: invalid script", &[BOB]).await else { return };
    let mut c = master(&dc, BOB).await;
    let err = within(c.put_script("broken", "if frobnicate \"x\" { fileinto \"Junk\"; }\n"))
        .await
        .expect_err("invalid Sieve");
    let SieveError::No(reason) = &err else { panic!("expected NO, got {err:?}") };
    assert!(reason.contains("frobnicate") && reason.contains("line 1"), "{reason}");
    assert!(!err.is_transient());
    // `fileinto` without its `require` is refused too.
    let err = within(c.put_script("broken", "fileinto \"Junk\";\n")).await.expect_err("missing require");
    assert!(err.to_string().contains("fileinto"), "{err}");
    assert_eq!(within(c.list_scripts()).await.expect("LISTSCRIPTS"), []);
    within(c.logout()).await.expect("LOGOUT");
}

#[tokio::test]
async fn the_harness_appends_reads_back_and_keeps_mail_over_a_restart() {
    let Some(mut dc) = Dovecot::start("managesieve: harness", &[BOB]).await else { return };
    dc.append(BOB, "INBOX", "<one@sender.test>", "First", "alice@sender.test").await;
    dc.append(BOB, "INBOX", "<two@sender.test>", "Second", "alice@sender.test").await;
    dc.append(BOB, "Junk", "<spam@sender.test>", "Buy now", "spammer@sender.test").await;
    assert_eq!(dc.message_ids(BOB, "INBOX").await, ["<one@sender.test>", "<two@sender.test>"]);
    assert_eq!(dc.message_ids(BOB, "Junk").await, ["<spam@sender.test>"]);
    assert_eq!(dc.message_ids(BOB, "Trash").await, Vec::<String>::new());
    let folders = dc.folders(BOB).await;
    for f in ["INBOX", "Junk", "Trash", "Recoverable Items"] {
        assert!(folders.iter().any(|x| x == f), "{f} missing: {folders:?}");
    }
    // A folder that does not exist yet is created on the first append.
    dc.append(BOB, "Quarantine", "<q@sender.test>", "Held", "alice@sender.test").await;
    assert!(dc.folders(BOB).await.iter().any(|f| f == "Quarantine"));

    // As another client would: MOVE, creating the destination.
    dc.append(BOB, "INBOX", "<three@sender.test>", "Third", "alice@sender.test").await;
    dc.move_message(BOB, "INBOX", "<three@sender.test>", "Archive").await;
    assert_eq!(dc.message_ids(BOB, "Archive").await, ["<three@sender.test>"]);

    dc.put_script(BOB, "parapet", "keep;\n", true).await;
    let (imap, sieve) = (dc.imap_port, dc.sieve_port);
    dc.stop();
    assert!(TcpStream::connect(("127.0.0.1", imap)).await.is_err(), "IMAP still answers after stop()");
    dc.restart().await;
    assert_eq!((dc.imap_port, dc.sieve_port), (imap, sieve));
    assert_eq!(dc.message_ids(BOB, "INBOX").await, ["<one@sender.test>", "<two@sender.test>"]);
    assert_eq!(dc.message_ids(BOB, "Junk").await, ["<spam@sender.test>"]);
    assert_eq!(dc.active_script(BOB).await, Some(("parapet".to_string(), "keep;\n".to_string())));

    // A mailbox added while running can be used at once.
    dc.add_user("dave@acme.test");
    dc.append("dave@acme.test", "INBOX", "<d@sender.test>", "Hi", "alice@sender.test").await;
    assert_eq!(dc.message_ids("dave@acme.test", "INBOX").await, ["<d@sender.test>"]);
    assert!(dc.log().contains("starting up"), "{}", dc.log());
}
