//! `fal serve` and `fal admin recover-key`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fal_core::{OsRandom, SystemClock};
use fal_server::{App, Config};
use tracing_subscriber::EnvFilter;

use crate::output::generated_key_message;
use crate::{DataArgs, ServeArgs};

/// `$XDG_DATA_HOME/fal`, else `~/.local/share/fal`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("fal"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_DATA_HOME nor HOME is set: pass --data-dir or set FAL_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".local/share/fal"))
}

fn config_from(data: DataArgs) -> anyhow::Result<Config> {
    let data_dir = match data.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let mut config = Config::new(data_dir);
    config.pepper_file = data.pepper_file;
    config.database_url = data.database_url;
    Ok(config)
}

/// `--tls-watch-interval`: a duration (see [`crate::apps::parse_duration_ms`]),
/// or 0 for none.
pub(crate) fn parse_watch_interval(s: &str) -> Result<u64, String> {
    match s.trim() {
        "0" | "off" => Ok(0),
        other => crate::apps::parse_duration_ms(other),
    }
}

/// Logs go to stderr, as text or one JSON object a line; RUST_LOG picks
/// the levels (default: info). `access_log` false silences the
/// `fal::access` target whatever RUST_LOG says.
fn init_logging(format: Option<&str>, access_log: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match "fal::access=off".parse() {
        Ok(off) if !access_log => filter.add_directive(off),
        _ => filter,
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Some("json") => builder.json().flatten_event(true).try_init(),
        Some(_) => builder.with_ansi(terminal).try_init(),
        None if terminal => builder.with_ansi(true).try_init(),
        None => builder.json().flatten_event(true).try_init(),
    };
}

/// Runs the platform until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format.as_deref(), args.access_log == "on");
    for warning in &args.warnings {
        tracing::warn!("{warning}");
    }
    let mut config = config_from(args.data)?;
    config.listen = args.listen;
    config.metrics_listen = args.metrics_listen;
    config.demo = args.demo;
    config.max_staleness = std::time::Duration::from_millis(args.max_staleness);
    config.cache_capacity = args.key_cache;
    config.idle_timeout = std::time::Duration::from_millis(args.idle_timeout);
    config.body_timeout = std::time::Duration::from_millis(args.body_timeout);
    config.max_body_size = usize::try_from(args.max_body_size).unwrap_or(usize::MAX);
    config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    config.queue_retention = std::time::Duration::from_millis(args.queue_retention);
    config.audit_retention = std::time::Duration::from_millis(args.audit_retention);
    config.queue_concurrency = args.queue_concurrency as usize;
    config.queue_lease = std::time::Duration::from_millis(args.queue_lease.max(1));
    config.queue_sync = args.queue_sync;
    match fal_server::limits::raise_file_limit() {
        Some(n) => tracing::info!(open_file_limit = n, "open-file limit"),
        None => tracing::info!("open-file limit: unlimited"),
    }
    config.session_ttl.access = std::time::Duration::from_millis(args.access_token_ttl);
    config.operators = args.operators;
    config.allow_metadata_upstreams = args.allow_metadata_upstreams;
    config.throttle.failures = args.auth_failures_per_minute;
    config.throttle.window = std::time::Duration::from_secs(60);
    config.throttle.trusted_proxies =
        fal_server::throttle::TrustedProxies::new(args.trusted_proxies);
    let g = args.github;
    if let (Some(client_id), Some(secret)) = (g.github_client_id, g.github_client_secret) {
        let trim = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        config.github = Some(fal_server::github::GithubConfig {
            client_id,
            client_secret: secret.into(),
            url: g.github_url.trim_end_matches('/').to_owned(),
            api_url: g.github_api_url.trim_end_matches('/').to_owned(),
            allow_users: trim(g.github_allow_users),
            allow_user_ids: g.github_allow_user_ids,
            allow_orgs: trim(g.github_allow_orgs),
        });
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(fal_server::config::TlsFiles {
            cert,
            key,
            ticket_key: args.tls_ticket_key_file,
        });
    }
    config.tls_watch_interval = match args.tls_watch_interval {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    };
    config.public_url = args.public_url;
    config.secret_scanning_keys_url = args.secret_scanning_keys_url;
    let tls = config.tls.is_some();
    let workers = args.workers;
    let config_file = args.config_file;
    let mut app = App::build(config, Arc::new(SystemClock), Arc::new(OsRandom)).await?;
    if let Some(key) = app.take_bootstrap_key() {
        println!("First start: created the bootstrap admin user and an ADMIN key for it.");
        println!(
            "{}",
            generated_key_message(&key.key_id.to_string(), key.secret.expose())
        );
    }
    // Signal handlers first, so a SIGTERM right after start still stops gracefully.
    let shutdown = shutdown_signal()?;
    reload_on_hangup(app.tls())?;
    let listen = app.config().listen;
    if let Some(path) = &config_file {
        println!("config: {}", path.display());
    }
    println!("data: {}", app.config().describe_storage());
    println!("pepper: {}", app.config().pepper_path().display());
    if app.config().demo {
        println!("demo app: fal-ai/echo");
    }
    match &app.config().github {
        Some(g)
            if g.allow_users.is_empty()
                && g.allow_user_ids.is_empty()
                && g.allow_orgs.is_empty() =>
        {
            println!(
                "GitHub sign-in: on, but nobody is allowed yet (set --github-allow-user-ids, --github-allow-users or --github-allow-orgs)"
            )
        }
        Some(_) => println!("GitHub sign-in: on"),
        None => println!("GitHub sign-in: not configured"),
    }
    if app.config().github.is_some() {
        match app.config().public_base() {
            Some(base) => println!("GitHub web sign-in returns to {base}/auth/github/callback"),
            None => println!(
                "GitHub web sign-in: off until --public-url is set (browsers cannot reach the listen address as it is)"
            ),
        }
    }
    let scheme = if tls { "https" } else { "http" };
    let workers = workers
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    app.serve_per_core(
        listen,
        workers,
        |local, metrics| {
            if let Some(m) = metrics {
                println!("metrics: http://{m}/metrics (no credentials: keep this address private)");
            }
            println!("fal is listening on {scheme}://{local} ({workers} worker threads)");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// Installs the Ctrl-C and SIGTERM handlers now, and returns a future that
/// completes on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing requests under way");
    })
}

