//! Settings from environment variables, each overridable by a command-line flag.
//!
//! | variable | flag | default | meaning |
//! |---|---|---|---|
//! | `DATABASE_URL` | `--database-url` | unset | PostgreSQL to use; unset runs the embedded cluster under the data dir |
//! | `PARAPET_LISTEN` | `--listen` | `127.0.0.1:8080` | address the HTTP server binds |
//! | `PARAPET_DATA_DIR` | `--data-dir` | `./.parapet` | embedded PostgreSQL data and the development JWT secret |
//! | `PARAPET_JWT_SECRET` | `--jwt-secret` | unset | HS256 secret tokens are signed with |
//! | `PARAPET_JWT_PUBLIC_KEY` | `--jwt-public-key` | unset | path to a PEM public key; tokens must then be RS256/ES256 and HS256 is refused |
//! | `PARAPET_JWT_ISSUER` | `--jwt-issuer` | `parapet` | required `iss` claim |
//! | `PARAPET_JWT_AUDIENCE` | `--jwt-audience` | `parapet` | required `aud` claim |
//! | `PARAPET_ENV` | `--env` | `development` | `development` or `production` |
//! | `RUST_LOG` | `--log` | `info` | log filter (tracing-subscriber `EnvFilter` syntax) |
//! | `PARAPET_LOG_FORMAT` | `--log-format` | `text` | `text` or `json` log lines |
//! | `PARAPET_CORS_ORIGINS` | `--cors-origins` | none | comma-separated origins browsers may call from |
//! | `PARAPET_MAX_BODY_BYTES` | `--max-body-bytes` | `4194304` (4 MiB) | largest request body; more is HTTP 413 |
//! | `PARAPET_MAX_BATCH` | `--max-batch` | `10` | most operations in one batched request |
//! | `PARAPET_MAX_DEPTH` | `--max-depth` | `16` | deepest selection a query may have |
//! | `PARAPET_MAX_COMPLEXITY` | `--max-complexity` | `50000` | highest complexity a query may have |
//! | `PARAPET_DB_POOL_SIZE` | `--db-pool-size` | `16` | most database connections held at once |
//! | `PARAPET_DB_STATEMENT_TIMEOUT_MS` | `--db-statement-timeout-ms` | `30000` | longest a statement may run |
//! | `PARAPET_DB_POOL_TIMEOUT_MS` | `--db-pool-timeout-ms` | `5000` | longest a request waits for a database connection; past it, `UNAVAILABLE` |
//! | `PARAPET_REQUEST_TIMEOUT` | `--request-timeout` | `30s` | longest a GraphQL request over HTTP may run; past it, its transaction rolls back and the client gets `UNAVAILABLE` |
//! | `PARAPET_EVENT_RETENTION_HOURS` | `--event-retention-hours` | `168` (7 days) | how long events are kept for subscribers resuming with `after` |
//! | `PARAPET_EVENT_PRUNE_INTERVAL` | `--event-prune-interval` | `1h` | how often each replica tries to prune expired events |
//! | `PARAPET_JOB_WORKERS` | `--job-workers` | `4` | background jobs each replica runs at once (1 to 64) |
//! | `PARAPET_SECRET_KEY` | `--secret-key` | dev: generated into `<data dir>/secret-key`; production: none | 32 bytes (base64 or 64 hex digits) that seal mail servers' master passwords; production refuses to start without it once a mail server is configured |
//! | `PARAPET_JOB_LEASE_SECS` | `--job-lease-secs` | `30` | how long a worker holds a job without renewing it: after a replica dies, how long until another takes its jobs over (2 to 600) |
//! | `PARAPET_MAIL_TIMEOUT_SECS` | `--mail-timeout-secs` | `30` | longest wait for a tenant's IMAP or ManageSieve server to connect or answer one command (1 to 600) |
//! | `PARAPET_MAIL_RETRY_SECS` | `--mail-retry-secs` | `60` | wait before the second try of a mailbox that could not be reached, doubled for each later try (5 tries; 0 to 3600) |
//!
//! JWT key resolution ([`Config::jwt_key`]): a public key wins (asymmetric only), else the secret; with
//! neither, development generates a random secret once and keeps it in `<data dir>/jwt-secret` (mode
//! 0600) so tokens from `parapet token` survive restarts, and production refuses to start.
//! Secrets never reach logs: [`Config`]'s `Debug` redacts them and the database URL's password.

