//! The `parapet` command: serve | migrate | schema | token.
//!
//! Settings come from environment variables (see `parapet::config`), and every one has a flag that
//! overrides it, e.g. `parapet serve --listen 0.0.0.0:8080`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use parapet::auth::{mint_hs256, Role, TokenSpec};
use parapet::config::{parse_duration, Config, LogFormat};
use parapet::db::embedded::{self, EmbeddedPg};
use parapet::state::AppState;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of the system allocator: a batch of alerts makes many short-lived allocations, and
/// glibc's malloc and free were about 30 % of the server's CPU time under the ingest benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Incident and alert management server for e-mail security operations (GraphQL).
#[derive(Parser)]
#[command(name = "parapet", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Mint a JWT signed with the configured HS256 secret.
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Tenant id (`tid` claim).
    #[arg(long)]
    tenant: String,
    /// Subject, a UPN such as alice@contoso.com.
    #[arg(long)]
    sub: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// A role: reader, analyst, responder, admin or ingestor (repeat for several).
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    /// Lifetime, e.g. 30m, 8h, 2d, 3600s.
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    ttl: i64,
    /// Service source an ingestor token is limited to (`svc` claim).
    #[arg(long)]
    svc: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown role {s:?} (use reader, analyst, responder, admin or ingestor)"))
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    // Only the default data dir may move when the cluster user cannot reach it: a folder someone chose
    // should fail loudly rather than have its cluster land somewhere else.
    let placement = match matches.value_source("data_dir") {
        Some(clap::parser::ValueSource::DefaultValue) | None => Placement::Relocatable,
        Some(_) => Placement::AsConfigured,
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = cli.config;
    if let Err(e) = config.validate() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Schema => {
            print!("{}", parapet::graphql::sdl());
            Ok(())
        }
        Cmd::Token(args) => token(&config, args),
        Cmd::Migrate => runtime().and_then(|rt| {
            init_tracing(&config);
            rt.block_on(migrate(&config, placement))
        }),
        Cmd::Serve => runtime().and_then(|rt| {
            init_tracing(&config);
            rt.block_on(serve(config, placement))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "parapet failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!("warning: RUST_LOG {:?} is not a valid filter ({e}); using info", config.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    // async-imap traces every command it sends, the login's SASL response (the master password) too:
    // it is never logged, whatever RUST_LOG asks for.
    let filter = match "async_imap=off".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn token(config: &Config, args: TokenArgs) -> anyhow::Result<()> {
    let secret = config.signing_secret()?;
    let spec = TokenSpec {
        tenant: args.tenant,
        sub: args.sub,
        name: args.name,
        roles: args.roles,
        svc: args.svc,
        ttl_secs: args.ttl,
    };
    println!("{}", mint_hs256(&spec, &secret, &config.jwt_issuer, &config.jwt_audience)?);
    Ok(())
}

/// Whether the embedded cluster may leave the data dir when, run as root, the `postgres` user cannot
/// reach it.
#[derive(Clone, Copy)]
enum Placement {
    /// The data dir is the default: keep the cluster under the fallback root instead.
    Relocatable,
    /// The data dir was chosen (flag or variable): fail and say why.
    AsConfigured,
}

/// The database to use: `DATABASE_URL`, or the embedded cluster (started here, stopped by the caller).
async fn database(config: &Config, placement: Placement) -> anyhow::Result<(String, Option<EmbeddedPg>)> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), None));
    }
    let dir = config.data_dir.clone();
    let mut pg = tokio::task::spawn_blocking(move || {
        let options = embedded::Options::default();
        match placement {
            Placement::Relocatable => {
                EmbeddedPg::start_or_relocate(&dir, &options, &embedded::fallback_root())
            }
            Placement::AsConfigured => EmbeddedPg::start(&dir, &options),
        }
    })
    .await
    .context("the embedded PostgreSQL launcher panicked")??;
    // Ours to stop, even when adopted from a run that died without stopping it.
    pg.stop_when_done(true);
    let url = pg.ensure_database("parapet").await?;
    Ok((url, Some(pg)))
}

