//! A private Dovecot (IMAP and ManageSieve) for tests of the mail server integration: its own directory
//! under /tmp, free loopback ports, mailboxes from a passwd-file and a master user, started as a child
//! process and stopped (by its PID) when dropped, so several test processes can each run their own.

use parapet::mailserver::managesieve::Client;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The master user: logs in to any mailbox, as `mailbox*parapet` over IMAP or with the mailbox as
/// SASL authorisation id.
pub const MASTER_USER: &str = "parapet";
/// The master user's password.
pub const MASTER_PASSWORD: &str = "mastersecret";
/// Every mailbox's own password.
pub const USER_PASSWORD: &str = "secret";

const DOVECOT: &str = "/usr/sbin/dovecot";
/// Installed by dovecot-managesieved; without it the `sieve` listener cannot serve.
const MANAGESIEVE: &str = "/usr/lib/dovecot/managesieve";
/// The configuration: `@DIR@` and the two ports are filled in.
const CONFIG: &str = r#"protocols = imap sieve
listen = 127.0.0.1
base_dir = @DIR@/run
state_dir = @DIR@/state
ssl = no
first_valid_uid = 100
disable_plaintext_auth = no
auth_mechanisms = plain
# Tests log in with wrong passwords on purpose: answer at once. (The next login from 127.0.0.1 still waits
# out the fixed anvil penalty, 2 s and doubling per failure, up to 15 s.)
auth_failure_delay = 0
log_path = @DIR@/dovecot.log
mail_location = maildir:@DIR@/mail/%u
auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u @DIR@/master-users
  master = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u @DIR@/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=@DIR@/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = 14143
  }
}
service managesieve-login {
  inet_listener sieve {
    address = 127.0.0.1
    port = 14190
  }
}
namespace inbox {
  inbox = yes
  mailbox Junk {
    special_use = \Junk
    auto = create
  }
  mailbox Trash {
    special_use = \Trash
    auto = create
  }
  mailbox "Recoverable Items" {
    auto = create
  }
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
protocol imap {
  mail_plugins = $mail_plugins
}
"#;
/// How long an IMAP or ManageSieve exchange of the harness may take.
const TIMEOUT: Duration = Duration::from_secs(10);

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// A running Dovecot of this test process. It is stopped when dropped, and also when the thread that
/// started it ends, so it belongs to one test (no statics shared between tests).
pub struct Dovecot {
    /// Its IMAP port on 127.0.0.1 (no TLS).
    pub imap_port: u16,
    /// Its ManageSieve port on 127.0.0.1 (no TLS).
    pub sieve_port: u16,
    /// Its directory: configuration, passwd-files, mail, logs.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Dovecot {
    /// Starts one on free loopback ports with these mailboxes (addresses like `bob@acme.test`, each with
    /// [`USER_PASSWORD`]). `None`, after saying why, when Dovecot cannot run here (not installed, not
    /// root): the caller returns early. Panics with Dovecot's log when it is installed but fails.
    pub async fn start(what: &str, users: &[&str]) -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() || !Path::new(MANAGESIEVE).exists() {
            println!(
                "SKIPPED {what}: dovecot is not installed \
                 (apt-get install dovecot-imapd dovecot-managesieved dovecot-sieve)"
            );
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIPPED {what}: dovecot needs root here (it switches to its own users)");
            return None;
        }
        let Some((uid, gid)) = dovecot_ids() else {
            println!("SKIPPED {what}: there is no `dovecot` system user (is dovecot-core installed?)");
            return None;
        };
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/parapet-dovecot-{}-{n}", std::process::id()));
        // A directory of that name can only be left over from an earlier process that had our PID.
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the Dovecot directory");
        }
        set_mode(&dir, 0o755);
        std::os::unix::fs::chown(dir.join("mail"), Some(uid), Some(gid)).expect("chown mail/ to dovecot");
        let mut list = String::new();
        for u in users {
            list.push_str(&format!("{u}:{{PLAIN}}{USER_PASSWORD}\n"));
        }
        std::fs::write(dir.join("users"), list).expect("write users");
        std::fs::write(dir.join("master-users"), format!("{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n"))
            .expect("write master-users");
        let mut dc = Dovecot { imap_port: 0, sieve_port: 0, dir, child: None };
        // A port found free can be taken by another process before Dovecot binds it: try new ones then.
        for attempt in 1..=5 {
            (dc.imap_port, dc.sieve_port) = free_ports();
            let config = CONFIG
                .replace("@DIR@", &dc.dir.to_string_lossy())
                .replace("port = 14143", &format!("port = {}", dc.imap_port))
                .replace("port = 14190", &format!("port = {}", dc.sieve_port));
            std::fs::write(dc.config(), config).expect("write dovecot.conf");
            match dc.launch().await {
                Ok(()) => return Some(dc),
                Err(log) if attempt < 5 && log.contains("Address already in use") => continue,
                Err(log) => panic!("Dovecot did not start in {}:\n{log}", dc.dir.display()),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    fn config(&self) -> PathBuf {
        self.dir.join("dovecot.conf")
    }

    /// Spawns the master process and waits until both services greet; on failure, stops what was
    /// spawned and returns everything Dovecot wrote.
    async fn launch(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.join("stdout")).expect("create stdout");
        let err = std::fs::File::create(self.dir.join("stderr")).expect("create stderr");
        let mut cmd = Command::new(DOVECOT);
        cmd.arg("-c").arg(self.config()).arg("-F").stdin(Stdio::null()).stdout(out).stderr(err);
        // A test process killed outright runs no Drop: its Dovecot must not live on holding ports. (The
        // signal comes when the *thread* that spawned it ends: keep an instance within its test.)
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn dovecot"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if both_greet(self.imap_port, self.sieve_port).await {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                return Err(format!("exit: {exited:?}\n{}", self.everything_logged()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Adds a mailbox (with [`USER_PASSWORD`]); Dovecot re-reads the passwd-file when it changes.
    pub fn add_user(&self, user: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("users"))
            .expect("open the users passwd-file");
        writeln!(f, "{user}:{{PLAIN}}{USER_PASSWORD}").expect("append to the users passwd-file");
    }

    /// Stops it (SIGTERM to its PID, SIGKILL if it lingers), waits for it, and until its ports are free.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SIGTERM lets the master end its own children (login, auth, imap) and close the listeners.
            // SAFETY: kill has no memory effects; the PID is our child's, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let deadline = Instant::now() + TIMEOUT;
        while [self.imap_port, self.sieve_port].iter().any(|p| listening(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again, with the same directory, mail and ports; waits until IMAP and ManageSieve answer.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch().await {
            panic!("Dovecot did not restart in {}:\n{log}", self.dir.display());
        }
    }

    async fn imap(&self, user: &str) -> async_imap::Session<TcpStream> {
        let login = async {
            let tcp = TcpStream::connect(("127.0.0.1", self.imap_port)).await.expect("connect to IMAP");
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.expect("IMAP greeting").expect("an IMAP greeting");
            client
                .login(format!("{user}*{MASTER_USER}"), MASTER_PASSWORD)
                .await
                .unwrap_or_else(|(e, _)| panic!("IMAP master login to {user}: {e}\n{}", self.log()))
        };
        tokio::time::timeout(TIMEOUT, login).await.expect("IMAP login within 10 s")
    }

    /// Appends a small message to `folder` of `user` (created first if missing). `message_id` comes
    /// with its angle brackets: `<abc@x.test>`.
    pub async fn append(&self, user: &str, folder: &str, message_id: &str, subject: &str, from: &str) {
        let message = format!(
            "Message-ID: {message_id}\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\nFrom: {from}\r\n\
             To: {user}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nA test message.\r\n"
        );
        let mut session = self.imap(user).await;
        let work = async {
            if !list(&mut session).await.iter().any(|f| f == folder) {
                session.create(folder).await.unwrap_or_else(|e| panic!("CREATE {folder}: {e}"));
            }
            session
                .append(folder, None, None, message)
                .await
                .unwrap_or_else(|e| panic!("APPEND to {folder}: {e}"));
            let _ = session.logout().await;
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("APPEND within 10 s");
    }

    /// The `Message-ID` of every message in `folder` of `user` not flagged `\Deleted`, sorted.
    pub async fn message_ids(&self, user: &str, folder: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let mut session = self.imap(user).await;
        let work = async {
            let mailbox = session.examine(folder).await.unwrap_or_else(|e| panic!("EXAMINE {folder}: {e}"));
            let mut ids = Vec::new();
            if mailbox.exists > 0 {
                let fetches: Vec<_> = session
                    .fetch("1:*", "(FLAGS BODY.PEEK[HEADER])")
                    .await
                    .unwrap_or_else(|e| panic!("FETCH in {folder}: {e}"))
                    .try_collect()
                    .await
                    .unwrap_or_else(|e| panic!("FETCH in {folder}: {e}"));
                for f in &fetches {
                    if f.flags().any(|fl| fl == async_imap::types::Flag::Deleted) {
                        continue;
                    }
                    if let Some(id) = f.header().and_then(message_id) {
                        ids.push(id);
                    }
                }
            }
            let _ = session.logout().await;
            ids.sort();
            ids
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("FETCH within 10 s")
    }

    /// Moves the messages with this `Message-ID` (angle brackets included) from `from` to `to` of `user`
    /// (`to` created first if missing), as another client would; panics when there is none.
    pub async fn move_message(&self, user: &str, from: &str, message_id: &str, to: &str) {
        let mut session = self.imap(user).await;
        let work = async {
            if !list(&mut session).await.iter().any(|f| f == to) {
                session.create(to).await.unwrap_or_else(|e| panic!("CREATE {to}: {e}"));
            }
            session.select(from).await.unwrap_or_else(|e| panic!("SELECT {from}: {e}"));
            let quoted = format!("\"{}\"", message_id.replace('\\', "\\\\").replace('"', "\\\""));
            let uids = session
                .uid_search(format!("HEADER Message-ID {quoted}"))
                .await
                .unwrap_or_else(|e| panic!("UID SEARCH in {from}: {e}"));
            assert!(!uids.is_empty(), "no message {message_id} in {from} of {user}");
            let set: Vec<String> = uids.iter().map(u32::to_string).collect();
            session.uid_mv(set.join(","), to).await.unwrap_or_else(|e| panic!("UID MOVE to {to}: {e}"));
            let _ = session.logout().await;
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("MOVE within 10 s")
    }

    /// Every folder of `user`, sorted.
    pub async fn folders(&self, user: &str) -> Vec<String> {
        let mut session = self.imap(user).await;
        let work = async {
            let mut names = list(&mut session).await;
            let _ = session.logout().await;
            names.sort();
            names
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("LIST within 10 s")
    }

    async fn sieve(&self, user: &str) -> Client<TcpStream> {
        let login = async {
            let tcp =
                TcpStream::connect(("127.0.0.1", self.sieve_port)).await.expect("connect to ManageSieve");
            let (mut client, _) = Client::greet(tcp).await.expect("ManageSieve greeting");
            client
                .authenticate_plain(user, MASTER_USER, MASTER_PASSWORD)
                .await
                .unwrap_or_else(|e| panic!("ManageSieve master login to {user}: {e}\n{}", self.log()));
            client
        };
        tokio::time::timeout(TIMEOUT, login).await.expect("ManageSieve login within 10 s")
    }

    /// Stores a Sieve script for `user` over ManageSieve, and makes it the active one if asked.
    pub async fn put_script(&self, user: &str, name: &str, text: &str, activate: bool) {
        let mut client = self.sieve(user).await;
        let work = async {
            client.put_script(name, text).await.unwrap_or_else(|e| panic!("PUTSCRIPT {name}: {e}"));
            if activate {
                client.set_active(name).await.unwrap_or_else(|e| panic!("SETACTIVE {name}: {e}"));
            }
            let _ = client.logout().await;
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("PUTSCRIPT within 10 s")
    }

    /// The name and text of `user`'s active Sieve script, if any.
    pub async fn active_script(&self, user: &str) -> Option<(String, String)> {
        let mut client = self.sieve(user).await;
        let work = async {
            let scripts = client.list_scripts().await.expect("LISTSCRIPTS");
            let active = match scripts.into_iter().find(|(_, active)| *active) {
                Some((name, _)) => {
                    let text =
                        client.get_script(&name).await.unwrap_or_else(|e| panic!("GETSCRIPT {name}: {e}"));
                    Some((name, text))
                }
                None => None,
            };
            let _ = client.logout().await;
            active
        };
        tokio::time::timeout(TIMEOUT, work).await.expect("LISTSCRIPTS within 10 s")
    }

    /// What Dovecot has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// The log and what the master wrote before its log was set up (configuration errors).
    fn everything_logged(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("--- stderr\n{}--- stdout\n{}--- dovecot.log\n{}", read("stderr"), read("stdout"), self.log())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `dovecot` system user's uid and gid.
fn dovecot_ids() -> Option<(u32, u32)> {
    // SAFETY: getpwnam_r writes only into the buffers given, which outlive the call; the re-entrant
    // form because tests run on several threads.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(c"dovecot".as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
        (rc == 0 && !found.is_null()).then_some((pw.pw_uid, pw.pw_gid))
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Two distinct ports nothing listens on now (both held until both are found).
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (a.local_addr().expect("port").port(), b.local_addr().expect("port").port())
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Whether IMAP on `port` sends its greeting, and ManageSieve on `sieve_port` its capabilities and OK,
/// each within a second.
async fn both_greet(imap_port: u16, sieve_port: u16) -> bool {
    let imap = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", imap_port)).await.ok()?;
        let mut got = Vec::new();
        let mut chunk = [0u8; 512];
        while !got.contains(&b'\n') {
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        got.starts_with(b"* OK").then_some(())
    };
    let sieve = async {
        let tcp = TcpStream::connect(("127.0.0.1", sieve_port)).await.ok()?;
        Client::greet(tcp).await.ok().map(drop)
    };
    within_a_second(imap).await && within_a_second(sieve).await
}

async fn within_a_second(f: impl std::future::Future<Output = Option<()>>) -> bool {
    tokio::time::timeout(Duration::from_secs(1), f).await.ok().flatten().is_some()
}

async fn list(session: &mut async_imap::Session<TcpStream>) -> Vec<String> {
    use futures::TryStreamExt;
    let names: Vec<_> =
        session.list(Some(""), Some("*")).await.expect("LIST").try_collect().await.expect("LIST answers");
    names.iter().map(|n| n.name().to_string()).collect()
}

/// The value of the `Message-ID` field of a header, unfolded.
fn message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_string();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next.trim());
        }
        return Some(value.trim().to_string());
    }
    None
}