use crate::auth::JwtVerifier;
use crate::db::PoolSettings;
use crate::domain::data_dir::create_data_dir;
use anyhow::{bail, Context as _};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the server runs: development is forgiving, production is strict.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Environment {
    /// Generated JWT secret allowed, introspection on.
    #[default]
    Development,
    /// A configured JWT secret or key is required, introspection off.
    Production,
}

/// Log line format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Limits of the GraphQL schema (`PARAPET_MAX_DEPTH`, `PARAPET_MAX_COMPLEXITY`; introspection off in
/// production).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest selection allowed.
    pub depth: usize,
    /// Highest complexity allowed.
    pub complexity: usize,
    /// Introspection on (off in production).
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self { depth: 16, complexity: 50_000, introspection: true }
    }
}

/// Every setting of the server and its commands. Read from the environment; flags override.
#[derive(clap::Args, Clone)]
pub struct Config {
    /// PostgreSQL URL; when unset, a private PostgreSQL runs under the data dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address the HTTP server listens on.
    #[arg(long, env = "PARAPET_LISTEN", global = true, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for the embedded PostgreSQL and the development JWT secret.
    #[arg(long, env = "PARAPET_DATA_DIR", global = true, default_value = "./.parapet")]
    pub data_dir: PathBuf,

    /// HS256 secret tokens are signed with.
    #[arg(long, env = "PARAPET_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Key that seals secrets at rest (mail servers' master passwords): 32 bytes as base64 or 64 hex
    /// digits.
    #[arg(long, env = "PARAPET_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Path to a PEM public key (RSA or EC); tokens must then be RS256 or ES256.
    #[arg(long, env = "PARAPET_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `iss` claim.
    #[arg(long, env = "PARAPET_JWT_ISSUER", global = true, default_value = "parapet")]
    pub jwt_issuer: String,

    /// Required `aud` claim.
    #[arg(long, env = "PARAPET_JWT_AUDIENCE", global = true, default_value = "parapet")]
    pub jwt_audience: String,

    /// `development` or `production`.
    #[arg(long = "env", env = "PARAPET_ENV", global = true, value_enum, default_value_t = Environment::Development)]
    pub environment: Environment,

    /// Log filter, e.g. `info` or `parapet=debug,tower_http=info`.
    #[arg(long, env = "RUST_LOG", global = true, default_value = "info")]
    pub log: String,

    /// `text` or `json` log lines.
    #[arg(long, env = "PARAPET_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(long, env = "PARAPET_CORS_ORIGINS", global = true, value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest request body in bytes.
    #[arg(long, env = "PARAPET_MAX_BODY_BYTES", global = true, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most operations in one batched GraphQL request.
    #[arg(long, env = "PARAPET_MAX_BATCH", global = true, default_value_t = 10)]
    pub max_batch: usize,

    /// Deepest selection a query may have.
    #[arg(long, env = "PARAPET_MAX_DEPTH", global = true, default_value_t = 16)]
    pub max_depth: usize,

    /// Highest complexity a query may have.
    #[arg(long, env = "PARAPET_MAX_COMPLEXITY", global = true, default_value_t = 50_000)]
    pub max_complexity: usize,

    /// Most database connections held at once.
    #[arg(long, env = "PARAPET_DB_POOL_SIZE", global = true, default_value_t = 16)]
    pub db_pool_size: usize,