/// Installs the SIGHUP handler: it reloads the TLS certificate, key and
/// ticket key (logging what it did), and is ignored without TLS (so a
/// reload sent to a plain-HTTP server does not stop it).
#[cfg(unix)]
fn reload_on_hangup(tls: Option<Arc<fal_server::tls::Tls>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match &tls {
                Some(tls) => {
                    let tls = tls.clone();
                    let _ = tokio::task::spawn_blocking(move || tls.reload("SIGHUP")).await;
                }
                None => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_hangup(_tls: Option<Arc<fal_server::tls::Tls>>) -> anyhow::Result<()> {
    Ok(())
}

/// Returns a future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests under way");
    })
}

/// Prints a new ADMIN key for the bootstrap admin user.
pub async fn recover_key(data: DataArgs) -> anyhow::Result<()> {
    let config = config_from(data)?;
    let key = fal_server::app::recover_admin_key(&config, &SystemClock, &OsRandom).await?;
    println!("Created a new ADMIN key for the bootstrap admin user.");
    println!(
        "{}",
        generated_key_message(&key.key_id.to_string(), key.secret.expose())
    );
    Ok(())
}

/// GitHub sign-in settings of `fal serve`. (`Debug` masks the secret.)
#[derive(Clone, Args)]
pub struct GithubArgs {
    /// The GitHub OAuth app's client id (enables GitHub sign-in).
    #[arg(long, env = "FAL_GITHUB_CLIENT_ID", requires = "github_client_secret")]
    pub github_client_id: Option<String>,
    /// The GitHub OAuth app's client secret.
    #[arg(long, env = "FAL_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// GitHub's web URL (GitHub Enterprise Server: https://HOST).
    #[arg(long, env = "FAL_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: String,
    /// GitHub's API URL (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(
        long,
        env = "FAL_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// GitHub logins allowed to sign in (comma-separated). A login given up
    /// on GitHub can be taken by someone else: prefer --github-allow-user-ids.
    #[arg(long, env = "FAL_GITHUB_ALLOW_USERS", value_delimiter = ',')]
    pub github_allow_users: Vec<String>,
    /// GitHub numeric user ids allowed to sign in (comma-separated); an id
    /// never passes to another account.
    #[arg(long, env = "FAL_GITHUB_ALLOW_USER_IDS", value_delimiter = ',')]
    pub github_allow_user_ids: Vec<i64>,
    /// GitHub organisations whose members may sign in (comma-separated).
    #[arg(long, env = "FAL_GITHUB_ALLOW_ORGS", value_delimiter = ',')]
    pub github_allow_orgs: Vec<String>,
}