/// Stops the embedded cluster off the async threads.
async fn stop_embedded(pg: Option<EmbeddedPg>) {
    if let Some(mut pg) = pg {
        let stopped = tokio::task::spawn_blocking(move || pg.stop()).await;
        if let Ok(Err(e)) = stopped {
            tracing::error!(error = %format!("{e:#}"), "could not stop the embedded PostgreSQL");
        }
    }
}

async fn migrate(config: &Config, placement: Placement) -> anyhow::Result<()> {
    let (url, pg) = database(config, placement).await?;
    let result = parapet::db::run_migrations(&url).await;
    stop_embedded(pg).await;
    let ran = result?;
    tracing::info!(ran, "migrations applied");
    Ok(())
}

async fn serve(config: Config, placement: Placement) -> anyhow::Result<()> {
    // Resolve the key first: a production deployment without one should fail before touching anything.
    let verifier = config.verifier()?;
    tracing::info!(config = ?config, "starting parapet");
    let (url, pg) = database(&config, placement).await?;
    let result = run_server(&config, &url, verifier).await;
    stop_embedded(pg).await;
    result
}

async fn run_server(config: &Config, url: &str, verifier: parapet::auth::JwtVerifier) -> anyhow::Result<()> {
    let ran = parapet::db::run_migrations(url).await.context("cannot migrate the database")?;
    if ran > 0 {
        tracing::info!(ran, "migrations applied");
    }
    let pool = parapet::db::build_pool(url, &config.pool_settings())?;
    // Every replica runs the pruner; an advisory lock lets one of them work at a time.
    let pruner = parapet::events::retention::spawn(pool.clone(), config.retention());
    // Likewise the mail store's partitions: made ahead, retired after 30 days.
    let partitions = parapet::mail::partitions::spawn(pool.clone(), config.retention().interval);
    let secret_key = config.secret_key()?;
    if secret_key.is_none() {
        let mut conn = pool.get().await.context("cannot reach the database")?;
        if parapet::mailserver::any_configured(&mut conn).await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
            anyhow::bail!(
                "a mail server is configured but PARAPET_SECRET_KEY is not set: its password cannot be opened; \
                 set the key it was sealed with"
            );
        }
    }
    let state = AppState::new(pool.clone(), verifier).with_secret_key(secret_key).with_mail(
        std::time::Duration::from_secs(u64::from(config.mail_timeout_secs)),
        std::time::Duration::from_secs(u64::from(config.mail_retry_secs)),
    );
    // Every replica runs jobs; SKIP LOCKED shares them out and leases hand a dead worker's jobs over.
    let jobs = parapet::jobs::runner::spawn(
        pool.clone(),
        state.metrics.clone(),
        parapet::jobs::runner::RunnerSettings {
            workers: usize::from(config.job_workers),
            lease: std::time::Duration::from_secs(u64::from(config.job_lease_secs)),
            ..Default::default()
        },
        parapet::work::handler(pool.clone(), state.mail.clone()),
    );
    // Pending actions expire after 7 days; every replica sweeps (each expiry is one conditional update).
    let expiry = parapet::actions::expiry::spawn(pool);
    let schema = parapet::graphql::build_schema(state.clone(), &config.limits());
    let router = parapet::http::router_with(state, schema, &config.into());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening: http://{addr}/graphql (playground at http://{addr}/playground)");
    // Small writes (a subscription event, a short response) go out at once: with Nagle's algorithm a
    // frame can wait for the peer's delayed ACK, adding up to 40 ms to live delivery.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    tokio::select! {
        ended = &mut server => {
            pruner.abort();
            partitions.abort();
            jobs.abort();
            expiry.abort();
            return match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server task failed"),
            };
        }
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down: finishing requests in flight");
        }
    }
    pruner.abort();
    partitions.abort();
    jobs.abort();
    expiry.abort();
    let _ = stop_tx.send(());
    // Upgraded connections (WebSockets) may never end by themselves: don't wait for them forever.
    match tokio::time::timeout(Duration::from_secs(20), server).await {
        Ok(Ok(Ok(()))) => tracing::info!("server stopped"),
        Ok(Ok(Err(e))) => return Err(e).context("the HTTP server failed while stopping"),
        Ok(Err(e)) => return Err(e).context("the HTTP server task failed"),
        Err(_) => tracing::warn!("connections still open after 20 s; stopping anyway"),
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