    /// Longest a database statement may run, in milliseconds.
    #[arg(long, env = "PARAPET_DB_STATEMENT_TIMEOUT_MS", global = true, default_value_t = 30_000)]
    pub db_statement_timeout_ms: u64,

    /// Longest a request waits for a database connection, in milliseconds.
    #[arg(long, env = "PARAPET_DB_POOL_TIMEOUT_MS", global = true, default_value_t = 5_000)]
    pub db_pool_timeout_ms: u64,

    /// Longest a GraphQL request over HTTP may run, e.g. 30s, 500ms, 2m.
    #[arg(long, env = "PARAPET_REQUEST_TIMEOUT", global = true, default_value = "30s", value_parser = parse_millis)]
    pub request_timeout_ms: u64,

    /// Hours events are kept; a subscription resuming from an older cursor is told to reload.
    #[arg(long, env = "PARAPET_EVENT_RETENTION_HOURS", global = true, default_value_t = 168)]
    pub event_retention_hours: u64,

    /// How often each replica tries to prune expired events, e.g. 15m, 1h.
    #[arg(long, env = "PARAPET_EVENT_PRUNE_INTERVAL", global = true, default_value = "1h", value_parser = parse_duration)]
    pub event_prune_interval: i64,

    /// Background jobs each replica runs at once.
    #[arg(long, env = "PARAPET_JOB_WORKERS", global = true, default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub job_workers: u16,

    /// Seconds a worker holds a job without renewing it (how soon another replica takes over the jobs
    /// of one that died).
    #[arg(long, env = "PARAPET_JOB_LEASE_SECS", global = true, default_value_t = 30,
          value_parser = clap::value_parser!(u16).range(2..=600))]
    pub job_lease_secs: u16,

    /// Seconds to wait for a tenant's mail server to connect or answer one command.
    #[arg(long, env = "PARAPET_MAIL_TIMEOUT_SECS", global = true, default_value_t = 30,
          value_parser = clap::value_parser!(u16).range(1..=600))]
    pub mail_timeout_secs: u16,

    /// Seconds before the second try of a mailbox that could not be reached (doubled per later try).
    #[arg(long, env = "PARAPET_MAIL_RETRY_SECS", global = true, default_value_t = 60,
          value_parser = clap::value_parser!(u16).range(0..=3600))]
    pub mail_retry_secs: u16,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("environment", &self.environment)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("cors_origins", &self.cors_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch", &self.max_batch)
            .field("max_depth", &self.max_depth)
            .field("max_complexity", &self.max_complexity)
            .field("db_pool_size", &self.db_pool_size)
            .field("db_statement_timeout_ms", &self.db_statement_timeout_ms)
            .field("db_pool_timeout_ms", &self.db_pool_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("event_retention_hours", &self.event_retention_hours)
            .field("event_prune_interval", &self.event_prune_interval)
            .field("job_workers", &self.job_workers)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("mail_timeout_secs", &self.mail_timeout_secs)
            .field("mail_retry_secs", &self.mail_retry_secs)
            .finish()
    }
}

/// A database URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable database url>".to_string(),
    }
}

/// The key tokens are verified with.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(Vec<u8>),
    /// PEM public key (RS256 or ES256).
    PublicKey(Vec<u8>),
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKey::Secret(_) => f.write_str("JwtKey::Secret(<redacted>)"),
            JwtKey::PublicKey(_) => f.write_str("JwtKey::PublicKey(..)"),
        }
    }
}

/// Name of the generated development secret inside the data dir.
pub const DEV_SECRET_FILE: &str = "jwt-secret";
/// The development secret-key file in the data dir.
pub const DEV_KEY_FILE: &str = "secret-key";

