//! The `fal` command line: `fal serve` runs the platform; the other
//! commands talk to it through `fal-client`.
//!
//! # Layout
//! - this file: the argument grammar (clap) and dispatch;
//! - [`serve`]: `fal serve` and `fal admin recover-key`;
//! - [`keys`]: `fal key …` and `fal auth whoami`; [`key_usage`]: `fal key usage`;
//! - [`audit`]: `fal audit`;
//! - [`apps`]: `fal apps …` and `fal run`;
//! - [`queue`]: `fal run --queue`;
//! - [`users`]: `fal admin users …` (operators);
//! - [`output`]: the texts users already know from fal's documentation.
#![forbid(unsafe_code)]

pub mod apps;
pub mod audit;
pub mod key_usage;
pub mod keys;
pub mod login;
pub mod output;
pub mod queue;
pub mod serve;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// fal: key-based authentication and ready-to-use models, self-hosted.
#[derive(Debug, Parser)]
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

/// Where a server keeps its data.
#[derive(Debug, Clone, Args)]
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
    /// Address to listen on.
    #[arg(long, env = "FAL_LISTEN", default_value = fal_server::config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
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
    pub github: GithubArgs,
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

/// GitHub sign-in settings of `fal serve`.
#[derive(Debug, Clone, Args)]
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

/// `fal key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair; the secret is printed once (`fal keys create` is the same).
    #[command(visible_alias = "create")]
    Generate {
        /// ADMIN (everything) or API (ready-to-use models only).
        #[arg(long, value_parser = ["ADMIN", "API"], ignore_case = true)]
        scope: String,
        /// A label for the key.
        #[arg(long, alias = "desc", default_value = "")]
        alias: String,
        /// Calls allowed per second, minute or hour: 100/s, 100/min or
        /// 100/h (unlimited when left out).
        #[arg(long, value_name = "CALLS/PERIOD")]
        rate_limit: Option<String>,
        /// The key stops working this long after it is made: 90s, 15m,
        /// 12h, 30d or 2w (a roll gives the new key as long again).
        #[arg(long, value_name = "SPAN", conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// The key stops working at this instant (RFC 3339, e.g.
        /// 2026-12-31T23:59:00Z).
        #[arg(long, value_name = "RFC3339")]
        expires_at: Option<String>,
        /// Print the server's JSON instead of the message.
        #[arg(long)]
        json: bool,
    },
    /// Roll a key: a new key pair with the same alias, scope, expiry
    /// policy and rate limit (the secret is printed once); the old pair
    /// stops working when the grace ends.
    Roll {
        /// The key id to roll.
        key_id: String,
        /// How long the old pair keeps working: 0 (the default: at once)
        /// to 7d, e.g. 1h.
        #[arg(long, value_name = "SPAN")]
        grace: Option<String>,
        /// Print the server's JSON instead of the message.
        #[arg(long)]
        json: bool,
    },
    /// List your keys.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Change a key's rate limit: set it with --rate-limit, or lift it
    /// with --no-rate-limit.
    #[command(group(clap::ArgGroup::new("limit").required(true).args(["rate_limit", "no_rate_limit"])))]
    Update {
        /// The key id to change.
        key_id: String,
        /// The new limit: 100/s, 100/min or 100/h.
        #[arg(long, value_name = "CALLS/PERIOD")]
        rate_limit: Option<String>,
        /// Lift the key's rate limit (unlimited).
        #[arg(long)]
        no_rate_limit: bool,
        /// Print the key as the server lists it, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A key's calls over the last 30 days: accepted, and refused by
    /// reason (wrong secret, revoked, rate-limited, expired), per day.
    Usage {
        /// The key id.
        key_id: String,
        /// One row per hour instead of per day.
        #[arg(long)]
        hourly: bool,
        /// Start at this day (2026-11-28) or instant (2026-11-28T10:00:00Z), UTC.
        #[arg(long)]
        since: Option<String>,
        /// Print the server's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it is refused from the next request on.
    Revoke {
        /// The key id to revoke.
        key_id: String,
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
    let cli = Cli::parse();
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
