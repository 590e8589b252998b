//! `fal key …` (its grammar and what it does) and `fal auth whoami`.

use clap::Subcommand;
use fal_client::{Client, Expiry, credentials};
use fal_core::{Alias, ExpiryPolicy, Grace, RateLimit, Timestamp};
use serde_json::json;

use crate::output::generated_key_message;

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

/// A client with the first credentials found: `--key`, `FAL_KEY`,
/// `FAL_KEY_ID`+`FAL_KEY_SECRET`, then the GitHub login (for this host).
pub(crate) fn client(host: &str, explicit: Option<&str>) -> anyhow::Result<Client> {
    let creds = credentials::from_env(explicit)?;
    if creds.is_some() {
        return Ok(Client::new(host, creds));
    }
    match crate::login::login_for(host) {
        Some(path) => Ok(Client::new(host, None).with_session_file(path)),
        None => Err(fal_client::CredentialError::Missing.into()),
    }
}

/// Runs a `fal key` subcommand.
pub async fn key_command(
    host: &str,
    explicit: Option<&str>,
    cmd: KeyCommand,
) -> anyhow::Result<()> {
    let connect = || client(host, explicit);
    match cmd {
        KeyCommand::Generate {
            scope,
            alias,
            rate_limit,
            expires_in,
            expires_at,
            json,
        } => {
            // By the server's own rules, so a bad alias, rate limit or
            // expiry is refused in the server's words before credentials
            // are read or anything is sent (a date in the past only the
            // server, by its clock, refuses).
            let alias = Alias::parse(&alias)?;
            let limit = rate_limit.as_deref().map(RateLimit::parse).transpose()?;
            let limit = limit.map(|l| l.to_string());
            ExpiryPolicy::from_request(
                expires_at.as_deref(),
                expires_in.as_deref(),
                Timestamp(i64::MIN),
            )?;
            let expiry = match (&expires_in, &expires_at) {
                (Some(span), _) => Expiry::In(span),
                (None, Some(at)) => Expiry::At(at),
                (None, None) => Expiry::Never,
            };
            let created = connect()?
                .create_key_with(
                    &scope.to_uppercase(),
                    alias.as_str(),
                    limit.as_deref(),
                    expiry,
                )
                .await?;
            print_created(&created, json)?;
        }
        KeyCommand::Roll {
            key_id,
            grace,
            json,
        } => {
            if let Some(g) = &grace {
                g.parse::<Grace>()?;
            }
            let created = connect()?.roll_key(&key_id, grace.as_deref()).await?;
            print_created(&created, json)?;
        }
        KeyCommand::List { json } => {
            let keys = connect()?.list_all_keys().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "keys": keys }))?
                );
            } else {
                print!("{}", key_table(&keys));
            }
        }
        KeyCommand::Update {
            key_id,
            rate_limit,
            no_rate_limit: _,
            json,
        } => {
            // clap lets exactly one of --rate-limit and --no-rate-limit
            // through: no --rate-limit means lift it.
            let limit = rate_limit.as_deref().map(RateLimit::parse).transpose()?;
            let limit = limit.map(|l| l.to_string());
            let key = connect()?
                .update_key_rate_limit(&key_id, limit.as_deref())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                match &key.rate_limit {
                    Some(l) => println!("Key {} is now limited to {l}.", key.key_id),
                    None => println!("Key {} has no rate limit now.", key.key_id),
                }
            }
        }
        KeyCommand::Usage {
            key_id,
            since,
            hourly,
            json,
        } => {
            let since = since.as_deref();
            crate::key_usage::usage_command(connect()?, &key_id, since, hourly, json).await?;
        }
        KeyCommand::Revoke { key_id } => {
            connect()?.revoke_key(&key_id).await?;
            println!("Revoked key {key_id}.");
        }
    }
    Ok(())
}

/// A key just generated (or rolled), printed once: the server's JSON, or
/// the words `fal key generate` has always printed.
fn print_created(created: &fal_client::CreatedKey, json: bool) -> anyhow::Result<()> {
    if json {
        let mut body = json!({
            "key_id": created.key_id,
            "key_secret": created.key_secret,
            "key": created.key,
            "scope": created.scope,
            "alias": created.alias,
            "created_at": created.created_at,
            "rate_limit": created.rate_limit,
            "expires_at": created.expires_at,
            "expires_in": created.expires_in,
        });
        if let Some(old) = &created.old_key_id {
            body["old_key_id"] = json!(old);
            body["old_expires_at"] = json!(created.old_expires_at);
        }
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print!(
        "{}",
        generated_key_message(&created.key_id, &created.key_secret)
    );
    println!();
    if let Some(limit) = &created.rate_limit {
        println!("Rate limit: {limit}");
        println!();
    }
    if let Some(at) = &created.expires_at {
        println!("Expires: {at}");
        println!();
    }
    if let (Some(old), Some(until)) = (&created.old_key_id, &created.old_expires_at) {
        println!("It replaces key {old}, which stops working at {until}.");
        println!();
    }
    println!(
        "You should store the values of FAL_KEY_ID and FAL_KEY_SECRET in your environment now."
    );
    Ok(())
}

/// The key table: key id, alias, scope, created, last used, rate limit
/// (`-` when unlimited), expires (`never`), calls accepted in the last 30
/// days.
pub fn key_table(keys: &[fal_client::KeyInfo]) -> String {
    let headers = [
        "KEY ID",
        "ALIAS",
        "SCOPE",
        "CREATED",
        "LAST USED",
        "RATE LIMIT",
        "EXPIRES",
        "REQUESTS",
    ];
    let rows: Vec<[String; 8]> = keys
        .iter()
        .map(|k| {
            [
                k.key_id.clone(),
                k.alias.clone(),
                k.scope.clone(),
                k.created_at.clone(),
                k.last_used_at.clone().unwrap_or_else(|| "never".into()),
                k.rate_limit.clone().unwrap_or_else(|| "-".into()),
                k.expires_at.clone().unwrap_or_else(|| "never".into()),
                k.requests.to_string(),
            ]
        })
        .collect();
    let mut out = crate::key_usage::table(headers, &rows);
    if rows.is_empty() {
        out.push_str("(no keys)\n");
    }
    out
}

/// `fal auth whoami`.
pub async fn whoami(host: &str, explicit: Option<&str>, json: bool) -> anyhow::Result<()> {
    let source = match credentials::from_env(explicit)? {
        Some(c) => c.source.to_string(),
        None => "GitHub login".to_owned(),
    };
    let user = client(host, explicit)?.current_user().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "user": user,
                "credential_source": source,
            }))?
        );
    } else {
        let how = match user.credential.key_id.as_deref() {
            Some(key) => format!("key {key} ({} scope), from {source}", user.credential.scope),
            None => format!("a GitHub login session ({} scope)", user.credential.scope),
        };
        println!(
            "{} ({}), user id {}\nauthenticated with {how}",
            user.nickname, user.full_name, user.user_id
        );
    }
    Ok(())
}
