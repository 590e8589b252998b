//! `fal admin users list|disable` (operators only, through the REST API).

use serde_json::json;

use crate::UsersCommand;
use crate::keys::client;

/// Runs a `fal admin users` subcommand.
pub async fn users_command(
    host: &str,
    explicit: Option<&str>,
    cmd: UsersCommand,
) -> anyhow::Result<()> {
    let client = client(host, explicit)?;
    match cmd {
        UsersCommand::List { json } => {
            let users = client.list_users().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "users": users }))?
                );
                return Ok(());
            }
            let width = users
                .iter()
                .filter_map(|u| u["login"].as_str())
                .map(str::len)
                .max()
                .unwrap_or(0)
                .max(5);
            println!(
                "{:<width$}  {:<36}  {:<10}  {:>4}  STATUS",
                "LOGIN", "USER ID", "GITHUB ID", "KEYS"
            );
            for u in &users {
                let status = match u["disabled_at"].as_str() {
                    Some(at) => format!("disabled {at}"),
                    None => "active".to_owned(),
                };
                let github = u["github_id"]
                    .as_i64()
                    .map_or_else(|| "-".to_owned(), |id| id.to_string());
                println!(
                    "{:<width$}  {:<36}  {:<10}  {:>4}  {status}",
                    u["login"].as_str().unwrap_or(""),
                    u["user_id"].as_str().unwrap_or(""),
                    github,
                    u["active_keys"],
                );
            }
        }
        UsersCommand::Disable { login } => {
            let done = client.disable_user(&login).await?;
            println!(
                "Disabled {}: revoked {} key(s) and {} session(s); they cannot sign in again.",
                done["login"].as_str().unwrap_or(&login),
                done["revoked_keys"],
                done["revoked_sessions"],
            );
        }
    }
    Ok(())
}
