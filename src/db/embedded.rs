//! The embedded PostgreSQL launcher: with no `DATABASE_URL`, run a private cluster from the machine's
//! PostgreSQL binaries under the data dir, on a Unix socket only.
//!
//! Layout under `<data dir>/pg`: `data/` (the cluster), `run/` (the socket directory) and
//! `postgres.log`. The cluster listens on no TCP address (`listen_addresses = ''`), so it never clashes
//! with another PostgreSQL on the machine. A second start reuses the data; a stale `postmaster.pid` (left by
//! a crash, its PID now reused by another process) is removed; a cluster already running on the folder is
//! adopted rather than started twice.
//!
//! `initdb` refuses to run as root, so when Parapet runs as root the cluster runs as the `postgres` system
//! user: the `pg` folder is given to that user and every parent folder must let it pass (`x` bit).
//! [`EmbeddedPg::start`] fails, saying which folder blocks, when that user cannot reach the data dir;
//! [`EmbeddedPg::start_or_relocate`] (the default data dir, the tests' cluster) keeps the cluster under
//! [`fallback_root`] instead, in a folder named after the data dir, and finds it there again next time.
//! A Unix socket path must stay under 108 bytes; when `<data dir>/pg/run` is too deep, the socket goes to a
//! short folder under `/tmp` instead (logged).

use anyhow::{anyhow, bail, Context as _};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The longest socket path the kernel accepts (`sun_path` is 108 bytes with the closing NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;

/// Where clusters go that the `postgres` user cannot keep under their data dir, unless
/// [`FALLBACK_ROOT_VAR`] names another folder.
pub const DEFAULT_FALLBACK_ROOT: &str = "/var/lib/parapet";
/// The environment variable that overrides [`DEFAULT_FALLBACK_ROOT`].
pub const FALLBACK_ROOT_VAR: &str = "PARAPET_FALLBACK_DATA_ROOT";
/// Longest part of a relocated cluster's folder name taken from the data dir's path: short enough that
/// `<fallback>/<name>/run/.s.PGSQL.5432` stays within a socket path under `/var/lib/parapet`.
const MAX_RELOCATED_STEM: usize = 40;

/// How the cluster is tuned.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Trade durability for speed (`fsync = off` and friends): for throwaway test clusters only.
    pub fast: bool,
}

/// A running private PostgreSQL cluster.
#[derive(Debug)]
pub struct EmbeddedPg {
    root: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    started_here: bool,
    stop_when_done: bool,
}

