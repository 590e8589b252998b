//! `fal auth login|logout|whoami` with GitHub (a fake one, run by the test)
//! through the real `fal` binary, and key-based auth taking precedence.

use std::path::Path;
use std::process::Output;

use crate::fake_github::{CLIENT_ID, CLIENT_SECRET, FakeGithub, GITHUB_TOKEN};
use crate::harness::{Server, fal, parse_pair, stderr};

fn server(
    dir: &Path,
    fake: &FakeGithub,
    allow: &[&str],
    extra: &[&str],
    log: Option<&str>,
) -> Server {
    let mut args = vec![
        "--github-client-id",
        CLIENT_ID,
        "--github-client-secret",
        CLIENT_SECRET,
        "--github-url",
        &fake.url,
        "--github-api-url",
        &fake.url,
    ];
    let allow_users = allow.join(",");
    if !allow.is_empty() {
        args.extend(["--github-allow-users", allow_users.as_str()]);
    }
    args.extend_from_slice(extra);
    let home = dir.join("home").display().to_string();
    Server::start_with(&dir.join("data"), log, &args, &[("FAL_HOME_DIR", &home)])
}

fn login(s: &Server) -> Output {
    s.run(&["auth", "login", "--no-browser"], &[])
}

fn auth_file(dir: &Path) -> std::path::PathBuf {
    dir.join("home/auth.json")
}

#[test]
fn login_then_whoami_keys_belong_to_the_github_user_and_keys_win() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    fake.script(&["pending", "ok"]);
    let s = server(dir.path(), &fake, &["octocat"], &[], None);
    let out = login(&s);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("ABCD-1234"), "{text}");
    assert!(text.contains(&format!("{}/login/device", fake.url)));
    assert!(text.contains("Welcome, The Octocat (octocat)!"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(auth_file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let who = s.run(&["auth", "whoami"], &[]);
    let who = String::from_utf8_lossy(&who.stdout).into_owned();
    assert!(
        who.contains("octocat") && who.contains("GitHub login session"),
        "{who}"
    );

    // A key made while signed in belongs to the GitHub user.
    let out = s.run(&["key", "generate", "--scope", "API"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = parse_pair(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let as_key = s.ok(&key, &["auth", "whoami", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&as_key).unwrap();
    assert_eq!(v["user"]["nickname"], "octocat");

    // With both a key and a login present, the key wins, for the CLI and the server.
    let admin = s.bootstrap();
    let both = s.ok(&admin, &["auth", "whoami", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&both).unwrap();
    assert_eq!(v["user"]["nickname"], "admin");
    assert_eq!(v["user"]["credential"]["type"], "key");
    assert_eq!(v["user"]["credential"]["key_id"], admin.id.as_str());
    assert_eq!(v["credential_source"], "FAL_KEY_ID/FAL_KEY_SECRET");
    s.stop();
}

#[test]
fn the_cli_honours_the_interval_and_slow_down() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    fake.script(&["pending", "slow_down", "ok"]);
    let s = server(dir.path(), &fake, &["octocat"], &[], None);
    let out = login(&s);
    assert!(out.status.success(), "{}", stderr(&out));
    let polls = fake.polls();
    assert_eq!(polls.len(), 3);
    let gap1 = polls[1] - polls[0];
    let gap2 = polls[2] - polls[1];
    assert!(
        gap1.as_millis() >= 950,
        "polled faster than the interval: {gap1:?}"
    );
    assert!(gap2.as_millis() >= 1950, "did not slow down: {gap2:?}");
    s.stop();
}

#[test]
fn expired_denied_and_disallowed_sign_ins_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    let s = server(dir.path(), &fake, &["someone-else"], &[], None);
    fake.script(&["expired"]);
    let out = login(&s);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    fake.script(&["denied"]);
    let out = login(&s);
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    fake.script(&["ok"]);
    let out = login(&s);
    assert!(
        stderr(&out).contains("octocat may not sign in"),
        "{}",
        stderr(&out)
    );
    assert!(!auth_file(dir.path()).exists());
    s.stop();

    // With no allow-list at all, nobody may sign in, and the message says which setting to change.
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &fake, &[], &[], None);
    fake.script(&["ok"]);
    let out = login(&s);
    assert!(
        stderr(&out).contains("--github-allow-users"),
        "{}",
        stderr(&out)
    );
    s.stop();
}

#[test]
fn org_members_may_sign_in_and_a_renamed_login_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    fake.state.lock().unwrap().orgs = vec!["acme".into()];
    let s = server(
        dir.path(),
        &fake,
        &[],
        &["--github-allow-orgs", "acme"],
        None,
    );
    assert!(login(&s).status.success());
    let out = s.run(
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--alias",
            "before rename",
        ],
        &[],
    );
    let key = parse_pair(&String::from_utf8_lossy(&out.stdout)).unwrap();
    fake.set_user(583231, "octo-renamed", "The Octocat");
    assert!(login(&s).status.success());
    let who = String::from_utf8_lossy(&s.run(&["auth", "whoami"], &[]).stdout).into_owned();
    assert!(who.contains("octo-renamed"), "{who}");
    let list = String::from_utf8_lossy(&s.run(&["key", "list"], &[]).stdout).into_owned();
    assert!(
        list.contains(&key.id) && list.contains("before rename"),
        "{list}"
    );
    s.stop();
}

#[test]
fn tokens_refresh_transparently_even_with_concurrent_cli_processes() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    // 32-second access tokens: two seconds after login the token is inside
    // the CLI's 30-second refresh margin, so the first command to take the
    // lock must refresh and the others must pick up its new token.
    let s = server(
        dir.path(),
        &fake,
        &["octocat"],
        &["--access-token-ttl", "32s"],
        None,
    );
    assert!(login(&s).status.success());
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(auth_file(dir.path())).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let children: Vec<_> = (0..6)
        .map(|_| {
            let mut c = crate::harness::fal();
            c.env("FAL_HOST", &s.url)
                .envs(s.env.iter().map(|(k, v)| (k, v)))
                .args(["auth", "whoami"]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent whoami failed: {}",
            stderr(&out)
        );
    }
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(auth_file(dir.path())).unwrap()).unwrap();
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "the refresh token rotated"
    );
    s.stop();
}

