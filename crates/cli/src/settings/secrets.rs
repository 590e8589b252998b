//! Secrets in files: `--NAME-file`, `FAL_NAME_FILE` and `name_file` beside
//! every secret `--NAME`, read here into the secret's own flag. And the
//! `Debug` of the argument structs that hold secrets, which masks them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Command};

use super::{Files, Origin, Plan, SettingsError, given_there, is_secret, key_of};

/// Adds the `--NAME-file` flag of every secret of `cmd` and of its
/// subcommands.
pub(super) fn with_secret_files(mut cmd: Command) -> Command {
    let files: Vec<Arg> = cmd
        .get_arguments()
        .filter(|a| is_secret(a))
        .filter_map(file_arg)
        .collect();
    for arg in files {
        cmd = cmd.arg(arg);
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, with_secret_files);
    }
    cmd
}

/// `--NAME-file` / `FAL_NAME_FILE` for the secret `--NAME`.
fn file_arg(secret: &Arg) -> Option<Arg> {
    let long = secret.get_long()?;
    let env = secret.get_env()?.to_str()?;
    Some(
        Arg::new(file_id(secret))
            .long(format!("{long}-file"))
            .env(format!("{env}_FILE"))
            .value_name("PATH")
            .value_parser(clap::value_parser!(PathBuf))
            .help(format!(
                "Read --{long} from this file, less its trailing newline (systemd \
                 credentials, Docker secrets); not with --{long} itself"
            )),
    )
}

pub(super) fn file_id(secret: &Arg) -> String {
    format!("{}_file", secret.get_id())
}

/// Reads the secrets given as files, and refuses a secret given twice.
pub(super) fn read_secrets(
    cmd: &Command,
    given: &ArgMatches,
    files: &dyn Files,
    plan: &mut Plan,
) -> Result<(), SettingsError> {
    for secret in cmd.get_arguments().filter(|a| is_secret(a)) {
        let id = file_id(secret);
        let Some(file) = cmd.get_arguments().find(|a| a.get_id() == id.as_str()) else {
            continue;
        };
        let from_file = |a: &Arg| match plan.origins.get(a.get_id().as_str()) {
            Some(Origin::File { line }) => Some(format!(
                "`{}` in {}:{line}",
                key_of(a),
                plan.config.as_deref().unwrap_or(Path::new("")).display()
            )),
            _ => None,
        };
        let value_from = given_there(given, secret).or_else(|| from_file(secret));
        let path_from = given_there(given, file).or_else(|| from_file(file));
        let Some(path_from) = path_from else {
            continue;
        };
        if let Some(value_from) = value_from {
            return Err(SettingsError::SecretTwice {
                value_from,
                file_from: path_from,
            });
        }
        let path = match given.try_get_one::<PathBuf>(id.as_str()) {
            Ok(Some(p)) if given_there(given, file).is_some() => p.clone(),
            _ => plan.paths.get(&id).cloned().unwrap_or_default(),
        };
        let text = files.read(&path).map_err(|source| SettingsError::Read {
            what: "the secret file",
            path: path.clone(),
            via: format!(" ({path_from})"),
            source,
        })?;
        let value = text
            .strip_suffix('\n')
            .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        if value.is_empty() {
            return Err(SettingsError::EmptySecret {
                path,
                from: path_from,
            });
        }
        if files.world_readable(&path) {
            plan.warnings.push(format!(
                "the secret file {} ({path_from}) is readable by every user of this machine: \
                 chmod 0600 it, or hand it in as a systemd credential (LoadCredential=)",
                path.display()
            ));
        }
        let long = secret.get_long().unwrap_or_default();
        plan.args.push(OsString::from(format!("--{long}={value}")));
        plan.origins.insert(
            secret.get_id().to_string(),
            Origin::SecretFile {
                path,
                from: path_from,
            },
        );
    }
    Ok(())
}

/// What `Debug` shows of a secret that is set.
fn masked(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "********")
}

impl std::fmt::Debug for crate::Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("host", &self.host)
            .field("key", &masked(&self.key))
            .field("command", &self.command)
            .finish()
    }
}

impl std::fmt::Debug for crate::DataArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataArgs")
            .field("data_dir", &self.data_dir)
            .field("pepper_file", &self.pepper_file)
            .field("database_url", &masked(&self.database_url))
            .finish()
    }
}

impl std::fmt::Debug for crate::serve::GithubArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubArgs")
            .field("github_client_id", &self.github_client_id)
            .field("github_client_secret", &masked(&self.github_client_secret))
            .field("github_url", &self.github_url)
            .field("github_api_url", &self.github_api_url)
            .field("github_allow_users", &self.github_allow_users)
            .field("github_allow_user_ids", &self.github_allow_user_ids)
            .field("github_allow_orgs", &self.github_allow_orgs)
            .finish()
    }
}
