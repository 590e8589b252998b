//! The `fal` command line: `fal serve` runs the platform; the other
//! commands talk to it through `fal-client`.
//!
//! # Layout
//! - this file: the argument grammar (clap) and dispatch;
//! - [`serve`]: `fal serve` (its GitHub settings too) and `fal admin recover-key`;
//! - [`settings`]: where their settings come from (flags, environment,
//!   `--config` file, secrets' files); [`config_file`]: that file's text;
//! - [`keys`]: `fal key …` (its grammar too) and `fal auth whoami`; [`key_usage`]: `fal key usage`;
//! - [`audit`]: `fal audit`;
//! - [`apps`]: `fal apps …` and `fal run`;
//! - [`queue`]: `fal run --queue`;
//! - [`users`]: `fal admin users …` (operators);
//! - [`output`]: the texts users already know from fal's documentation.
#![forbid(unsafe_code)]

pub mod apps;
pub mod audit;
pub mod config_file;
pub mod key_usage;
pub mod keys;
pub mod login;
pub mod output;
pub mod queue;
pub mod serve;
pub mod settings;
pub mod users;

pub use keys::KeyCommand;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// fal: key-based authentication and ready-to-use models, self-hosted.
/// (`Debug` masks `--key`'s secret.)
#[derive(Parser)]
#[command(name = "fal", version, about)]
pub struct Cli {
    /// The fal server to talk to.
    #[arg(long, global = true, env = "FAL_HOST", default_value = fal_client::DEFAULT_HOST)]
    pub host: String,
    /// A key pair, '<key_id>:<key_secret>'; wins over FAL_KEY and FAL_KEY_ID/FAL_KEY_SECRET.
    #[arg(
        long,
        global = true,
        value_name = "KEY_ID:KEY_SECRET",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: REST API, model gateway, GitHub sign-in.
    Serve(Box<ServeArgs>),
    /// Manage key pairs (`fal keys …` is the same).
    #[command(subcommand, visible_alias = "keys")]
    Key(KeyCommand),
    /// Who you are signed in as.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Manage apps: OWNER/NAME mapped to an upstream (ADMIN).
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Call a model: POST JSON to /run/OWNER/NAME (or /queue/OWNER/NAME with
    /// --queue) and print the answer.
    Run {
        /// The app, OWNER/NAME.
        app: String,
        /// JSON body, or @FILE to read it from a file (default: {}).
        #[arg(long, short = 'd', default_value = "{}")]
        data: String,
        /// Call the app's stream (/run/OWNER/NAME/stream) and print each
        /// server-sent event's data as it arrives, one line each.
        #[arg(long)]
        stream: bool,
        /// Go through the queue (/queue/OWNER/NAME): show the request's
        /// status and log lines as they change (on stderr), then print the
        /// answer.
        #[arg(long, conflicts_with = "stream")]
        queue: bool,
    },
    /// Maintenance on the server's own machine, working on its data directly.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Your audit log: keys generated and revoked, apps, sign-ins (ADMIN).
    Audit(AuditArgs),
}

/// `fal audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only events about, or done with, this key id.
    #[arg(long, value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// Only events of this kind (key.generated, key.revoked, app.added,
    /// session.signed_in, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// How many events, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Where a server keeps its data. (`Debug` masks the database URL.)
#[derive(Clone, Args)]
pub struct DataArgs {
    /// Data directory (SQLite database and pepper file).
    /// Default: $XDG_DATA_HOME/fal, else ~/.local/share/fal.
    #[arg(long, env = "FAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Pepper file, when not the one in the data directory.
    #[arg(long, env = "FAL_PEPPER_FILE")]
    pub pepper_file: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…) for several servers sharing one
    /// database; without it, SQLite in the data directory.
    #[arg(long, env = "FAL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// `fal serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// What reading the settings found worth a warning, logged at start.
    #[arg(skip)]
    pub warnings: Vec<String>,
    /// The config file read (`--config`), printed at start.
    #[arg(skip)]
    pub config_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "FAL_LISTEN", default_value = fal_server::config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Also serve GET /metrics here, without credentials (on --listen it
    /// needs an ADMIN key). Give a private address only the scraper
    /// reaches (e.g. 127.0.0.1:9420).
    #[arg(long, env = "FAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Data location.
    #[command(flatten)]
    pub data: DataArgs,
    /// Also serve the built-in demo app fal-ai/echo.
    #[arg(long, env = "FAL_DEMO")]
    pub demo: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "FAL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, env = "FAL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A file of 64 hex digits (`openssl rand -hex 32`, mode 0600) sealing
    /// TLS session tickets, so servers given it resume each other's sessions.
    #[arg(long, env = "FAL_TLS_TICKET_KEY_FILE", requires = "tls_cert")]
    pub tls_ticket_key_file: Option<PathBuf>,
    /// How often the TLS files are checked for changes, which reload them
    /// (as SIGHUP does); 0 or off: only SIGHUP reloads.
    #[arg(long, env = "FAL_TLS_WATCH_INTERVAL", value_parser = serve::parse_watch_interval, default_value = "2s")]
    pub tls_watch_interval: u64,
    /// The address browsers reach this server at (e.g.
    /// https://fal.example.com): GitHub sign-in in the browser returns to
    /// PUBLIC_URL/auth/github/callback. Default: the listen address, when
    /// it is a specific IP and port.
    #[arg(long, env = "FAL_PUBLIC_URL", value_parser = fal_server::config::parse_public_url)]
    pub public_url: Option<String>,
    /// How many key records the verification cache holds (about 200 bytes
    /// each); past it, the least used are read from storage when next used.
    #[arg(long, env = "FAL_KEY_CACHE", default_value_t = 1_000_000)]
    pub key_cache: u64,
    /// How long a cached key record is trusted when the key change log
    /// cannot be read (it is read every quarter of this, at most every
    /// second) and no change notification arrives (e.g. 5s, 500ms).
    #[arg(long, env = "FAL_MAX_STALENESS", value_parser = apps::parse_duration_ms, default_value = "5s")]
    pub max_staleness: u64,
    /// GitHub sign-in.
    #[command(flatten)]
    pub github: serve::GithubArgs,
    /// Lifetime of access tokens issued after GitHub sign-in (e.g. 15m).
    #[arg(long, env = "FAL_ACCESS_TOKEN_TTL", value_parser = apps::parse_duration_ms, default_value = "15m")]
    pub access_token_ttl: u64,
    /// How long a queued request's answer is kept (e.g. 7d, 12h).
    #[arg(long, env = "FAL_QUEUE_RETENTION", value_parser = apps::parse_duration_ms, default_value = "7d")]
    pub queue_retention: u64,
    /// How long audit events are kept (e.g. 365d, 90d); older ones are
    /// deleted hourly.
    #[arg(long, env = "FAL_AUDIT_RETENTION", value_parser = apps::parse_duration_ms, default_value = "365d")]
    pub audit_retention: u64,
    /// How many queued requests of one app this server runs at once.
    #[arg(long, env = "FAL_QUEUE_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub queue_concurrency: u32,
    /// How long a queued request's claim lasts without renewal: a request
    /// whose server died is run again after this (e.g. 30s). For tests and
    /// operators; hidden from --help.
    #[arg(long, env = "FAL_QUEUE_LEASE", value_parser = apps::parse_duration_ms, default_value = "30s", hide = true)]
    pub queue_lease: u64,
    /// How queued requests reach the disk: `normal` (a request whose id was
    /// handed out survives a crash or kill of the server, not a power cut
    /// or kernel crash in the next moment) or `full` (every submit waits
    /// for the disk: power cuts too, at a few milliseconds per commit).
    /// Keys and everything else are always written as `full`.
    #[arg(long, env = "FAL_QUEUE_SYNC", value_parser = fal_store::CommitSync::parse, default_value = "normal")]
    pub queue_sync: fal_store::CommitSync,
    /// Log lines as `text` or `json` (default: text on a terminal, else json).
    #[arg(long, env = "FAL_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// One `fal::access` line per request (`on`) or none (`off`).
    #[arg(long, env = "FAL_ACCESS_LOG", value_parser = ["on", "off"], default_value = "on")]
    pub access_log: String,
    /// Worker threads (default: one per core).
    #[arg(long, env = "FAL_WORKERS")]
    pub workers: Option<usize>,
    /// Close a client connection idle this long between requests, or this
    /// slow to send a request head (e.g. 60s).
    #[arg(long, env = "FAL_IDLE_TIMEOUT", value_parser = apps::parse_duration_ms, default_value = "60s")]
    pub idle_timeout: u64,
    /// Cut off a request body the server reads (API, dashboard) that has
    /// not arrived whole after this long, and a /run body that pauses this
    /// long (408, e.g. 30s).
    #[arg(long, env = "FAL_BODY_TIMEOUT", value_parser = apps::parse_duration_ms, default_value = "30s")]
    pub body_timeout: u64,
    /// The largest request body, in bytes, the server reads itself (API,
    /// dashboard forms; 413 beyond). /run bodies are streamed, unlimited.
    #[arg(long, env = "FAL_MAX_BODY_SIZE", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_size: u64,
    /// The most client connections at once, across all workers (503 with
    /// retry-after beyond; lowered to what the open-file limit holds).
    #[arg(long, env = "FAL_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// GitHub users who manage every app and user besides the bootstrap
    /// admin (comma-separated logins or numeric GitHub ids; ids are safer).
    #[arg(long, env = "FAL_OPERATORS", value_delimiter = ',')]
    pub operators: Vec<String>,
    /// Let operators' apps use cloud-metadata addresses (169.254.169.254,
    /// fd00:ec2::254, …) as upstreams; refused for every app otherwise.
    #[arg(long, env = "FAL_ALLOW_METADATA_UPSTREAMS")]
    pub allow_metadata_upstreams: bool,
    /// Refused credentials one client address may send in a minute; past
    /// that it gets 429 with retry-after until the minute ends, even with a
    /// right key (IPv6 counts by /64; 0 turns this off).
    #[arg(long, env = "FAL_AUTH_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub auth_failures_per_minute: u32,
    /// Proxies whose X-Forwarded-For names the client (comma-separated
    /// CIDRs or addresses, e.g. 10.0.0.0/8,127.0.0.1). From any other peer
    /// the header is ignored and the peer is the client.
    #[arg(long, env = "FAL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<fal_server::throttle::Cidr>,
    /// Where the public keys that sign leaked-key reports to
    /// POST /security/secret-scanning are published (GitHub's secret
    /// scanning partner program); fetched when a report names a key not
    /// yet held, at most once a minute.
    #[arg(
        long,
        env = "FAL_SECRET_SCANNING_KEYS_URL",
        value_parser = fal_server::secret_scanning::parse_keys_url,
        default_value = fal_server::secret_scanning::DEFAULT_KEYS_URL
    )]
    pub secret_scanning_keys_url: String,
}

