//! `fal key usage` (table per day, `--hourly`, `--json`) and the REQUESTS
//! column of `fal key list`, against a real `fal serve` whose counts are
//! written back when it stops (SIGTERM) and read after a restart.

use crate::harness::server_with_counted_key;

#[test]
fn usage_shows_accepted_and_refused_calls_per_day_hour_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, pair) = server_with_counted_key(&dir.path().join("data"), "ci", 3);

    let table = server.ok(&admin, &["key", "usage", &pair.id]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains(&pair.id), "{table}");
    assert!(
        lines[1].starts_with("DAY (UTC)") && lines[1].contains("WRONG SECRET"),
        "{table}"
    );
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let total = cells(lines.last().unwrap());
    assert_eq!(total, ["TOTAL", "3", "1", "1", "0", "0", "0"], "{table}");
    let day = cells(lines[2]);
    assert_eq!(day[1..], total[1..], "{table}");
    assert_eq!(day[0].len(), 10, "{table}");

    let hourly = server.ok(&admin, &["key", "usage", &pair.id, "--hourly"]);
    assert!(
        hourly.lines().nth(1).unwrap().starts_with("HOUR (UTC)"),
        "{hourly}"
    );
    assert!(
        hourly.lines().nth(2).unwrap().contains(":00  3"),
        "{hourly}"
    );

    let json = server.ok(&admin, &["key", "usage", &pair.id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["key_id"], pair.id.as_str());
    assert_eq!(v["totals"]["accepted"], 3);
    assert_eq!(v["totals"]["wrong_secret"], 1);
    assert_eq!(v["hours"].as_array().unwrap().len(), 1, "{json}");

    let list = server.ok(&admin, &["key", "list"]);
    assert!(list.lines().next().unwrap().ends_with("REQUESTS"), "{list}");
    let row = list.lines().find(|l| l.starts_with(&pair.id)).unwrap();
    assert_eq!(row.split_whitespace().last(), Some("3"), "{list}");
    let listed = server.ok(&admin, &["key", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let item = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == pair.id.as_str())
        .unwrap();
    assert_eq!(item["requests"], 3);

    // Somebody's key that is not yours is not found.
    let missing = server.run(
        &["key", "usage", "00000000-0000-4000-8000-000000000000"],
        &[("FAL_KEY_ID", &admin.id), ("FAL_KEY_SECRET", &admin.secret)],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No key"));
    server.stop();
}
