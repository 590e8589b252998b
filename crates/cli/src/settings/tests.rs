//! The settings pipeline over files held in memory. Environment variables
//! are left to the CLI tests (`crates/cli/tests/cli/config.rs`), which run
//! the binary with its own environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::print::MASK;
use super::{Files, Parsed, SettingsError, parse};
use crate::{Command, ServeArgs};

#[derive(Default)]
struct Mem(HashMap<PathBuf, (String, bool)>);

impl Mem {
    fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(path.into(), (text.into(), false));
        self
    }

    fn world_readable(mut self, path: &str, text: &str) -> Self {
        self.0.insert(path.into(), (text.into(), true));
        self
    }
}

impl Files for Mem {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .map(|(t, _)| t.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn world_readable(&self, path: &Path) -> bool {
        self.0.get(path).is_some_and(|(_, w)| *w)
    }
}

fn serve(args: &[&str], files: &Mem) -> Result<ServeArgs, SettingsError> {
    let argv = ["fal", "serve"].iter().chain(args);
    match parse(argv, files)? {
        Parsed::Run(cli) => match cli.command {
            Command::Serve(args) => Ok(*args),
            other => panic!("{other:?}"),
        },
        Parsed::Printed(text) => panic!("printed: {text}"),
    }
}

fn printed(args: &[&str], files: &Mem) -> String {
    let argv = ["fal", "serve", "--print-config"].iter().chain(args);
    match parse(argv, files).unwrap() {
        Parsed::Printed(text) => text,
        Parsed::Run(cli) => panic!("runs: {cli:?}"),
    }
}

const C: &str = "/etc/fal/fal.toml";

#[test]
fn the_file_gives_what_no_flag_gives() {
    let files = Mem::default().with(
        C,
        "listen = \"127.0.0.1:9000\"\nqueue_concurrency = 3\ndemo = true\n\
         operators = [\"alice\", 1234]\nmax_staleness = \"2s\"\nqueue_lease = \"9s\"\n\
         trusted_proxies = \"10.0.0.0/8,127.0.0.1\"\n",
    );
    let args = serve(&["--config", C, "--queue-concurrency", "5"], &files).unwrap();
    assert_eq!(args.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(args.queue_concurrency, 5, "the flag wins");
    assert!(args.demo);
    assert_eq!(args.operators, ["alice", "1234"]);
    assert_eq!(args.max_staleness, 2000);
    assert_eq!(args.queue_lease, 9000, "hidden flags are keys too");
    assert_eq!(args.trusted_proxies.len(), 2);
    assert_eq!(args.access_log, "on", "the default where nothing gives it");
}

#[test]
fn false_in_the_file_leaves_a_switch_off() {
    let files = Mem::default().with(C, "demo = false\n");
    assert!(!serve(&["--config", C], &files).unwrap().demo);
    assert!(serve(&["--config", C, "--demo"], &files).unwrap().demo);
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let err = serve(&["--config", "/nowhere/fal.toml"], &Mem::default()).unwrap_err();
    assert!(matches!(err, SettingsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/nowhere/fal.toml"), "{err}");
}

#[test]
fn an_unknown_key_names_itself_and_its_line() {
    let files = Mem::default().with(C, "demo = true\n\nlisten_on = \"x\"\n");
    let err = serve(&["--config", C], &files).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/fal/fal.toml:3: unknown key `listen_on`"),
        "{err}"
    );
    let files = Mem::default().with(C, "queue-concurrency = 2\n");
    let err = serve(&["--config", C], &files).unwrap_err().to_string();
    assert!(err.contains("`queue_concurrency`"), "{err}");
    // Global flags of `fal` (the client's) are not the server's settings.
    let files = Mem::default().with(C, "host = \"x\"\n");
    let err = serve(&["--config", C], &files).unwrap_err().to_string();
    assert!(err.contains("unknown key `host`"), "{err}");
}

#[test]
fn a_bad_value_names_the_key_the_line_and_what_is_wrong() {
    for (text, key, line, why) in [
        (
            "\nqueue_concurrency = \"many\"\n",
            "queue_concurrency",
            2,
            "invalid digit",
        ),
        (
            "queue_concurrency = 0\n",
            "queue_concurrency",
            1,
            "1..=10000",
        ),
        (
            "access_log = \"loud\"\n",
            "access_log",
            1,
            "expected one of: on, off",
        ),
        ("demo = \"yes\"\n", "demo", 1, "true or false"),
        ("listen = [\"127.0.0.1:1\"]\n", "listen", 1, "not a list"),
        (
            "max_staleness = \"5 parsecs\"\n",
            "max_staleness",
            1,
            "unknown unit",
        ),
        (
            "trusted_proxies = [\"10.0.0.0/99\"]\n",
            "trusted_proxies",
            1,
            "",
        ),
        ("x = 1\nqueue_sync = \"sometimes\"\n", "x", 1, "unknown key"),
    ] {
        let files = Mem::default().with(C, text);
        let err = serve(&["--config", C], &files).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{C}:{line}: ")) && err.contains(&format!("`{key}`")),
            "{text:?}: {err}"
        );
        assert!(err.contains(why), "{text:?}: {err}");
    }
}

#[test]
fn a_value_overridden_by_a_flag_is_still_checked() {
    let files = Mem::default().with(C, "queue_concurrency = 0\n");
    let err = serve(&["--config", C, "--queue-concurrency", "4"], &files).unwrap_err();
    assert!(
        matches!(err, SettingsError::BadValue { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn rules_between_flags_hold_for_the_file_and_say_where() {
    let files = Mem::default().with(C, "demo = true\ntls_cert = \"/etc/fal/tls.crt\"\n");
    let err = serve(&["--config", C], &files).unwrap_err();
    let SettingsError::Usage { notes, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        notes.contains(&"--tls-cert is `tls_cert` in /etc/fal/fal.toml:2".to_owned()),
        "{notes:?}"
    );
    assert!(err.to_string().contains("--tls-key"), "{err}");
}

#[test]
fn a_requirement_met_by_the_file_is_met() {
    let files = Mem::default().with(C, "github_client_secret = \"s3cret\"\n");
    let args = serve(&["--config", C, "--github-client-id", "Iv1"], &files).unwrap();
    assert_eq!(args.github.github_client_secret.as_deref(), Some("s3cret"));
}

#[test]
fn a_secret_read_from_a_file_loses_its_trailing_newline_only() {
    let files = Mem::default().with("/run/s", " s3cret \r\n");
    let args = serve(
        &[
            "--github-client-id",
            "Iv1",
            "--github-client-secret-file",
            "/run/s",
        ],
        &files,
    )
    .unwrap();
    assert_eq!(
        args.github.github_client_secret.as_deref(),
        Some(" s3cret ")
    );
    assert!(!format!("{args:?}").contains("s3cret"), "{args:?}");
    assert!(args.warnings.is_empty());
    // The same from the config file, for the database URL.
    let files = Mem::default()
        .with(C, "database_url_file = \"/run/db\"\n")
        .with("/run/db", "postgres://fal:pw@db/fal\n");
    let args = serve(&["--config", C], &files).unwrap();
    assert_eq!(
        args.data.database_url.as_deref(),
        Some("postgres://fal:pw@db/fal")
    );
    assert!(!format!("{args:?}").contains("pw@"), "{args:?}");
}

#[test]
fn a_secret_file_every_user_may_read_is_warned_about() {
    let files = Mem::default().world_readable("/run/s", "s3cret\n");
    let args = serve(&["--database-url-file", "/run/s"], &files).unwrap();
    assert_eq!(args.warnings.len(), 1, "{:?}", args.warnings);
    assert!(args.warnings[0].contains("/run/s"), "{:?}", args.warnings);
    assert!(!args.warnings[0].contains("s3cret"));
}

#[test]
fn a_secret_given_twice_is_an_error_naming_both_places() {
    let files = Mem::default()
        .with(C, "\ngithub_client_secret = \"a\"\n")
        .with("/run/s", "b\n");
    let err = serve(
        &["--config", C, "--github-client-secret-file", "/run/s"],
        &files,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`github_client_secret` in /etc/fal/fal.toml:2"),
        "{err}"
    );
    assert!(err.contains("--github-client-secret-file"), "{err}");
    let err = serve(
        &[
            "--github-client-secret",
            "a",
            "--github-client-secret-file",
            "/run/s",
        ],
        &files,
    )
    .unwrap_err();
    assert!(matches!(err, SettingsError::SecretTwice { .. }), "{err:?}");
}

#[test]
fn a_missing_or_empty_secret_file_is_an_error_naming_it() {
    let files = Mem::default().with(C, "github_client_secret_file = \"/run/gone\"\n");
    let err = serve(&["--config", C], &files).unwrap_err().to_string();
    assert!(err.contains("/run/gone"), "{err}");
    assert!(
        err.contains("`github_client_secret_file` in /etc/fal/fal.toml:1"),
        "{err}"
    );
    let files = Mem::default().with("/run/e", "\n");
    let err = serve(&["--database-url-file", "/run/e"], &files).unwrap_err();
    assert!(matches!(err, SettingsError::EmptySecret { .. }), "{err:?}");
}

#[test]
fn recover_key_reads_the_database_url_from_a_file_too() {
    let files = Mem::default().with("/run/db", "postgres://fal:pw@db/fal\n");
    let argv = [
        "fal",
        "admin",
        "recover-key",
        "--database-url-file",
        "/run/db",
    ];
    let Parsed::Run(cli) = parse(argv, &files).unwrap() else {
        panic!("printed");
    };
    let Command::Admin(crate::AdminCommand::RecoverKey { data }) = cli.command else {
        panic!("{:?}", cli.command);
    };
    assert_eq!(
        data.database_url.as_deref(),
        Some("postgres://fal:pw@db/fal")
    );
}

#[test]
fn other_commands_parse_as_they_always_did() {
    let Parsed::Run(cli) = parse(["fal", "key", "list", "--json"], &Mem::default()).unwrap() else {
        panic!("printed");
    };
    assert!(matches!(
        cli.command,
        Command::Key(crate::KeyCommand::List { json: true })
    ));
    let err = parse(
        ["fal", "serve", "--queue-concurrency", "0"],
        &Mem::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SettingsError::Usage { ref notes, .. } if notes.is_empty()),
        "{err:?}"
    );
}

#[test]
fn print_config_shows_each_value_and_source_and_masks_secrets() {
    let files = Mem::default()
        .with(
            C,
            "listen = \"127.0.0.1:9000\"\noperators = [\"alice\", \"1234\"]\n\
             database_url = \"postgres://fal:hunter2@db/fal\"\nqueue_concurrency = 3\n",
        )
        .with("/run/s", "gh-s3cret\n");
    let text = printed(
        &[
            "--config",
            C,
            "--workers",
            "2",
            "--github-client-id",
            "Iv1",
            "--github-client-secret-file",
            "/run/s",
        ],
        &files,
    );
    for line in [
        "listen = \"127.0.0.1:9000\"  # /etc/fal/fal.toml:1",
        "operators = [\"alice\", \"1234\"]  # /etc/fal/fal.toml:2",
        "queue_concurrency = 3  # /etc/fal/fal.toml:4",
        "workers = 2  # flag --workers",
        "max_staleness = \"5s\"  # default",
        "demo = false  # default",
        "# github_allow_user_ids: not set",
        "# public_url: not set",
        "github_client_secret_file = \"/run/s\"  # flag --github-client-secret-file",
        &format!("database_url = {MASK}  # /etc/fal/fal.toml:3"),
        &format!("github_client_secret = {MASK}  # read from /run/s (--github-client-secret-file)"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(
        !text.contains("hunter2") && !text.contains("gh-s3cret"),
        "{text}"
    );
    assert!(
        !text.contains("print_config") && !text.contains("\nconfig"),
        "{text}"
    );
}

#[test]
fn recover_key_takes_its_own_keys_from_the_servers_file() {
    let files = Mem::default()
        .with(
            C,
            "listen = \"0.0.0.0:8420\"\ndata_dir = \"/var/lib/fal\"\nqueue_concurrency = 3\n\
             database_url_file = \"/run/db\"\n",
        )
        .with("/run/db", "postgres://fal:pw@db/fal\n");
    let Parsed::Run(cli) = parse(["fal", "admin", "recover-key", "--config", C], &files).unwrap()
    else {
        panic!("printed");
    };
    let Command::Admin(crate::AdminCommand::RecoverKey { data }) = cli.command else {
        panic!("{:?}", cli.command);
    };
    assert_eq!(data.data_dir.as_deref(), Some(Path::new("/var/lib/fal")));
    assert_eq!(
        data.database_url.as_deref(),
        Some("postgres://fal:pw@db/fal")
    );
    // A key of no command is still an error; --print-config is serve's.
    let files = Mem::default().with(C, "data_dir = \"/x\"\nlisten_on = 1\n");
    let err = parse(["fal", "admin", "recover-key", "--config", C], &files).unwrap_err();
    assert!(
        matches!(err, SettingsError::UnknownKey { line: 2, .. }),
        "{err:?}"
    );
    let err = parse(["fal", "admin", "recover-key", "--print-config"], &files).unwrap_err();
    assert!(matches!(err, SettingsError::Usage { .. }), "{err:?}");
}

#[test]
fn a_config_file_with_a_secret_that_every_user_may_read_is_warned_about() {
    let text = "demo = true\ndatabase_url = \"postgres://fal:pw@db/fal\"\n";
    let files = Mem::default().world_readable(C, text);
    let args = serve(&["--config", C], &files).unwrap();
    assert_eq!(args.warnings.len(), 1, "{:?}", args.warnings);
    assert!(
        args.warnings[0].contains(C) && args.warnings[0].contains("database_url"),
        "{:?}",
        args.warnings
    );
    assert!(!args.warnings[0].contains("pw@"));
    // Without a secret in it, or readable only by its owner: no warning.
    let files = Mem::default().world_readable(C, "demo = true\n");
    assert!(serve(&["--config", C], &files).unwrap().warnings.is_empty());
    let files = Mem::default().with(C, text);
    assert!(serve(&["--config", C], &files).unwrap().warnings.is_empty());
}

#[test]
fn debug_of_the_command_line_masks_the_key_secret() {
    let secret = "fal_sk_0123456789abcdef";
    let key = format!("k-id:{secret}");
    let argv = ["fal", "--key", key.as_str(), "auth", "whoami"];
    let Parsed::Run(cli) = parse(argv.iter(), &Mem::default()).unwrap() else {
        panic!("printed");
    };
    let shown = format!("{cli:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("k-id:"), "{shown}");
    assert!(shown.contains(MASK), "{shown}");
}
