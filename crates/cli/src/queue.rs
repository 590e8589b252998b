//! `fal run OWNER/NAME --queue`: submits to `/queue/OWNER/NAME`, follows
//! the request's status stream (`…/status/stream?logs=1`) and prints the
//! answer.
//!
//! The stream rather than polling: one connection sees each change as the
//! server does (it looks every 100 ms), without a polling interval to pick
//! and without spending the key's rate limit on status calls. If the
//! stream breaks off before `COMPLETED`, one status call tells whether it
//! is done; if not, the stream is followed again (log lines already shown
//! are not shown twice).
//!
//! On stderr: `Request ID`, then a spinner with the status when stderr is
//! a terminal, else one plain line per change (`IN_QUEUE (position 0)`,
//! `IN_PROGRESS`, `COMPLETED`); and each log line (`[INFO] Started on …`).
//! Ctrl-C while waiting cancels the request (`PUT …/cancel`) and exits
//! nonzero.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use fal_client::{Cancelled, Client, QueueStatus};

use crate::keys::client;

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// What the user sees on stderr while waiting.
struct Progress {
    tty: bool,
    frame: usize,
    current: String,
}

impl Progress {
    fn status(&mut self, text: String) {
        if text == self.current {
            return;
        }
        if !self.tty {
            eprintln!("{text}");
        }
        self.current = text;
        self.draw();
    }

    fn log(&mut self, level: &str, message: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("[{level}] {message}");
        self.draw();
    }

    fn spin(&mut self) {
        self.frame = (self.frame + 1) % FRAMES.len();
        self.draw();
    }

    fn draw(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{} {}\x1b[K", FRAMES[self.frame], self.current);
            let _ = err.flush();
        }
    }

    /// Leaves the last status on a line of its own.
    fn finish(&mut self) {
        if self.tty {
            eprintln!("\r{}\x1b[K", self.current);
        }
    }
}

fn status_text(s: &QueueStatus) -> String {
    match (s.status.as_str(), s.queue_position) {
        ("IN_QUEUE", Some(n)) => format!("IN_QUEUE (position {n})"),
        (other, _) => other.to_owned(),
    }
}

/// `fal run OWNER/NAME --queue [--data JSON|@FILE]`.
pub async fn run_queued(
    host: &str,
    explicit: Option<&str>,
    app: &str,
    data: &str,
) -> anyhow::Result<()> {
    let body = match data.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
        None => data.as_bytes().to_vec(),
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .context("--data must be JSON (or @FILE holding JSON)")?;
    let client = client(host, explicit)?;
    let submitted = client.submit(app, body, None).await?;
    let id = submitted.request_id;
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        frame: 0,
        current: String::new(),
    };
    eprintln!("Request {id}");
    progress.status(match submitted.queue_position {
        Some(n) => format!("IN_QUEUE (position {n})"),
        None => "IN_QUEUE".into(),
    });
    let followed = tokio::select! {
        done = follow(&client, app, &id, &mut progress) => Some(done),
        _ = tokio::signal::ctrl_c() => None,
    };
    progress.finish();
    let done = match followed {
        Some(done) => done?,
        // Interrupted: nobody will read the answer, so stop the request.
        None => match client.cancel(app, &id).await {
            Ok(Cancelled::Requested) => anyhow::bail!("interrupted: request {id} was cancelled"),
            Ok(Cancelled::AlreadyCompleted) => {
                anyhow::bail!("interrupted: request {id} had already completed")
            }
            Err(e) => anyhow::bail!("interrupted: cancelling request {id} failed: {e}"),
        },
    };
    if let Some(error) = done.error {
        anyhow::bail!("{error} (request {id})");
    }
    crate::apps::print_answer(&client.result(app, &id).await?)
}

/// Follows the status stream until `COMPLETED`; returns that status.
async fn follow(
    client: &Client,
    app: &str,
    id: &str,
    progress: &mut Progress,
) -> anyhow::Result<QueueStatus> {
    let mut shown_lines = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        let mut stream = client.status_stream(app, id, true).await?;
        // A new stream starts the log from its first line.
        let mut lines_here = 0usize;
        loop {
            let next = tokio::select! {
                next = stream.next_status() => next?,
                _ = ticker.tick(), if progress.tty => {
                    progress.spin();
                    continue;
                }
            };
            let Some(status) = next else { break };
            progress.status(status_text(&status));
            for line in status.logs.iter().flatten() {
                lines_here += 1;
                if lines_here > shown_lines {
                    shown_lines = lines_here;
                    progress.log(&line.level, &line.message);
                }
            }
            if status.is_completed() {
                return Ok(status);
            }
        }
        let now = client.status(app, id, false).await?;
        if now.is_completed() {
            progress.status(status_text(&now));
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
