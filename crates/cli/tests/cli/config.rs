//! `fal serve --config FILE` (or `FAL_CONFIG`): a TOML file with one key
//! per flag, under the environment, under the flags; secrets read from
//! files (`FAL_*_FILE`); `--print-config`. Errors name the key and the
//! file's line, and no secret is ever printed or logged.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Server, fal, stderr};

/// Writes `text` to `dir/name` with `mode`.
fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}

/// `fal serve ARGS` with `env`, running.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = fal();
    cmd.arg("serve").args(args).env("FAL_LOG_FORMAT", "text");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = dir.join(format!("serve-{}.log", std::process::id()));
    Server::spawn(cmd, log, Vec::new())
}

/// `fal serve ARGS` with `env`, run to its end.
fn serve_output(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = fal();
    cmd.arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_config_file_sets_what_the_server_runs_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = write(
        dir.path(),
        "fal.toml",
        &format!(
            "# fal serve's settings\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
             demo = true\naccess_log = \"off\"\nqueue_concurrency = 2\n",
            s(&data)
        ),
        0o600,
    );
    let server = serve(dir.path(), &["--config", &s(&config)], &[]);
    assert!(server.banner.contains(&s(&data)), "{}", server.banner);
    assert!(
        server.banner.contains(&format!("config: {}\n", s(&config))),
        "{}",
        server.banner
    );
    assert!(server.banner.contains("demo app: fal-ai/echo"));
    let admin = server.bootstrap();
    let out = server.ok(&admin, &["run", "fal-ai/echo", "-d", "{\"from\":\"file\"}"]);
    assert!(out.contains("file"), "{out}");
    assert!(data.join("fal.db").is_file());
    let log = server.stop();
    assert!(!log.contains("fal::access"), "access_log = \"off\": {log}");
}

#[test]
fn the_environment_wins_over_the_file_and_a_flag_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let config = write(
        dir.path(),
        "fal.toml",
        &format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n", s(&a)),
        0o600,
    );
    // FAL_CONFIG names the file.
    let env = [("FAL_CONFIG", s(&config)), ("FAL_DATA_DIR", s(&b))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = serve(dir.path(), &[], &env);
    assert!(
        server.banner.contains(&s(&b.join("fal.db"))),
        "{}",
        server.banner
    );
    server.stop();
    let server = serve(dir.path(), &["--data-dir", &s(&c)], &env);
    assert!(
        server.banner.contains(&s(&c.join("fal.db"))),
        "{}",
        server.banner
    );
    server.stop();
    assert!(!a.exists(), "the file's data_dir was overridden both times");
}

