//! `fal apps …` and `fal run`.

use std::io::Write;

use anyhow::Context;
use fal_core::{AppName, AppOwner, UpstreamUrl};

use crate::AppsCommand;
use crate::keys::client;

/// Parses `60s`, `500ms`, `2m`, `1h` or a bare number of seconds into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 60s, 500ms or 2m"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?}: use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|&ms| ms > 0)
        .ok_or_else(|| format!("{s:?} must be more than zero and less than a lifetime"))
}

/// Checks `fal apps add`'s `OWNER/NAME` and `--upstream` by the server's
/// own rules, so that bad input is refused, in the server's words, before
/// credentials are read or anything is sent.
pub fn parse_new_app(
    app: &str,
    upstream: &str,
) -> anyhow::Result<(AppOwner, AppName, UpstreamUrl)> {
    let (owner, name) = fal_client::split_app(app)?;
    Ok((
        AppOwner::parse(owner)?,
        AppName::parse(name)?,
        UpstreamUrl::parse(upstream)?,
    ))
}

/// Runs a `fal apps` subcommand.
pub async fn apps_command(
    host: &str,
    explicit: Option<&str>,
    cmd: AppsCommand,
) -> anyhow::Result<()> {
    let connect = || client(host, explicit);
    match cmd {
        AppsCommand::Add {
            app,
            upstream,
            timeout,
            concurrency,
        } => {
            let (owner, name, upstream) = parse_new_app(&app, &upstream)?;
            let app = format!("{owner}/{name}");
            let created = connect()?
                .create_app_with(&app, upstream.as_ref(), timeout, concurrency)
                .await?;
            let runs = match created["concurrency"].as_i64() {
                Some(n) => format!("{n} queued at once"),
                None => "queued per the servers' default".into(),
            };
            println!(
                "Registered {} -> {} (timeout {} ms, {runs}).",
                created["app"].as_str().unwrap_or(&app),
                created["upstream"].as_str().unwrap_or(upstream.as_ref()),
                created["timeout_ms"]
            );
        }
        AppsCommand::List { json } => {
            let apps = connect()?.list_apps().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "apps": apps }))?
                );
            } else {
                let width = apps
                    .iter()
                    .filter_map(|a| a["app"].as_str())
                    .map(str::len)
                    .max()
                    .unwrap_or(0)
                    .max(3);
                println!(
                    "{:<width$}  {:<10}  {:<11}  UPSTREAM",
                    "APP", "TIMEOUT", "CONCURRENCY"
                );
                for a in &apps {
                    // Upstreams of other users' apps are not shown.
                    let mut upstream = a["upstream"].as_str().unwrap_or("-").to_owned();
                    if a["builtin"].as_bool() == Some(true) {
                        upstream.push_str(" (built in)");
                    }
                    let concurrency = a["concurrency"]
                        .as_i64()
                        .map_or_else(|| "default".to_owned(), |n| n.to_string());
                    println!(
                        "{:<width$}  {:<10}  {:<11}  {}",
                        a["app"].as_str().unwrap_or(""),
                        format!("{}ms", a["timeout_ms"]),
                        concurrency,
                        upstream
                    );
                }
                if apps.is_empty() {
                    println!("(no apps)");
                }
            }
        }
        AppsCommand::Rm { app } => {
            connect()?.delete_app(&app).await?;
            println!("Removed {app}.");
        }
    }
    Ok(())
}

/// `fal run OWNER/NAME --data JSON|@FILE [--stream]`.
pub async fn run(
    host: &str,
    explicit: Option<&str>,
    app: &str,
    data: &str,
    stream: bool,
) -> anyhow::Result<()> {
    let body = match data.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
        None => data.as_bytes().to_vec(),
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .context("--data must be JSON (or @FILE holding JSON)")?;
    let client = client(host, explicit)?;
    if stream {
        return print_events(client.stream(app, body).await?).await;
    }
    print_answer(&client.run(app, body).await?)
}

/// Prints a model's answer on stdout: JSON pretty-printed, anything else
/// as it came.
pub(crate) fn print_answer(answer: &fal_client::RunResponse) -> anyhow::Result<()> {
    let is_json = answer
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("json"));
    let mut out = std::io::stdout().lock();
    match serde_json::from_slice::<serde_json::Value>(&answer.body) {
        Ok(v) if is_json => writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?,
        _ => out.write_all(&answer.body)?,
    }
    Ok(())
}

/// Prints each event's data on a line of its own as it arrives: JSON
/// compacted to one line, anything else as sent.
async fn print_events(mut events: fal_client::EventStream) -> anyhow::Result<()> {
    while let Some(data) = events.next_event().await? {
        let line = match serde_json::from_str::<serde_json::Value>(&data) {
            Ok(v) => v.to_string(),
            Err(_) => data,
        };
        // stdout is line-buffered: each event is out before the next is read.
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_duration_ms, parse_new_app};

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("3"), Ok(3_000));
        assert!(parse_duration_ms("0s").is_err());
        assert_eq!(parse_duration_ms("7d"), Ok(7 * 86_400_000));
        assert!(parse_duration_ms("5w").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn new_apps_are_refused_before_sending_in_the_servers_words() {
        let (owner, name, upstream) = parse_new_app("acme/sdxl", "http://127.0.0.1:9/").unwrap();
        assert_eq!(
            (owner.as_ref(), name.as_ref(), upstream.as_ref()),
            ("acme", "sdxl", "http://127.0.0.1:9")
        );
        let refusal = |app, upstream| parse_new_app(app, upstream).unwrap_err().to_string();
        assert!(refusal("acme", "http://x").contains("OWNER/NAME"));
        assert!(refusal("Acme/x", "http://x").starts_with("owner \"Acme\" must be 1 to 64"));
        assert!(refusal("acme/-x", "http://x").starts_with("name \"-x\" must be 1 to 64"));
        assert_eq!(
            refusal("acme/x", "ftp://nowhere"),
            "upstream scheme must be http or https, not \"ftp\""
        );
    }
}