/// Parses the environment (and nothing else) into a [`Config`]; used by tests and embedders.
#[derive(clap::Parser)]
struct EnvOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration from environment variables alone.
    pub fn from_env() -> anyhow::Result<Config> {
        use clap::Parser;
        Ok(EnvOnly::try_parse_from(["parapet"])?.config)
    }

    /// Whether this is a production deployment.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Checks settings that clap cannot (zero limits, empty secrets, bad origins).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_body_bytes == 0 {
            bail!("PARAPET_MAX_BODY_BYTES must be above 0");
        }
        if self.max_batch == 0 {
            bail!("PARAPET_MAX_BATCH must be at least 1");
        }
        if self.db_pool_size == 0 {
            bail!("PARAPET_DB_POOL_SIZE must be at least 1");
        }
        if self.db_pool_timeout_ms == 0 {
            bail!("PARAPET_DB_POOL_TIMEOUT_MS must be above 0");
        }
        if self.event_retention_hours == 0 {
            bail!("PARAPET_EVENT_RETENTION_HOURS must be at least 1");
        }
        if self.event_retention_hours > 24 * 365 * 100 {
            bail!("PARAPET_EVENT_RETENTION_HOURS is more than a century; keep it below 876000");
        }
        if let Some(s) = &self.jwt_secret {
            if s.trim().is_empty() {
                bail!("PARAPET_JWT_SECRET is set but empty");
            }
        }
        for o in self.cors_origins() {
            if axum::http::HeaderValue::from_str(&o).is_err() || !o.contains("://") {
                bail!(
                    "PARAPET_CORS_ORIGINS holds {o:?}, which is not an origin like https://soc.example.com"
                );
            }
        }
        Ok(())
    }

    /// CORS origins with blanks removed.
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins.iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect()
    }

    /// GraphQL limits (introspection off in production).
    pub fn limits(&self) -> Limits {
        Limits {
            depth: self.max_depth,
            complexity: self.max_complexity,
            introspection: !self.is_production(),
        }
    }

    /// Pool settings.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.db_pool_size,
            statement_timeout_ms: self.db_statement_timeout_ms,
            wait_timeout_ms: self.db_pool_timeout_ms,
        }
    }

    /// How events are pruned.
    pub fn retention(&self) -> crate::events::retention::RetentionSettings {
        crate::events::retention::RetentionSettings {
            window: std::time::Duration::from_secs(self.event_retention_hours.saturating_mul(3600)),
            interval: std::time::Duration::from_secs(self.event_prune_interval.unsigned_abs()),
            batch: crate::events::retention::DEFAULT_BATCH,
        }
    }

    /// The key tokens are checked with, resolved as the module doc says (may create the dev secret file).
    pub fn jwt_key(&self) -> anyhow::Result<JwtKey> {
        if let Some(path) = &self.jwt_public_key {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read PARAPET_JWT_PUBLIC_KEY file {}", path.display()))?;
            return Ok(JwtKey::PublicKey(pem));
        }
        if let Some(secret) = &self.jwt_secret {
            return Ok(JwtKey::Secret(secret.as_bytes().to_vec()));
        }
        if self.is_production() {
            bail!(
                "PARAPET_ENV=production needs PARAPET_JWT_SECRET (HS256) or PARAPET_JWT_PUBLIC_KEY \
                 (path to an RS256/ES256 PEM public key); none is set"
            );
        }
        Ok(JwtKey::Secret(dev_secret(&self.data_dir)?))
    }

    /// The key that seals secrets at rest: `PARAPET_SECRET_KEY`; in development without it, one
    /// generated once into `<data dir>/secret-key` (mode 0600); in production without it, none (the
    /// server then refuses to start if a mail server is configured, and refuses to configure one).
    pub fn secret_key(&self) -> anyhow::Result<Option<crate::domain::secret::SecretKey>> {
        use crate::domain::secret::SecretKey;
        if let Some(k) = &self.secret_key {
            return SecretKey::parse(k).map(Some).map_err(|e| anyhow::anyhow!("PARAPET_SECRET_KEY: {e}"));
        }
        if self.is_production() {
            return Ok(None);
        }
        let bytes = dev_file_secret(&self.data_dir, DEV_KEY_FILE)?;
        let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{DEV_KEY_FILE} is not text"))?;
        SecretKey::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{DEV_KEY_FILE}: {e}; delete it to make a new one"))
    }

    /// The verifier for incoming tokens.
    pub fn verifier(&self) -> anyhow::Result<JwtVerifier> {
        match self.jwt_key()? {
            JwtKey::Secret(s) => Ok(JwtVerifier::hs256(&s, &self.jwt_issuer, &self.jwt_audience)),
            JwtKey::PublicKey(pem) => JwtVerifier::public_key(&pem, &self.jwt_issuer, &self.jwt_audience),
        }
    }

    /// The HS256 secret `parapet token` signs with; an error when a public key is configured.
    pub fn signing_secret(&self) -> anyhow::Result<Vec<u8>> {
        match self.jwt_key()? {
            JwtKey::Secret(s) => Ok(s),
            JwtKey::PublicKey(_) => bail!(
                "PARAPET_JWT_PUBLIC_KEY is set, so the server accepts only RS256/ES256 tokens from your \
                 identity provider; `parapet token` signs HS256 and cannot mint them"
            ),
        }
    }
}