#[test]
fn logout_ends_the_session_everywhere_and_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    let s = server(dir.path(), &fake, &["octocat"], &[], Some("trace"));
    assert!(login(&s).status.success());
    let file = auth_file(dir.path());
    let copy = std::fs::read_to_string(&file).unwrap();
    let tokens: serde_json::Value = serde_json::from_str(&copy).unwrap();
    assert!(s.run(&["auth", "whoami"], &[]).status.success());
    let out = s.run(&["auth", "logout"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!file.exists());
    // A copy kept from before logout works no more: neither token.
    std::fs::write(&file, &copy).unwrap();
    let out = s.run(&["auth", "whoami"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("fal auth login"), "{}", stderr(&out));
    let refreshed = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}/auth/refresh", s.url))
        .args(["-H", "content-type: application/json", "-d"])
        .arg(format!(
            r#"{{"refresh_token": "{}"}}"#,
            tokens["refresh_token"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refreshed.stdout), "401");
    // Without credentials at all, the message says both ways in.
    std::fs::remove_file(&file).unwrap();
    let out = s.run(&["key", "list"], &[]);
    assert!(stderr(&out).contains("fal auth login") && stderr(&out).contains("FAL_KEY_ID"));
    let log = s.stop();
    for secret in [
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
        GITHUB_TOKEN,
        CLIENT_SECRET,
    ] {
        assert!(!log.contains(secret), "a token reached the server's log");
    }
}

#[test]
fn numeric_ids_allow_sign_in_and_a_login_alone_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    let s = server(
        dir.path(),
        &fake,
        &[],
        &["--github-allow-user-ids", "1,583231"],
        None,
    );
    let out = login(&s);
    assert!(out.status.success(), "{}", stderr(&out));
    // Someone else who took the login "octocat" has another id.
    fake.set_user(4242, "octocat", "Someone Else");
    let out = login(&s);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--github-allow-user-ids"),
        "{}",
        stderr(&out)
    );
    s.stop();
}

#[test]
fn the_public_url_is_checked_and_names_the_callback_to_register() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGithub::start();
    let s = server(
        dir.path(),
        &fake,
        &["octocat"],
        &["--public-url", "https://fal.example.com/"],
        None,
    );
    assert!(
        s.banner
            .contains("returns to https://fal.example.com/auth/github/callback"),
        "{}",
        s.banner
    );
    s.stop();
    // Port 0 and no --public-url: the banner says the web flow is off.
    let other = tempfile::tempdir().unwrap();
    let s = server(other.path(), &fake, &["octocat"], &[], None);
    assert!(s.banner.contains("--public-url"), "{}", s.banner);
    s.stop();
    let out = fal()
        .args([
            "serve",
            "--public-url",
            "https://fal.example.com/fal",
            "--data-dir",
        ])
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("origin only"), "{}", stderr(&out));
}
