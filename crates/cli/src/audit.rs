//! `fal audit`: the caller's own audit events, newest first.

use fal_client::AuditEvent;
use fal_core::{AuditKind, KeyId};

use crate::AuditArgs;
use crate::keys::client;

/// Runs `fal audit`.
pub async fn audit_command(
    host: &str,
    explicit: Option<&str>,
    args: AuditArgs,
) -> anyhow::Result<()> {
    // Checked by the server's own rules before anything is sent.
    if let Some(k) = &args.kind {
        k.parse::<AuditKind>()?;
    }
    if let Some(k) = &args.key_id {
        k.parse::<KeyId>()
            .map_err(|_| anyhow::anyhow!("--key-id {k:?} is not a key id (a UUID)"))?;
    }
    let events = client(host, explicit)?
        .audit_events(args.limit, args.kind.as_deref(), args.key_id.as_deref())
        .await?;
    if args.json {
        let json = serde_json::json!({ "events": events });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", audit_table(&events));
    }
    Ok(())
}

/// The events as a table: time, kind, actor, object, source.
pub fn audit_table(events: &[AuditEvent]) -> String {
    const COLUMNS: usize = 5;
    let headers = ["TIME", "KIND", "ACTOR", "OBJECT", "SOURCE"];
    let rows: Vec<[String; COLUMNS]> = events
        .iter()
        .map(|e| {
            [
                e.at.clone(),
                e.kind.clone(),
                e.actor_label.clone(),
                if e.object.is_empty() {
                    "-".into()
                } else {
                    e.object.clone()
                },
                e.source.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; COLUMNS]| {
        let mut s = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            s.push_str(&format!("{cell:<w$}  "));
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    if rows.is_empty() {
        out.push_str("(no events)\n");
    }
    out
}
