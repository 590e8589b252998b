//! Where `fal serve`'s settings come from: a flag wins over its
//! environment variable, which wins over the config file
//! (`--config`/`FAL_CONFIG`), which wins over the default.
//!
//! Nothing here knows the settings one by one. The file's keys are the
//! long flags of the command (`--queue-concurrency` is
//! `queue_concurrency`), and a value from the file is checked by the flag's
//! own parser; every secret (a flag whose environment value clap hides)
//! gets a `--NAME-file` flag, a `FAL_NAME_FILE` variable and a `name_file`
//! key that name a file holding it. A flag added to `ServeArgs` is
//! therefore a key of the file with no code here.
//!
//! How: clap reads the command line and the environment once, leniently,
//! to learn which settings they give; the file then supplies the others as
//! `--flag=value` arguments appended to the command line (in memory only),
//! secrets read from files likewise, and clap parses the whole again,
//! strictly, so every rule between flags (`--tls-cert` needs `--tls-key`)
//! holds whatever the value's source.

mod file;
mod print;
mod secrets;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::Cli;
use crate::config_file;

/// The id of `--config`.
const CONFIG: &str = "config";
/// The id of `--print-config`.
const PRINT_CONFIG: &str = "print_config";
/// The command whose keys the config file holds, and which prints them.
const SERVE: &[&str] = &["serve"];
/// The commands that take `--config`, as their subcommand paths: `fal
/// serve`, and `fal admin recover-key`, which takes the keys of its own
/// flags from the server's file and passes over the others.
const WITH_CONFIG: &[&[&str]] = &[SERVE, &["admin", "recover-key"]];

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run this command.
    Run(Box<Cli>),
    /// `fal serve --print-config`: print this and exit.
    Printed(String),
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A flag error (or `--help`): clap prints it. `notes` say which of
    /// the flags it names came from the config file or a secret's file.
    #[error("{error}{}", notes.iter().map(|n| format!("note: {n}\n")).collect::<String>())]
    Usage {
        error: clap::Error,
        notes: Vec<String>,
    },
    /// The config file or a secret's file cannot be read.
    #[error("cannot read {what} {}{via}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        /// What named the file, in brackets, if not `--config`.
        via: String,
        source: std::io::Error,
    },
    /// The config file is not TOML of top-level keys.
    #[error("{}:{}", path.display(), file_error(error))]
    Toml {
        path: PathBuf,
        error: config_file::ParseError,
    },
    /// A key of the config file that is no flag of the command.
    #[error("{}:{line}: unknown key `{key}`{hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
    },
    /// A value the key's flag does not take.
    #[error("{}:{line}: bad value for `{key}`: {why}", path.display())]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        why: String,
    },
    /// A secret given both as a value and as a file.
    #[error("{value_from} and {file_from} both give the same secret: keep one")]
    SecretTwice {
        value_from: String,
        file_from: String,
    },
    /// A secret's file that holds nothing.
    #[error("the secret file {} ({from}) is empty", path.display())]
    EmptySecret { path: PathBuf, from: String },
}

fn file_error(e: &config_file::ParseError) -> String {
    match e {
        config_file::ParseError::Syntax {
            line,
            column,
            message,
        } => format!("{line}:{column}: not valid TOML: {message}"),
        config_file::ParseError::Unsupported { key, line, why } => {
            format!("{line}: `{key}`: {why}")
        }
    }
}

impl From<clap::Error> for SettingsError {
    fn from(error: clap::Error) -> Self {
        SettingsError::Usage {
            error,
            notes: Vec::new(),
        }
    }
}

/// The files settings are read from; tests hand in their own.
pub trait Files {
    /// The whole text of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Whether every user of the machine may read `path`.
    fn world_readable(&self, path: &Path) -> bool;
}

/// The machine's files.
#[derive(Debug, Clone, Copy)]
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    #[cfg(unix)]
    fn world_readable(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o004 != 0)
    }

    #[cfg(not(unix))]
    fn world_readable(&self, _path: &Path) -> bool {
        false
    }
}

/// The `fal` command with what this module adds: `--config` (and
/// `--print-config` on `fal serve`), a `--NAME-file` flag beside every
/// secret.
pub fn command() -> Command {
    let mut cmd = secrets::with_secret_files(Cli::command());
    for path in WITH_CONFIG {
        cmd = at(cmd, path, &|c: Command| {
            c.arg(
                Arg::new(CONFIG)
                    .long("config")
                    .env("FAL_CONFIG")
                    .value_name("PATH")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help(
                        "A TOML file of settings, one key per flag (--queue-concurrency is \
                         queue_concurrency); flags and variables win over it",
                    ),
            )
        });
    }
    at(cmd, SERVE, &|c: Command| {
        c.arg(
            Arg::new(PRINT_CONFIG)
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help(
                    "Print every setting, its value and where it came from (secrets \
                     masked), then exit",
                ),
        )
    })
}

/// Applies `f` to the subcommand at `path`.
fn at(cmd: Command, path: &[&str], f: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) => cmd.mut_subcommand(*first, |sub| at(sub, rest, f)),
    }
}

/// A secret: a flag whose environment value clap is told to hide.
fn is_secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set() && arg.get_env().is_some() && arg.get_long().is_some()
}

/// The flags that are keys of the config file.
fn file_keys(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some()
            && !a.is_global_set()
            && a.get_id() != CONFIG
            && a.get_id() != PRINT_CONFIG
            && matches!(
                a.get_action(),
                ArgAction::Set | ArgAction::Append | ArgAction::SetTrue | ArgAction::SetFalse
            )
    })
}

/// The file key of a flag: its long name with `_` for `-`.
fn key_of(arg: &Arg) -> String {
    arg.get_long().unwrap_or_default().replace('-', "_")
}