#[test]
fn print_config_shows_every_source_masks_secrets_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write(
        dir.path(),
        "fal.toml",
        &format!(
            "data_dir = \"{}\"\nqueue_concurrency = 3\nmax_staleness = \"2s\"\nworkers = 2\n\
             github_client_id = \"Iv1.client\"\noperators = [\"alice\", \"1234\"]\n",
            s(&data)
        ),
        0o600,
    );
    let secret = write(dir.path(), "gh-secret", "gh-s3cret-value\n", 0o600);
    let out = serve_output(
        &["--config", &s(&config), "--print-config", "--workers", "6"],
        &[
            ("FAL_QUEUE_CONCURRENCY", "5"),
            ("FAL_WORKERS", "4"),
            ("FAL_DATABASE_URL", "postgres://fal:hunter2@db.example/fal"),
            ("FAL_GITHUB_CLIENT_SECRET_FILE", &s(&secret)),
        ],
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(out.status.success(), "{}{text}", stderr(&out));
    let c = s(&config);
    for line in [
        format!("# config file: {c}"),
        "queue_concurrency = 5  # env FAL_QUEUE_CONCURRENCY".into(),
        format!("max_staleness = \"2s\"  # {c}:3"),
        "workers = 6  # flag --workers".into(),
        format!("operators = [\"alice\", \"1234\"]  # {c}:6"),
        "listen = \"127.0.0.1:8420\"  # default".into(),
        "database_url = \"********\"  # env FAL_DATABASE_URL".into(),
        format!(
            "github_client_secret = \"********\"  # read from {} (FAL_GITHUB_CLIENT_SECRET_FILE)",
            s(&secret)
        ),
        "# public_url: not set".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let all = format!("{text}{}", stderr(&out));
    assert!(
        !all.contains("hunter2") && !all.contains("gh-s3cret"),
        "{all}"
    );
    assert!(!all.contains("listening"), "{all}");
    assert!(!data.exists(), "--print-config created the data directory");
}

#[test]
fn an_unknown_key_or_a_bad_value_stops_fal_serve_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line, key) in [
        (
            "listen = \"127.0.0.1:0\"\nlisten_address = \"x\"\n",
            2,
            "listen_address",
        ),
        (
            "listen = \"127.0.0.1:0\"\n\nqueue_concurrency = \"many\"\n",
            3,
            "queue_concurrency",
        ),
        ("queue_concurrency = 0\n", 1, "queue_concurrency"),
        ("demo = \"yes\"\n", 1, "demo"),
    ] {
        let config = write(dir.path(), "fal.toml", text, 0o600);
        let out = serve_output(&["--config", &s(&config)], &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(
            err.contains(&format!("{}:{line}:", s(&config))) && err.contains(&format!("`{key}`")),
            "{text:?}: {err}"
        );
    }
    let out = serve_output(&["--config", &s(&dir.path().join("missing.toml"))], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn secrets_come_from_files_never_reach_the_log_and_come_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 0644: works, with a warning that names the file, not its content.
    let secret = write(dir.path(), "gh-secret", "gh-s3cret-value\n", 0o644);
    let env = [
        ("FAL_GITHUB_CLIENT_ID", "Iv1.client".to_owned()),
        ("FAL_GITHUB_CLIENT_SECRET_FILE", s(&secret)),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", &s(&data)],
        &env,
    );
    assert!(
        server.banner.contains("GitHub sign-in: on"),
        "{}",
        server.banner
    );
    let admin = server.bootstrap();
    server.ok(&admin, &["auth", "whoami"]);
    assert!(!server.banner.contains("gh-s3cret"), "{}", server.banner);
    let log = server.stop();
    assert!(!log.contains("gh-s3cret"), "the secret is in the log");
    #[cfg(unix)]
    assert!(
        log.contains("readable by every user") && log.contains(&s(&secret)),
        "{log}"
    );

    // Both the value and the file: refused, naming both.
    let out = serve_output(
        &["--data-dir", &s(&data)],
        &[
            ("FAL_GITHUB_CLIENT_ID", "Iv1.client"),
            ("FAL_GITHUB_CLIENT_SECRET", "other"),
            ("FAL_GITHUB_CLIENT_SECRET_FILE", &s(&secret)),
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("FAL_GITHUB_CLIENT_SECRET and FAL_GITHUB_CLIENT_SECRET_FILE"),
        "{err}"
    );
    // A file that is not there: refused, naming it.
    let gone = dir.path().join("gone");
    let out = serve_output(&["--github-client-secret-file", &s(&gone)], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&s(&gone)), "{}", stderr(&out));
}

#[test]
fn the_database_url_comes_from_a_file_on_postgres() {
    let Some(base) = fal_store::testing::postgres_url_or_skip("database URL from a file") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt
        .block_on(fal_store::testing::create_database(&base, "fal_cli"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "db-url", &format!("{url}\n"), 0o600);
    let config = write(
        dir.path(),
        "fal.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase_url_file = \"{}\"\n",
            s(&dir.path().join("data")),
            s(&secret)
        ),
        0o600,
    );
    let server = serve(dir.path(), &["--config", &s(&config)], &[]);
    assert!(
        server.banner.contains("data: postgres://"),
        "{}",
        server.banner
    );
    let admin = server.bootstrap();
    server.ok(&admin, &["auth", "whoami"]);
    server.stop();
    rt.block_on(fal_store::testing::drop_database(&base, &url))
        .unwrap();
}

#[test]
fn the_example_config_file_holds_only_keys_and_values_fal_takes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/fal.toml.example");
    let text = std::fs::read_to_string(&example).unwrap();
    // The commented-out settings too: uncommented, with the credentials
    // they name made here.
    let dir = tempfile::tempdir().unwrap();
    let creds = s(dir.path());
    let mut keys = 0;
    let all: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(setting) if setting.contains(" = ") && !setting.starts_with(' ') => {
                setting.to_owned()
            }
            _ => l.to_owned(),
        })
        .inspect(|l| keys += usize::from(l.contains(" = ")))
        .map(|l| l.replace("/run/credentials/fal.service", &creds) + "\n")
        .collect();
    assert!(keys >= 15, "{keys} keys in the example");
    for name in ["database-url", "github-client-secret"] {
        write(dir.path(), name, "not-a-real-secret\n", 0o600);
    }
    for text in [text, all] {
        let config = write(dir.path(), "fal.toml", &text, 0o600);
        let out = serve_output(&["--config", &s(&config), "--print-config"], &[]);
        assert!(out.status.success(), "{text}\n{}", stderr(&out));
    }
}

/// The `key = value` lines of `--print-config`, without their sources.
fn settings(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.rsplit_once("  # ")
                .map_or(l, |(setting, _)| setting)
                .to_owned()
        })
        .collect()
}

#[test]
fn what_print_config_prints_is_a_config_file_with_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_output(
        &[
            "--print-config",
            "--workers",
            "3",
            "--operators",
            "alice,1234",
            "--demo",
            "--log-format",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first = String::from_utf8(out.stdout).unwrap();
    // Every flag of `fal serve --help` is a key (set or not).
    let help = fal().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut flags = 0;
    for word in help.split_whitespace() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let flag = flag.trim_end_matches([',', '.', ')']);
        if !flag.starts_with(|c: char| c.is_ascii_lowercase())
            // `fal`'s own flags (the client's --host and --key) are not
            // the server's settings.
            || ["help", "config", "print-config", "host", "key"].contains(&flag)
        {
            continue;
        }
        let key = flag.replace('-', "_");
        flags += 1;
        assert!(
            first
                .lines()
                .any(|l| l.starts_with(&format!("{key} = ")) || l == format!("# {key}: not set")),
            "--{flag} is not a key:\n{first}"
        );
    }
    assert!(flags >= 30, "{flags} flags in fal serve --help");
    // Fed back as the config file, it gives the same settings, each from
    // the file.
    let config = write(dir.path(), "fal.toml", &first, 0o600);
    let out = serve_output(&["--config", &s(&config), "--print-config"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = String::from_utf8(out.stdout).unwrap();
    assert_eq!(settings(&first), settings(&second));
    for line in second.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains(&format!("# {}:", s(&config))), "{line}");
    }
}
