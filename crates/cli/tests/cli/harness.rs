//! Starting `fal serve` and running `fal` commands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use fal_core::{Scope, Timestamp};
use fal_store::SqlStore;
use fal_store::testing::{seed_key, seed_user};

pub const FAL: &str = env!("CARGO_BIN_EXE_fal");

/// Variables a user's shell might carry that would change what a test sees.
const FAL_VARS: &[&str] = &[
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "FAL_HOST",
    "FAL_DATA_DIR",
    "FAL_PEPPER_FILE",
    "FAL_LISTEN",
    "FAL_OPERATORS",
    "FAL_ALLOW_METADATA_UPSTREAMS",
    "FAL_PUBLIC_URL",
    "FAL_SECRET_SCANNING_KEYS_URL",
    "FAL_LOG_FORMAT",
    "FAL_ACCESS_LOG",
    "FAL_CONFIG",
    "FAL_DATABASE_URL",
    "FAL_DATABASE_URL_FILE",
    "FAL_GITHUB_CLIENT_ID",
    "FAL_GITHUB_CLIENT_SECRET",
    "FAL_GITHUB_CLIENT_SECRET_FILE",
    "RUST_LOG",
];

pub fn fal() -> Command {
    let mut c = Command::new(FAL);
    for v in FAL_VARS {
        c.env_remove(v);
    }
    c
}

/// A running `fal serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// Everything printed on stdout before "listening".
    pub banner: String,
    pub log_path: PathBuf,
    /// Environment for every command run against this server.
    pub env: Vec<(String, String)>,
}

impl Drop for Server {
    /// A test that fails before `stop` must not leave its server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A key pair parsed from the seed's message.
#[derive(Debug, Clone)]
pub struct Pair {
    pub id: String,
    pub secret: String,
}

/// Reads `FAL_KEY_ID='…'` and `FAL_KEY_SECRET='…'` out of printed text.
pub fn parse_pair(text: &str) -> Option<Pair> {
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}='")))
            .and_then(|rest| rest.strip_suffix('\''))
            .map(str::to_owned)
    };
    Some(Pair {
        id: get("FAL_KEY_ID")?,
        secret: get("FAL_KEY_SECRET")?,
    })
}

impl Server {
    pub fn start(data_dir: &Path, rust_log: Option<&str>) -> Server {
        Server::start_with(data_dir, rust_log, &[], &[])
    }

    /// Starts with extra `fal serve` arguments; `env` is also used for
    /// every command run against this server.
    pub fn start_with(
        data_dir: &Path,
        rust_log: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let log_path = data_dir.with_extension(format!(
            "log{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = fal();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra);
        // Logs as a person reads them unless a test asks for JSON (stderr
        // is a file here, which would make JSON the default).
        cmd.env("FAL_LOG_FORMAT", "text");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
        Server::spawn(cmd, log_path, env)
    }

    /// Runs `cmd`, a `fal serve` command line, with its log (stderr) in
    /// `log_path`, and waits until it listens; `env` is used for every
    /// command run against it.
    pub fn spawn(mut cmd: Command, log_path: PathBuf, env: Vec<(String, String)>) -> Server {
        let log = std::fs::File::create(&log_path).unwrap();
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut banner = String::new();
        let url = loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "fal serve exited early; stdout so far:\n{banner}");
            if let Some(url) = line.trim().strip_prefix("fal is listening on ") {
                // http://… or https://…
                break url.split_whitespace().next().unwrap().to_owned();
            }
            banner.push_str(&line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Server {
            child,
            url,
            banner,
            log_path,
            env,
        }
    }

    /// The bootstrap key printed on first start.
    pub fn bootstrap(&self) -> Pair {
        parse_pair(&self.banner).expect("first start prints the bootstrap key")
    }

    /// Runs `fal ARGS` against this server with `env`.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = fal();
        c.env("FAL_HOST", &self.url).args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Runs `program ARGS` (which runs `fal` itself) with this server's
    /// environment, `FAL_HOST` and `env`.
    pub fn run_program(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(program);
        for v in FAL_VARS {
            c.env_remove(v);
        }
        c.env("FAL_HOST", &self.url).args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Runs with a key pair in `FAL_KEY_ID`/`FAL_KEY_SECRET`; asserts success.
    pub fn ok(&self, pair: &Pair, args: &[&str]) -> String {
        let out = self.run(
            args,
            &[("FAL_KEY_ID", &pair.id), ("FAL_KEY_SECRET", &pair.secret)],
        );
        assert!(
            out.status.success(),
            "fal {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits; returns the server's log.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "fal serve exited with {exit} on SIGTERM");
        std::fs::read_to_string(&self.log_path).unwrap()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Adds a user (GitHub-like when `github_id` is given) with an ADMIN key
/// straight into the SQLite database, as a second process would: the API
/// cannot create users (GitHub sign-in does).
pub fn user_with_admin_key(data: &Path, login: &str, github_id: Option<i64>) -> Pair {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqlStore::open_sqlite(&data.join("fal.db"), Timestamp(0))
            .await
            .unwrap();
        let pepper = fal_server::pepper::load(&data.join("pepper")).unwrap();
        let user = seed_user(&store, login, github_id).await.unwrap();
        let key = seed_key(&store, &pepper, &user.user_id, Scope::Admin, login)
            .await
            .unwrap();
        store.close().await;
        Pair {
            id: key.key_id,
            secret: key.secret,
        }
    })
}

/// The cell of `key_id`'s row in `fal key list` that is `from_end` columns
/// from the right (1: the last), after checking that the header's last
/// words are `tail` (a header cell such as `RATE LIMIT` is two words).
pub fn listed_cell(
    server: &Server,
    admin: &Pair,
    key_id: &str,
    tail: &[&str],
    from_end: usize,
) -> String {
    let table = server.ok(admin, &["key", "list"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[header.len() - tail.len()..], *tail, "{table}");
    let row = table.lines().find(|l| l.starts_with(key_id)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    cells[cells.len() - from_end].to_owned()
}

/// A server on `data` whose API key `alias` made `accepted` calls and had
/// one refused (a wrong, well-formed secret: the admin's), restarted once,
/// so the counts written back when it stopped are read from storage.
/// Returns the server, the admin pair and the key's pair.
pub fn server_with_counted_key(data: &Path, alias: &str, accepted: usize) -> (Server, Pair, Pair) {
    let server = Server::start(data, None);
    let admin = server.bootstrap();
    let out = server.ok(
        &admin,
        &["key", "generate", "--scope", "API", "--alias", alias],
    );
    let key = parse_pair(&out).unwrap();
    for _ in 0..accepted {
        server.ok(&key, &["auth", "whoami"]);
    }
    let denied = server.run(
        &["auth", "whoami"],
        &[("FAL_KEY_ID", &key.id), ("FAL_KEY_SECRET", &admin.secret)],
    );
    assert!(!denied.status.success());
    server.stop();
    (Server::start(data, None), admin, key)
}