/// Where a setting came from when clap did not see it there.
#[derive(Debug, Clone)]
enum Origin {
    /// The config file, at this line.
    File { line: usize },
    /// A secret read from a file, named by `from`.
    SecretFile { path: PathBuf, from: String },
}

/// What the file and the secrets' files add to the command line.
#[derive(Debug, Default)]
struct Plan {
    config: Option<PathBuf>,
    args: Vec<OsString>,
    origins: HashMap<String, Origin>,
    /// The paths the file gives (`*_file` keys), by flag id.
    paths: HashMap<String, PathBuf>,
    /// The file's keys that hold a secret itself.
    secret_keys: Vec<String>,
    warnings: Vec<String>,
}

/// Reads the command line (and the environment, and the files it names)
/// into the command to run.
pub fn parse<I, T>(argv: I, files: &dyn Files) -> Result<Parsed, SettingsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = command();
    // A first look that stops at nothing, to learn what the command line
    // and the environment give; a true error shows in the strict parse.
    let Ok(first) = cmd.clone().ignore_errors(true).try_get_matches_from(&argv) else {
        return finish(&cmd, &argv, Plan::default());
    };
    let (path, given) = leaf(&first);
    let Some(leaf_cmd) = find(&cmd, &path) else {
        return finish(&cmd, &argv, Plan::default());
    };
    let mut plan = Plan::default();
    if let Ok(Some(config)) = given.try_get_one::<PathBuf>(CONFIG) {
        let text = files.read(config).map_err(|source| SettingsError::Read {
            what: "the config file",
            path: config.clone(),
            via: String::new(),
            source,
        })?;
        plan.config = Some(config.clone());
        // Keys of `fal serve` that this command has no flag for are
        // passed over (`fal admin recover-key` reads the server's file).
        let serve = find_path(&cmd, SERVE).filter(|s| !std::ptr::eq(*s, leaf_cmd));
        file::apply_file(leaf_cmd, serve, given, config, &text, &mut plan)?;
        if !plan.secret_keys.is_empty() && files.world_readable(config) {
            plan.warnings.push(format!(
                "the config file {} holds secrets ({}) and is readable by every user of this \
                 machine: chmod 0600 it, or name files holding them ({}_file)",
                config.display(),
                plan.secret_keys.join(", "),
                plan.secret_keys[0],
            ));
        }
    }
    secrets::read_secrets(leaf_cmd, given, files, &mut plan)?;
    finish(&cmd, &argv, plan)
}

/// The last subcommand's path and matches.
fn leaf(m: &ArgMatches) -> (Vec<String>, &ArgMatches) {
    let mut path = Vec::new();
    let mut m = m;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_owned());
        m = sub;
    }
    (path, m)
}

fn find_path<'c>(cmd: &'c Command, path: &[&str]) -> Option<&'c Command> {
    path.iter().try_fold(cmd, |c, name| c.find_subcommand(name))
}

fn find<'c>(cmd: &'c Command, path: &[String]) -> Option<&'c Command> {
    path.iter()
        .try_fold(cmd, |c, name| c.find_subcommand(name.as_str()))
}

/// Whether the command line or the environment gave `arg`.
fn given_there(given: &ArgMatches, arg: &Arg) -> Option<String> {
    match given.value_source(arg.get_id().as_str()) {
        Some(ValueSource::CommandLine) => Some(format!("--{}", arg.get_long().unwrap_or_default())),
        Some(ValueSource::EnvVariable) => Some(
            arg.get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// The strict parse of the command line and what the plan adds to it.
fn finish(cmd: &Command, argv: &[OsString], plan: Plan) -> Result<Parsed, SettingsError> {
    let all = argv.iter().chain(&plan.args);
    let matches = cmd
        .clone()
        .try_get_matches_from(all)
        .map_err(|error| annotate(error, cmd, &plan))?;
    let (path, leaf_matches) = leaf(&matches);
    if matches!(
        leaf_matches.try_get_one::<bool>(PRINT_CONFIG),
        Ok(Some(true))
    ) && let Some(leaf_cmd) = find(cmd, &path)
    {
        return Ok(Parsed::Printed(print::render(
            &path,
            leaf_cmd,
            leaf_matches,
            &plan,
        )));
    }
    let mut cli = Cli::from_arg_matches(&matches)?;
    match &mut cli.command {
        crate::Command::Serve(args) => {
            args.warnings = plan.warnings;
            args.config_file = plan.config;
        }
        _ => {
            for w in plan.warnings {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(Parsed::Run(Box::new(cli)))
}

/// Says which flags of a strict-parse error the file or a secret's file
/// gave.
fn annotate(error: clap::Error, cmd: &Command, plan: &Plan) -> SettingsError {
    let said = error.to_string();
    let mut notes = Vec::new();
    let mut args: Vec<&Arg> = Vec::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        args.extend(c.get_arguments());
        stack.extend(c.get_subcommands());
    }
    for arg in args {
        let Some(origin) = plan.origins.get(arg.get_id().as_str()) else {
            continue;
        };
        let flag = format!("--{}", arg.get_long().unwrap_or_default());
        let named = said.match_indices(&flag).any(|(i, _)| {
            !said[i + flag.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '-')
        });
        if !named {
            continue;
        }
        notes.push(match origin {
            Origin::File { line } => format!(
                "{flag} is `{}` in {}:{line}",
                key_of(arg),
                plan.config.as_deref().unwrap_or(Path::new("")).display()
            ),
            Origin::SecretFile { path, from } => {
                format!("{flag} was read from {} ({from})", path.display())
            }
        });
    }
    SettingsError::Usage { error, notes }
}

#[cfg(test)]
mod tests;
