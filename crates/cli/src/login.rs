//! `fal auth login` (GitHub's device flow, through the server) and
//! `fal auth logout`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fal_client::session::{self, SessionFile};
use fal_client::{Client, ClientError, DevicePoll, normalize_host};

/// The login file, if it holds a login for `host`.
pub fn login_for(host: &str) -> Option<PathBuf> {
    let path = session::file_path()?;
    let file = SessionFile::load(&path)?;
    (normalize_host(&file.host) == normalize_host(host)).then_some(path)
}

/// `fal auth login`.
pub async fn login(host: &str, no_browser: bool) -> anyhow::Result<()> {
    let path = session::file_path()
        .context("neither FAL_HOME_DIR nor HOME is set: set FAL_HOME_DIR to keep the login")?;
    let client = Client::new(host, None);
    let start = client.device_start().await?;
    let code = start["device_code"].as_str().unwrap_or_default().to_owned();
    let user_code = start["user_code"].as_str().unwrap_or_default();
    let uri = start["verification_uri"].as_str().unwrap_or_default();
    let mut interval = start["interval"].as_u64().unwrap_or(5);
    let deadline =
        Instant::now() + Duration::from_secs(start["expires_in"].as_u64().unwrap_or(900));
    println!("First copy your one-time code: {user_code}");
    println!("Then open {uri} in a browser and enter it.");
    let _ = std::io::stdout().flush();
    if !no_browser {
        // Best effort: a headless machine has no browser, and that is fine.
        let _ = std::process::Command::new("xdg-open")
            .arg(uri)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let spin = std::io::stderr().is_terminal();
    let frames = ['|', '/', '-', '\\'];
    let mut n = 0usize;
    let done = loop {
        // Honour the interval; draw the spinner meanwhile.
        let until = Instant::now() + Duration::from_secs(interval);
        while Instant::now() < until {
            if spin {
                eprint!("\r{} Waiting for GitHub…", frames[n % frames.len()]);
                n += 1;
            }
            tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
        if Instant::now() > deadline {
            bail!("the code expired before it was entered: run `fal auth login` again");
        }
        match client.device_poll(&code).await {
            Ok(DevicePoll::Pending) => {}
            Ok(DevicePoll::SlowDown(i)) => interval = i.max(interval + 1),
            Ok(done @ DevicePoll::Done { .. }) => break done,
            Err(ClientError::Api { detail, .. }) => {
                if spin {
                    eprintln!();
                }
                bail!("{detail}");
            }
            Err(e) => return Err(e.into()),
        }
    };
    if spin {
        eprint!("\r                      \r");
    }
    let DevicePoll::Done {
        access_token,
        refresh_token,
        expires_in,
        nickname,
        full_name,
    } = done
    else {
        bail!("unexpected answer from the server");
    };
    SessionFile {
        host: normalize_host(host),
        access_token,
        refresh_token,
        expires_at: session::unix_now() + expires_in,
        nickname: nickname.clone(),
    }
    .save(&path)
    .with_context(|| format!("cannot save the login to {}", path.display()))?;
    if full_name.is_empty() {
        println!("Welcome, {nickname}! You are signed in with GitHub.");
    } else {
        println!("Welcome, {full_name} ({nickname})! You are signed in with GitHub.");
    }
    Ok(())
}

/// `fal auth logout`.
pub async fn logout(host: &str) -> anyhow::Result<()> {
    let Some(path) = session::file_path() else {
        bail!("neither FAL_HOME_DIR nor HOME is set");
    };
    let Some(file) = SessionFile::load(&path) else {
        println!("Not signed in.");
        return Ok(());
    };
    let server = if file.host.is_empty() {
        normalize_host(host)
    } else {
        file.host.clone()
    };
    if let Err(e) = Client::new(&server, None).logout(&file).await {
        eprintln!(
            "warning: could not end the session on the server ({e}); removing the local login anyway"
        );
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("Signed out of {server}.");
    Ok(())
}
