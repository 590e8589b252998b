//! The dashboard in a real browser: headless Chromium (Debian's), driven
//! by playwright-core from `tests/browser/*.mjs`: the keys page
//! (`keys_page.mjs`; `keys_expiry.mjs` for expiry and roll;
//! `usage_chart.mjs` for the usage chart) and the Activity page
//! (`activity_page.mjs`). Needs what
//! `scripts/setup-browser.sh` installs; without it the tests say so loudly
//! and pass, except under CI, where they fail. Set `FAL_SCREENSHOTS=DIR`
//! to save a screenshot of each page.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Server;

/// Where playwright-core is, when the browser tools are installed.
fn browser_tools() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let playwright = root.join("target/browser-tests");
    if !Path::new("/usr/bin/chromium").exists()
        || !playwright.join("node_modules/playwright-core").exists()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium or playwright-core is missing: run scripts/setup-browser.sh"
        );
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPED browser test: run scripts/setup-browser.sh (Chromium + playwright-core) ***"
        );
        return None;
    }
    Some(playwright)
}

/// Runs `tests/browser/SCRIPT` with `env`; asserts it printed `passed`.
fn run_script(script: &str, playwright: &Path, env: &[(&str, &str)], passed: &str) {
    let mut cmd = Command::new("node");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/browser")
            .join(script),
    )
    .env("PLAYWRIGHT_DIR", playwright)
    .envs(env.iter().copied());
    if let Some(shots) = std::env::var_os("FAL_SCREENSHOTS") {
        cmd.env("SHOTS", shots);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(passed), "{stdout}");
}

/// Runs `tests/browser/SCRIPT` against a fresh `fal serve --demo`, signed
/// in with its bootstrap key; checks that no secret reached the log.
fn run_on_demo(script: &str, passed: &str) {
    let Some(playwright) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    let admin = server.bootstrap();
    let env = [
        ("FAL_URL", server.url.as_str()),
        ("ADMIN_ID", admin.id.as_str()),
        ("ADMIN_SECRET", admin.secret.as_str()),
    ];
    run_script(script, &playwright, &env, passed);
    let log = server.stop();
    assert!(!log.contains(&admin.secret), "a secret reached the log");
}

#[test]
fn the_keys_page_generates_shows_once_limits_and_revokes_in_chromium() {
    run_on_demo("keys_page.mjs", "browser test passed");
}

#[test]
fn the_activity_page_shows_the_key_generated_event_in_chromium() {
    run_on_demo("activity_page.mjs", "activity browser test passed");
}

#[test]
fn the_keys_page_generates_with_an_expiry_shows_it_and_rolls_in_chromium() {
    run_on_demo("keys_expiry.mjs", "expiry browser test passed");
}

#[test]
fn the_keys_page_charts_the_calls_of_a_key_in_chromium() {
    let Some(playwright) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, key) =
        crate::harness::server_with_counted_key(&dir.path().join("data"), "charted", 4);
    let env = [
        ("FAL_URL", server.url.as_str()),
        ("ADMIN_ID", admin.id.as_str()),
        ("ADMIN_SECRET", admin.secret.as_str()),
        ("KEY_ID", key.id.as_str()),
        ("ACCEPTED", "4"),
        ("REFUSED", "1"),
    ];
    run_script(
        "usage_chart.mjs",
        &playwright,
        &env,
        "usage chart test passed",
    );
    server.stop();
}