/// The unprivileged user the cluster runs as when Parapet runs as root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl EmbeddedPg {
    /// Starts (or adopts) the cluster under `<data_dir>/pg`, creating it on first use. Blocking: call it
    /// from `spawn_blocking` in async code. Run as root, it fails when the `postgres` user cannot reach
    /// the data dir, naming the folder in the way.
    pub fn start(data_dir: &Path, options: &Options) -> anyhow::Result<EmbeddedPg> {
        Self::launch(data_dir, options, None)
    }

    /// [`EmbeddedPg::start`], except that when run as root and the `postgres` user cannot reach the data
    /// dir (a clone inside `/root`, mode 0700), the cluster lives in a folder of its own under `fallback`
    /// (see [`relocated_dir`]), which later starts find and reuse; an info line names both folders.
    /// A cluster already under `<data_dir>/pg` is never left behind for a new one: that still fails.
    pub fn start_or_relocate(
        data_dir: &Path,
        options: &Options,
        fallback: &Path,
    ) -> anyhow::Result<EmbeddedPg> {
        Self::launch(data_dir, options, Some(fallback))
    }

    fn launch(data_dir: &Path, options: &Options, fallback: Option<&Path>) -> anyhow::Result<EmbeddedPg> {
        crate::domain::data_dir::create_data_dir(data_dir)?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("cannot resolve the data dir {}", data_dir.display()))?;
        let run_as = run_as_user()?;
        let root = match (&run_as, fallback) {
            (Some(user), Some(fallback)) => choose_root(&data_dir, user, fallback)?,
            (Some(user), None) => {
                check_reachable(&data_dir, user)?;
                data_dir.join("pg")
            }
            (None, _) => data_dir.join("pg"),
        };
        let pgdata = root.join("data");
        for dir in [&root, &pgdata] {
            make_private_dir(dir, run_as.as_ref())?;
        }
        // One launcher at a time per folder (parallel test processes share one cluster).
        let lock = File::create(root.join(".launcher.lock"))
            .with_context(|| format!("cannot create a lock file in {}", root.display()))?;
        lock.lock().with_context(|| format!("cannot lock {}", root.display()))?;

        let existing_major = read_major(&pgdata);
        let (bin_dir, major) = find_binaries(existing_major)?;
        if let (Some(user), true) = (&run_as, existing_major.is_some()) {
            give_to(&pgdata, user)?;
        }
        let socket_dir = choose_socket_dir(&root, run_as.as_ref())?;
        let mut pg = EmbeddedPg {
            root,
            pgdata,
            socket_dir,
            bin_dir,
            run_as,
            started_here: false,
            stop_when_done: false,
        };

        if existing_major.is_none() {
            pg.initdb(major)?;
        }
        pg.write_settings(options)?;
        match pg.running_pid() {
            Some(pid) => {
                tracing::info!(pid, dir = %pg.pgdata.display(), "reusing the embedded PostgreSQL already running");
                if let Some(dir) = pg.pid_file_line(5) {
                    pg.socket_dir = PathBuf::from(dir);
                }
            }
            None => {
                pg.clear_stale_files();
                pg.pg_ctl_start()?;
                pg.started_here = true;
                pg.stop_when_done = true;
                tracing::info!(
                    version = major,
                    dir = %pg.pgdata.display(),
                    socket = %pg.socket_dir.display(),
                    "embedded PostgreSQL started"
                );
            }
        }
        drop(lock);
        Ok(pg)
    }

    /// Connection URL of database `db` as the `postgres` superuser, over the Unix socket
    /// (`postgres://postgres@%2Fpath%2Fto%2Frun/db`: the socket folder is the percent-encoded host).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}/{db}", percent_encode(&self.socket_dir.to_string_lossy()))
    }

    /// The socket folder.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's data folder.
    pub fn data_dir(&self) -> &Path {
        &self.pgdata
    }

    /// Whether this launcher started the server (rather than adopting a running one).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Creates database `db` if it does not exist and returns its URL.
    pub async fn ensure_database(&self, db: &str) -> anyhow::Result<String> {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        if db.is_empty() || !db.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            bail!("database name {db:?} must be lowercase letters, digits and _");
        }
        let mut conn = AsyncPgConnection::establish(&self.url("postgres"))
            .await
            .context("cannot connect to the embedded PostgreSQL")?;
        if database_exists(&mut conn, db).await? {
            return Ok(self.url(db));
        }
        if let Err(e) = conn.batch_execute(&format!("CREATE DATABASE {db}")).await {
            // Someone else created it meanwhile: fine.
            if !database_exists(&mut conn, db).await? {
                return Err(e).context(format!("cannot create database {db}"));
            }
        }
        Ok(self.url(db))
    }

    /// Whether [`EmbeddedPg::stop`] (and dropping this value) stops the server. On by default only when
    /// this launcher started it; `serve` turns it on for an adopted server too (one left by a crash).
    pub fn stop_when_done(&mut self, yes: bool) {
        self.stop_when_done = yes;
    }

    /// Stops the server if it is to be stopped (fast shutdown: open sessions are ended).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.stop_when_done {
            return Ok(());
        }
        self.stop_when_done = false;
        if self.running_pid().is_none() {
            return Ok(());
        }
        let out = self.pg_ctl().arg("stop").args(["-m", "fast", "-w", "-t", "60"]).output()?;
        if !out.status.success() && self.running_pid().is_some() {
            bail!("pg_ctl stop failed: {}", output_text(&out));
        }
        tracing::info!(dir = %self.pgdata.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    /// Leaves the server running after this value is dropped (shared test clusters).
    pub fn leave_running(mut self) {
        self.stop_when_done = false;
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // The cluster user may not be able to enter our working directory.
        cmd.current_dir(&self.root);
        // Its own process group: a Ctrl-C in the terminal reaches Parapet, which then stops the cluster
        // after in-flight requests finish, instead of reaching PostgreSQL directly.
        cmd.process_group(0);
        for var in ["PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.run_as {
            as_user(&mut cmd, user);
        }
        cmd
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.pgdata);
        cmd
    }

    fn initdb(&self, major: u32) -> anyhow::Result<()> {
        let not_empty = fs::read_dir(&self.pgdata).map(|mut d| d.next().is_some()).unwrap_or(false);
        if not_empty {
            bail!(
                "{} holds files but no PostgreSQL cluster (no PG_VERSION); move it away or empty it",
                self.pgdata.display()
            );
        }
        tracing::info!(version = major, dir = %self.pgdata.display(), "creating the embedded PostgreSQL cluster");
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", output_text(&out));
        }
        let mut conf = OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))
            .context("cannot open postgresql.conf")?;
        writeln!(
            conf,
            "\n# Parapet's settings (rewritten at each start)\ninclude_if_exists = 'parapet.conf'"
        )?;
        Ok(())
    }

    /// Writes `parapet.conf`: socket only, in our socket folder.
    fn write_settings(&self, options: &Options) -> anyhow::Result<()> {
        let dir = self.socket_dir.to_string_lossy().replace('\'', "''");
        let mut text = format!(
            "listen_addresses = ''\nunix_socket_directories = '{dir}'\nport = {PORT}\nmax_connections = 200\n"
        );
        if options.fast {
            text.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let path = self.pgdata.join("parapet.conf");
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))?;
        }
        Ok(())
    }

    fn pid_file_line(&self, n: usize) -> Option<String> {
        let text = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        text.lines().nth(n - 1).map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
    }

    /// The PID of a PostgreSQL server running on this folder, if any. Checks that the PID in
    /// `postmaster.pid` is really a postgres process, since after a crash it may belong to anything.
    fn running_pid(&self) -> Option<u32> {
        let pid: u32 = self.pid_file_line(1)?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if !matches!(comm.trim(), "postgres" | "postmaster") {
            return None;
        }
        // Same data folder? The postmaster's command line names it after -D.
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into()).collect();
        let pgdata = self.pgdata.to_string_lossy();
        if args.iter().any(|a| a.as_str() == pgdata) {
            Some(pid)
        } else {
            None
        }
    }

    /// Removes a `postmaster.pid` and socket lock whose process is gone (PostgreSQL would refuse to start
    /// when the PID now belongs to another process).
    fn clear_stale_files(&self) {
        let pid_file = self.pgdata.join("postmaster.pid");
        if pid_file.exists() {
            tracing::warn!(path = %pid_file.display(), "removing a stale postmaster.pid (server not running)");
            let _ = fs::remove_file(&pid_file);
        }
        for name in [format!(".s.PGSQL.{PORT}.lock"), format!(".s.PGSQL.{PORT}")] {
            let _ = fs::remove_file(self.socket_dir.join(name));
        }
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let log = self.root.join("postgres.log");
        let out = self
            .pg_ctl()
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .context("cannot run pg_ctl")?;
        if !out.status.success() {
            bail!(
                "the embedded PostgreSQL did not start: {}\nlast lines of {}:\n{}",
                output_text(&out),
                log.display(),
                tail(&log, 15)
            );
        }
        Ok(())
    }
}

