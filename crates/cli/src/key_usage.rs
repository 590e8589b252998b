//! `fal key usage KEY_ID`: a key's calls over the last 30 days, per day
//! (or per hour with `--hourly`), accepted and refused by reason; and the
//! plain-text tables the key commands print.

use fal_client::{Client, KeyUsage, UsageCounts};

/// Runs `fal key usage` with `client`.
pub async fn usage_command(
    client: Client,
    key_id: &str,
    since: Option<&str>,
    hourly: bool,
    json: bool,
) -> anyhow::Result<()> {
    let usage = client.key_usage(key_id, since).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else {
        print!("{}", usage_table(&usage, hourly));
    }
    Ok(())
}

/// The usage table: one row per day (`YYYY-MM-DD`) or hour
/// (`YYYY-MM-DD HH:00`) with calls, then the totals.
pub fn usage_table(usage: &KeyUsage, hourly: bool) -> String {
    let mut periods: Vec<(String, UsageCounts)> = Vec::new();
    for h in &usage.hours {
        let label = if hourly {
            // `2026-12-01T10:00:00.000Z` → `2026-12-01 10:00`.
            h.hour.get(..16).unwrap_or(&h.hour).replacen('T', " ", 1)
        } else {
            h.hour.get(..10).unwrap_or(&h.hour).to_owned()
        };
        match periods.last_mut() {
            Some((last, sum)) if *last == label => sum.add(&h.counts),
            _ => periods.push((label, h.counts)),
        }
    }
    let row = |label: String, c: &UsageCounts| {
        [
            label,
            c.accepted.to_string(),
            c.refused.to_string(),
            c.wrong_secret.to_string(),
            c.revoked.to_string(),
            c.rate_limited.to_string(),
            c.expired.to_string(),
        ]
    };
    let mut rows: Vec<[String; 7]> = periods.into_iter().map(|(l, c)| row(l, &c)).collect();
    let empty = rows.is_empty();
    rows.push(row("TOTAL".into(), &usage.totals));
    let first = if hourly { "HOUR (UTC)" } else { "DAY (UTC)" };
    let headers = [
        first,
        "ACCEPTED",
        "REFUSED",
        "WRONG SECRET",
        "REVOKED",
        "RATE LIMITED",
        "EXPIRED",
    ];
    let mut out = format!("Usage of key {} since {}\n", usage.key_id, usage.since);
    out.push_str(&table(headers, &rows));
    if empty {
        out.push_str("(no calls)\n");
    }
    out
}

/// A plain table: columns padded to their widest cell, two spaces apart.
pub fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use fal_client::UsageHour;

    use super::*;

    fn counts(accepted: u64, revoked: u64) -> UsageCounts {
        UsageCounts {
            accepted,
            refused: revoked,
            revoked,
            ..UsageCounts::default()
        }
    }

    fn usage() -> KeyUsage {
        let hour = |h: &str, c| UsageHour {
            hour: h.into(),
            counts: c,
        };
        KeyUsage {
            key_id: "k1".into(),
            since: "2026-11-01T10:00:00.000Z".into(),
            hours: vec![
                hour("2026-11-30T10:00:00.000Z", counts(2, 0)),
                hour("2026-11-30T11:00:00.000Z", counts(3, 1)),
                hour("2026-12-01T00:00:00.000Z", counts(1, 0)),
            ],
            totals: counts(6, 1),
        }
    }

    #[test]
    fn days_sum_their_hours_and_the_totals_come_last() {
        let t = usage_table(&usage(), false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[1].starts_with("DAY (UTC)"), "{t}");
        let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            cells(lines[2]),
            ["2026-11-30", "5", "1", "0", "1", "0", "0"]
        );
        assert_eq!(
            cells(lines[3]),
            ["2026-12-01", "1", "0", "0", "0", "0", "0"]
        );
        assert_eq!(cells(lines[4]), ["TOTAL", "6", "1", "0", "1", "0", "0"]);
    }

    #[test]
    fn hourly_shows_every_hour() {
        let t = usage_table(&usage(), true);
        assert!(t.contains("2026-11-30 11:00  3"), "{t}");
        assert_eq!(t.lines().count(), 6, "{t}");
    }

    #[test]
    fn no_calls_says_so() {
        let mut u = usage();
        u.hours.clear();
        u.totals = UsageCounts::default();
        assert!(usage_table(&u, false).ends_with("(no calls)\n"));
    }
}