/// `fal apps …`.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Register an app.
    Add {
        /// OWNER/NAME.
        app: String,
        /// Upstream base URL (http:// or https://).
        #[arg(long)]
        upstream: String,
        /// How long to wait for the upstream's response (e.g. 60s, 500ms, 2m).
        #[arg(long, value_parser = apps::parse_duration_ms)]
        timeout: Option<u64>,
        /// How many queued requests of the app run at once (default: the
        /// servers' --queue-concurrency).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        concurrency: Option<u32>,
    },
    /// List apps.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove an app.
    #[command(visible_alias = "remove")]
    Rm {
        /// OWNER/NAME.
        app: String,
    },
}

/// `fal auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in with GitHub (device flow).
    Login {
        /// Do not open a browser; just print the URL and code.
        #[arg(long)]
        no_browser: bool,
    },
    /// Sign out: ends the session on the server and removes the local login.
    Logout,
    /// Show the user and credential in use.
    Whoami {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `fal admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a new ADMIN key for the bootstrap admin user, offline (for a lost bootstrap key).
    RecoverKey {
        /// Data location.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Users of the server (operators only; through the REST API).
    #[command(subcommand)]
    Users(UsersCommand),
}

/// `fal admin users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List every user.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: revokes all their keys and sessions at once; they
    /// cannot sign in again.
    Disable {
        /// GitHub login (or user id).
        login: String,
    },
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match settings::parse(std::env::args_os(), &settings::RealFiles) {
        Ok(settings::Parsed::Run(cli)) => *cli,
        Ok(settings::Parsed::Printed(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(settings::SettingsError::Usage { error, notes }) if notes.is_empty() => error.exit(),
        Err(e @ settings::SettingsError::Usage { .. }) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Admin(AdminCommand::RecoverKey { data }) => serve::recover_key(data).await,
        Command::Admin(AdminCommand::Users(cmd)) => {
            users::users_command(&cli.host, cli.key.as_deref(), cmd).await
        }
        Command::Audit(args) => audit::audit_command(&cli.host, cli.key.as_deref(), args).await,
        Command::Key(cmd) => keys::key_command(&cli.host, cli.key.as_deref(), cmd).await,
        Command::Apps(cmd) => apps::apps_command(&cli.host, cli.key.as_deref(), cmd).await,
        Command::Run {
            app,
            data,
            queue: true,
            ..
        } => queue::run_queued(&cli.host, cli.key.as_deref(), &app, &data).await,
        Command::Run {
            app, data, stream, ..
        } => apps::run(&cli.host, cli.key.as_deref(), &app, &data, stream).await,
        Command::Auth(AuthCommand::Login { no_browser }) => {
            login::login(&cli.host, no_browser).await
        }
        Command::Auth(AuthCommand::Logout) => login::logout(&cli.host).await,
        Command::Auth(AuthCommand::Whoami { json }) => {
            keys::whoami(&cli.host, cli.key.as_deref(), json).await
        }
    }
}
