//! `contrib/fal.service`, the systemd unit: checked by systemd's own
//! `systemd-analyze verify` (no warning allowed) and `systemd-analyze
//! security --offline` (exposure at most 2.0), with its `ExecStart`
//! pointed at the binary under test; and its command line, run as systemd
//! would run it, starts `fal serve` and stops cleanly on the unit's
//! `KillSignal`. `systemd-analyze` comes from
//! `scripts/setup-systemd-check.sh`; without it the checks say so loudly
//! and pass, except under CI, where they fail.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{FAL, fal};

fn contrib(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(file)
}

fn unit_text() -> String {
    std::fs::read_to_string(contrib("fal.service")).unwrap()
}

/// Whether `systemd-analyze` runs here.
fn systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but systemd-analyze is missing: run scripts/setup-systemd-check.sh"
        );
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPED systemd unit check: run scripts/setup-systemd-check.sh (systemd-analyze) ***"
        );
    }
    found
}

/// The unit's value for `key` in `[Service]` (the last one, as systemd
/// reads a single-valued setting).
fn setting(unit: &str, key: &str) -> String {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit sets no {key}"))
        .to_owned()
}

#[test]
fn the_unit_verifies_without_a_warning_and_is_sandboxed() {
    if !systemd_analyze() {
        return;
    }
    let unit = unit_text();
    let exec = setting(&unit, "ExecStart");
    let program = exec.split_whitespace().next().unwrap();
    assert_eq!(
        program, "/usr/local/bin/fal",
        "where the README installs fal"
    );
    // The installed path does not exist here: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fal.service");
    std::fs::write(&path, unit.replace(program, FAL)).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on unknown keys and bad values, only warning: any
    // output at all is a failure.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the unit's exposure is above 2.0:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_units_command_line_starts_fal_and_its_kill_signal_stops_it_cleanly() {
    let unit = unit_text();
    assert_eq!(setting(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(setting(&unit, "Restart"), "on-failure");
    // `systemctl reload` sends SIGHUP, which reloads TLS files and stops
    // nothing (`tls_reload::sighup_does_not_stop_a_plain_http_server`).
    assert_eq!(setting(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(setting(&unit, "StateDirectory"), "fal");
    // %S is /var/lib for a system service; a temporary directory here.
    let state = tempfile::tempdir().unwrap();
    let exec = setting(&unit, "ExecStart");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("%S", &state.path().display().to_string()))
        .collect();
    let mut child = fal()
        .args(&args)
        .env("FAL_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("`fal {}` exited before listening", args.join(" "));
        }
        if line.starts_with("fal is listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    let data = state.path().join("fal");
    assert!(data.join("fal.db").is_file(), "no database in %S/fal");
    assert!(data.join("pepper").is_file(), "no pepper in %S/fal");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Exit 0 on SIGTERM: Restart=on-failure does not restart a stop.
    let exit = child.wait().unwrap();
    assert!(exit.success(), "fal serve exited with {exit} on SIGTERM");
}

#[test]
fn the_env_example_names_only_variables_fal_reads() {
    let example = std::fs::read_to_string(contrib("fal.env.example")).unwrap();
    // `fal serve --help` lists each flag's variable, those made at run
    // time (a secret's `_FILE`) too.
    let help = fal().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut named = 0;
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.starts_with("FAL_") && !name.contains(' ') {
            named += 1;
            assert!(
                help.contains(&format!("[env: {name}="))
                    || help.contains(&format!("[env: {name}]")),
                "fal.env.example names {name}, which `fal serve` does not read"
            );
        }
    }
    assert!(named >= 5, "the example names only {named} variables");
}