/// Reads `<data dir>/jwt-secret`, creating it (random, mode 0600) on first use.
fn dev_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    dev_file_secret(data_dir, DEV_SECRET_FILE)
}

/// Reads `<data dir>/<name>`, creating it (32 random bytes as hex, mode 0600) on first use.
fn dev_file_secret(data_dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Some(secret) = read_secret(&path)? {
        return Ok(secret);
    }
    create_data_dir(data_dir)?;
    let secret = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a development secret");
            Ok(secret.into_bytes())
        }
        // Another process created it meanwhile: use theirs, once it has written it (replicas started
        // together on a fresh data dir race here; the writer needs only a moment).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for _ in 0..40 {
                if let Some(secret) = read_secret(&path)? {
                    return Ok(secret);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(anyhow::anyhow!("{} is empty; delete it to generate a new one", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().as_bytes().to_vec())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Parses a duration such as `30m`, `8h`, `2d`, `3600s` or `3600` (seconds) into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30m, 8h, 2d or 3600s"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("unknown duration unit {other:?} (use s, m, h, d or w)")),
    };
    if n == 0 {
        return Err("a duration must be above zero".into());
    }
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses a duration in milliseconds: `500ms`, or anything [`parse_duration`] takes (`30s`, `2m`).
pub fn parse_millis(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return match ms.trim().parse::<u64>() {
            Ok(0) => Err("a duration must be above zero".into()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("{s:?} is not a duration like 500ms, 30s or 2m")),
        };
    }
    let secs = parse_duration(t)?;
    u64::try_from(secs).ok().and_then(|n| n.checked_mul(1000)).ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_parse() {
        assert_eq!(parse_millis("30s"), Ok(30_000));
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("2m"), Ok(120_000));
        assert!(parse_millis("0ms").is_err());
        assert!(parse_millis("fast").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("8h"), Ok(28_800));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("3600s"), Ok(3600));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("8x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0m").is_err());
    }

    #[test]
    fn event_retention_defaults_to_seven_days_and_refuses_zero() {
        let mut c = Config::from_env().expect("defaults parse");
        if std::env::var_os("PARAPET_EVENT_RETENTION_HOURS").is_none() {
            assert_eq!(c.retention().window, std::time::Duration::from_secs(7 * 24 * 3600));
        }
        c.event_retention_hours = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = Config::from_env().expect("defaults parse");
        c.jwt_secret = Some("very-secret-value".into());
        c.database_url = Some("postgres://u:hunter2@db/parapet".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn dev_secret_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("parapet-cfg-{}", uuid::Uuid::new_v4().simple()));
        let a = dev_secret(&dir).expect("create");
        let b = dev_secret(&dir).expect("reuse");
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_SECRET_FILE)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