async fn database_exists(conn: &mut diesel_async::AsyncPgConnection, db: &str) -> anyhow::Result<bool> {
    use diesel_async::RunQueryDsl;
    let n = diesel::sql_query("SELECT 1 AS one FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(db.to_string())
        .execute(conn)
        .await?;
    Ok(n > 0)
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %format!("{e:#}"), "could not stop the embedded PostgreSQL");
        }
    }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`, and its major version. With `required` (the
/// version an existing cluster was made with) only that version fits; otherwise the newest wins.
pub fn find_binaries(required: Option<u32>) -> anyhow::Result<(PathBuf, u32)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut roots: Vec<PathBuf> = vec![PathBuf::from("/usr/lib/postgresql")];
    roots.push(PathBuf::from("/usr/local/pgsql/bin"));
    find_binaries_in(&path, &roots, required)
}

/// [`find_binaries`] over an explicit `PATH` and extra places (`/usr/lib/postgresql/<ver>/bin` style
/// roots, or bin folders themselves).
pub fn find_binaries_in(
    path: &std::ffi::OsStr,
    extra: &[PathBuf],
    required: Option<u32>,
) -> anyhow::Result<(PathBuf, u32)> {
    let mut dirs: Vec<PathBuf> = vec![];
    for dir in std::env::split_paths(path) {
        // Follow symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb, since
        // pg_ctl needs `postgres` beside it.
        if let Ok(initdb) = dir.join("initdb").canonicalize() {
            if let Some(parent) = initdb.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    for root in extra {
        if root.join("initdb").is_file() {
            dirs.push(root.clone());
        } else if let Ok(rd) = fs::read_dir(root) {
            for e in rd.flatten() {
                dirs.push(e.path().join("bin"));
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = vec![];
    for dir in dirs {
        let dir = dir.canonicalize().unwrap_or(dir);
        let complete = ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file());
        if !complete || found.iter().any(|(_, d)| *d == dir) {
            continue;
        }
        if let Some(v) = binary_major(&dir) {
            found.push((v, dir));
        }
    }
    if found.is_empty() {
        bail!(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH or under \
             /usr/lib/postgresql/<version>/bin. Install PostgreSQL (for example `apt-get install \
             postgresql`) or set DATABASE_URL to a PostgreSQL server you run yourself."
        );
    }
    found.sort();
    match required {
        Some(major) => found.into_iter().find(|(v, _)| *v == major).map(|(v, d)| (d, v)).ok_or_else(|| {
            anyhow!(
                "the embedded cluster was created by PostgreSQL {major}, whose binaries are not \
                 installed (install postgresql-{major}), or move the data dir away to start afresh"
            )
        }),
        None => found.pop().map(|(v, d)| (d, v)).ok_or_else(|| anyhow!("no PostgreSQL binaries")),
    }
}

/// Major version of the binaries in `dir` (`pg_ctl (PostgreSQL) 15.14` → 15).
fn binary_major(dir: &Path) -> Option<u32> {
    let out = Command::new(dir.join("pg_ctl")).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split(')').nth(1)?.split_whitespace().next()?;
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn read_major(pgdata: &Path) -> Option<u32> {
    fs::read_to_string(pgdata.join("PG_VERSION")).ok()?.trim().parse().ok()
}

/// When running as root, the `postgres` system user the cluster runs as.
fn run_as_user() -> anyhow::Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user("postgres").map(Some).ok_or_else(|| {
        anyhow!(
            "Parapet runs as root and initdb refuses root, but there is no `postgres` system user to run \
             the embedded PostgreSQL as. Install PostgreSQL from your distribution (it creates the user), \
             run Parapet as an ordinary user, or set DATABASE_URL."
        )
    })
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    let home = if pwd.pw_dir.is_null() {
        PathBuf::from("/")
    } else {
        // SAFETY: getpwnam_r succeeded, so pw_dir points at a NUL-terminated string inside `buf`.
        PathBuf::from(unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }.to_string_lossy().into_owned())
    };
    Some(RunAs { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid, home })
}

/// Makes `cmd` run as `user`. Every command run as the cluster user goes through here, so a reachability
/// probe has exactly the rights PostgreSQL will have (std also drops root's supplementary groups).
fn as_user(cmd: &mut Command, user: &RunAs) {
    cmd.uid(user.uid).gid(user.gid).env("HOME", &user.home).env("USER", &user.name);
}

/// Whether `user` can search `dir`, and so every folder above it. Asked of the kernel by running `test -x`
/// as that user, so ACLs, groups and mount options count as they will for PostgreSQL; only when no `test`
/// program can run does it fall back to reading each folder's mode bits.
fn can_reach(dir: &Path, user: &RunAs) -> bool {
    let mut probe = Command::new("test");
    probe
        .arg("-x")
        .arg(dir)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    as_user(&mut probe, user);
    match probe.status() {
        Ok(status) => status.success(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot run `test` as the cluster user; reading folder modes instead");
            dir.ancestors().all(|folder| can_enter(folder, user))
        }
    }
}

/// Whether `root` (a `pg` folder) holds a cluster: `data/PG_VERSION` exists.
fn has_cluster(root: &Path) -> bool {
    root.join("data").join("PG_VERSION").is_file()
}

/// The folder from [`FALLBACK_ROOT_VAR`] when set and not empty, else [`DEFAULT_FALLBACK_ROOT`].
pub fn fallback_root() -> PathBuf {
    match std::env::var_os(FALLBACK_ROOT_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_FALLBACK_ROOT),
    }
}

/// Where [`EmbeddedPg::start_or_relocate`] keeps the cluster of `data_dir` (an absolute, resolved path)
/// under `fallback`: the path made safe as one folder name (`root-parapet-.parapet`), its tail kept when
/// long, plus a hash of the whole path, so two clones never share a cluster.
pub fn relocated_dir(fallback: &Path, data_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    let hash = hex::encode(Sha256::digest(data_dir.as_os_str().as_bytes()));
    let safe: String = data_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    let tail = &safe[safe.len().saturating_sub(MAX_RELOCATED_STEM)..];
    // No hidden folder, no name that looks like an option.
    let stem = tail.trim_start_matches(['-', '.']);
    let stem = if stem.is_empty() { "data" } else { stem };
    fallback.join(format!("{stem}-{}", &hash[..12]))
}

/// Where the cluster of `data_dir` lives when Parapet runs as root and may move it: `<data_dir>/pg` when
/// the cluster user can reach it or a cluster already lives there; else (or when an earlier start already
/// moved it) [`relocated_dir`] under `fallback`, which is created (0755) when missing.
fn choose_root(data_dir: &Path, user: &RunAs, fallback: &Path) -> anyhow::Result<PathBuf> {
    let requested = data_dir.join("pg");
    if has_cluster(&requested) {
        // Starting an empty cluster elsewhere would look like data loss: say what blocks this one instead.
        check_reachable(data_dir, user).with_context(|| {
            format!(
                "{} already holds a PostgreSQL cluster, so it is not replaced by a new one elsewhere",
                requested.display()
            )
        })?;
        return Ok(requested);
    }
    let fallback = std::path::absolute(fallback)
        .with_context(|| format!("cannot resolve {FALLBACK_ROOT_VAR} {}", fallback.display()))?;
    let relocated = relocated_dir(&fallback, data_dir);
    if has_cluster(&relocated) {
        tracing::info!(
            requested = %requested.display(),
            actual = %relocated.display(),
            "reusing the embedded PostgreSQL cluster kept in {} for {} (an earlier start put it there \
             because the `{}` user could not reach the data dir)",
            relocated.display(),
            requested.display(),
            user.name,
        );
        return Ok(relocated);
    }
    if can_reach(data_dir, user) {
        return Ok(requested);
    }
    create_fallback_root(&fallback)?;
    if !can_reach(&fallback, user) {
        return Err(unreachable_error(data_dir, user)).with_context(|| {
            format!(
                "the `{}` user cannot reach {} either, where the cluster would go instead \
                 ({FALLBACK_ROOT_VAR}); set {FALLBACK_ROOT_VAR} to a folder it can reach",
                user.name,
                fallback.display(),
            )
        });
    }
    tracing::info!(
        requested = %requested.display(),
        actual = %relocated.display(),
        "the `{}` user cannot reach {}, so the embedded PostgreSQL cluster is kept in {} instead; later \
         starts reuse it",
        user.name,
        requested.display(),
        relocated.display(),
    );
    Ok(relocated)
}

/// Creates the fallback root when missing, with mode 0755 whatever the umask (the cluster user must pass
/// through it); an existing folder keeps its mode.
fn create_fallback_root(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    match fs::DirBuilder::new().recursive(true).mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} mode 0755", dir.display()))
}

/// Whether `user` may enter `dir` (search permission), judged from its mode bits.
fn can_enter(dir: &Path, user: &RunAs) -> bool {
    let Ok(m) = fs::metadata(dir) else { return false };
    let mode = m.mode();
    if m.uid() == user.uid {
        mode & 0o100 != 0
    } else if m.gid() == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Checks that the cluster user can reach `dir` and says what to change if not.
fn check_reachable(dir: &Path, user: &RunAs) -> anyhow::Result<()> {
    if can_reach(dir, user) {
        Ok(())
    } else {
        Err(unreachable_error(dir, user))
    }
}

/// Why the cluster user cannot reach `dir`: the folder in the way (found from the mode bits) and what to
/// change.
fn unreachable_error(dir: &Path, user: &RunAs) -> anyhow::Error {
    let remedies = format!(
        "set PARAPET_DATA_DIR to a folder outside it (for example /var/lib/parapet), or leave \
         PARAPET_DATA_DIR unset (the default data dir moves to {FALLBACK_ROOT_VAR}, by default \
         {DEFAULT_FALLBACK_ROOT}, by itself), or set DATABASE_URL to a PostgreSQL server you run yourself"
    );
    match dir.ancestors().find(|folder| !can_enter(folder, user)) {
        Some(folder) => {
            let mode = fs::metadata(folder).map(|m| m.mode() & 0o7777).unwrap_or(0);
            anyhow!(
                "Parapet runs as root, so the embedded PostgreSQL runs as the `{name}` user, which cannot \
                 enter {folder} (mode {mode:04o}) on the way to the data dir {dir}. Either allow it \
                 (`chmod o+x {folder}`), or {remedies}.",
                name = user.name,
                folder = folder.display(),
                dir = dir.display(),
            )
        }
        // The modes allow it, yet the kernel said no: an ACL, a group or a mount option is in the way.
        None => anyhow!(
            "Parapet runs as root, so the embedded PostgreSQL runs as the `{name}` user, which cannot reach \
             the data dir {dir} (`runuser -u {name} -- ls {dir}` shows why). Either allow it, or {remedies}.",
            name = user.name,
            dir = dir.display(),
        ),
    }
}

/// Creates `dir` with mode 0700 (if missing) and, when running as root, gives it to the cluster user.
fn make_private_dir(dir: &Path, user: Option<&RunAs>) -> anyhow::Result<()> {
    if !dir.exists() {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            // Another launcher made it meanwhile (the launcher lock lives inside it).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    if let Some(u) = user {
        let m = fs::metadata(dir)?;
        if m.uid() != u.uid {
            std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))
                .with_context(|| format!("cannot give {} to the {} user", dir.display(), u.name))?;
        }
    }
    Ok(())
}

/// Gives a whole tree to the cluster user when its top is not theirs (PostgreSQL refuses a data folder
/// owned by someone else).
fn give_to(dir: &Path, user: &RunAs) -> anyhow::Result<()> {
    let top_ok = fs::metadata(dir).map(|m| m.uid() == user.uid).unwrap_or(false);
    if top_ok {
        return Ok(());
    }
    tracing::info!(dir = %dir.display(), user = %user.name, "giving the PostgreSQL data folder to its user");
    fn walk(p: &Path, user: &RunAs) -> std::io::Result<()> {
        std::os::unix::fs::lchown(p, Some(user.uid), Some(user.gid))?;
        if fs::symlink_metadata(p)?.is_dir() {
            for e in fs::read_dir(p)? {
                walk(&e?.path(), user)?;
            }
        }
        Ok(())
    }
    walk(dir, user).with_context(|| format!("cannot give {} to the {} user", dir.display(), user.name))
}

/// `<root>/run` when the socket path fits, else a short private folder under /tmp named after `root`.
fn choose_socket_dir(root: &Path, user: Option<&RunAs>) -> anyhow::Result<PathBuf> {
    let preferred = root.join("run");
    if socket_path_len(&preferred) <= MAX_SOCKET_PATH {
        make_private_dir(&preferred, user)?;
        return Ok(preferred);
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(root.to_string_lossy().as_bytes()));
    let short = PathBuf::from(format!("/tmp/parapet-pg-{}", &hash[..12]));
    tracing::warn!(
        preferred = %preferred.display(),
        socket_dir = %short.display(),
        "the data dir is too deep for a Unix socket path (at most {MAX_SOCKET_PATH} bytes); using a short folder under /tmp"
    );
    make_private_dir(&short, user)?;
    let owner = fs::metadata(&short)?.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let expected = user.map(|u| u.uid).unwrap_or_else(|| unsafe { libc::geteuid() });
    if owner != expected {
        bail!(
            "{} exists but belongs to another user; remove it or use a shorter PARAPET_DATA_DIR",
            short.display()
        );
    }
    Ok(short)
}

fn socket_path_len(dir: &Path) -> usize {
    dir.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len()
}

/// Percent-encodes everything but unreserved characters (so `/` becomes `%2F`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        s.push('\n');
        s.push_str(stdout.trim());
    }
    s
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_says_what_to_install() {
        let err = find_binaries_in(std::ffi::OsStr::new(""), &[PathBuf::from("/nonexistent-parapet")], None)
            .expect_err("nothing to find");
        let msg = format!("{err:#}");
        assert!(msg.contains("apt-get install postgresql") && msg.contains("DATABASE_URL"), "{msg}");
    }

    #[test]
    fn relocated_dirs_are_safe_short_and_distinct() {
        let fallback = Path::new("/var/lib/parapet");
        let a = relocated_dir(fallback, Path::new("/root/parapet/.parapet"));
        assert_eq!(a, relocated_dir(fallback, Path::new("/root/parapet/.parapet")), "stable across starts");
        let name = a.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(name.starts_with("root-parapet-.parapet-"), "{name}");
        // Two clones whose paths make the same safe text still get folders of their own.
        let b = relocated_dir(fallback, Path::new("/root/parapet-.parapet"));
        assert_ne!(a, b);
        let deep = format!("/root/{}/a b/ü/.parapet", "x".repeat(200));
        let c = relocated_dir(fallback, Path::new(&deep));
        let name = c.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(name.len() <= MAX_RELOCATED_STEM + 13, "{name}");
        assert!(name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')), "{name}");
        assert!(!name.starts_with(['.', '-']), "{name}");
        assert_eq!(c.parent(), Some(fallback));
        assert!(socket_path_len(&c.join("run")) <= MAX_SOCKET_PATH);
    }

    #[test]
    fn socket_dir_is_percent_encoded_in_the_url() {
        assert_eq!(percent_encode("/a b/run"), "%2Fa%20b%2Frun");
    }
}
