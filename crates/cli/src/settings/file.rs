//! The config file's entries: each checked by its flag's own parser and,
//! when no flag or variable gives the setting, planned as `--flag=value`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::{Origin, Plan, SettingsError, file_keys, given_there, is_secret, key_of};
use crate::config_file::{self, Entry, FileValue};

/// Checks every entry of the file and plans those that no flag or
/// variable overrides. Keys of `elsewhere` that `cmd` lacks are passed
/// over.
pub(super) fn apply_file(
    cmd: &Command,
    elsewhere: Option<&Command>,
    given: &ArgMatches,
    path: &Path,
    text: &str,
    plan: &mut Plan,
) -> Result<(), SettingsError> {
    let entries = config_file::parse(text).map_err(|error| SettingsError::Toml {
        path: path.to_owned(),
        error,
    })?;
    for entry in entries {
        let Some(arg) = file_keys(cmd).find(|a| key_of(a) == entry.key) else {
            if elsewhere.is_some_and(|c| file_keys(c).any(|a| key_of(a) == entry.key)) {
                continue;
            }
            return Err(SettingsError::UnknownKey {
                path: path.to_owned(),
                line: entry.line,
                hint: hint(cmd, &entry.key),
                key: entry.key,
            });
        };
        let pieces = arguments(arg, &entry).map_err(|why| SettingsError::BadValue {
            path: path.to_owned(),
            line: entry.line,
            key: entry.key.clone(),
            why,
        })?;
        if is_secret(arg) {
            plan.secret_keys.push(entry.key.clone());
        }
        if given_there(given, arg).is_some() {
            continue;
        }
        let id = arg.get_id().to_string();
        if let (Some(_), FileValue::Str(p)) = (id.strip_suffix("_file"), &entry.value) {
            plan.paths.insert(id.clone(), PathBuf::from(p));
        }
        plan.origins.insert(id, Origin::File { line: entry.line });
        plan.args.extend(pieces.into_iter().map(OsString::from));
    }
    Ok(())
}

fn hint(cmd: &Command, key: &str) -> String {
    let underscored = key.replace('-', "_");
    if underscored != key && file_keys(cmd).any(|a| key_of(a) == underscored) {
        return format!(" (keys are written with `_`: `{underscored}`)");
    }
    format!(
        " (the keys are `fal {} --help`'s flags, `--queue-concurrency` as `queue_concurrency`)",
        cmd.get_name()
    )
}

/// The command-line arguments that give `arg` the entry's value, after
/// checking the value with the flag's own parser.
fn arguments(arg: &Arg, entry: &Entry) -> Result<Vec<String>, String> {
    let long = arg.get_long().unwrap_or_default();
    match (arg.get_action(), &entry.value) {
        (ArgAction::SetTrue, FileValue::Bool(on)) | (ArgAction::SetFalse, FileValue::Bool(on)) => {
            let wanted = matches!(arg.get_action(), ArgAction::SetTrue);
            Ok(if *on == wanted {
                vec![format!("--{long}")]
            } else {
                vec![]
            })
        }
        (ArgAction::SetTrue | ArgAction::SetFalse, _) => Err("expected true or false".into()),
        (ArgAction::Set, FileValue::List(_)) => Err("takes one value, not a list".into()),
        (_, value) => {
            let texts = value.texts();
            for text in &texts {
                check(arg, text)?;
            }
            Ok(texts.iter().map(|t| format!("--{long}={t}")).collect())
        }
    }
}

/// Runs `text` through `arg`'s own value parser (split at its delimiter,
/// as on the command line).
fn check(arg: &Arg, text: &str) -> Result<(), String> {
    let mut probe = Arg::new(arg.get_id().clone())
        .long(arg.get_long().unwrap_or_default().to_owned())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(d);
    }
    let flag = format!("--{}={text}", probe.get_long().unwrap_or_default());
    match Command::new("fal")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(probe)
        .try_get_matches_from([flag])
    {
        Ok(_) => Ok(()),
        Err(_) if is_secret(arg) => Err("not a valid value (not shown: a secret)".into()),
        Err(e) => Err(why(&e)),
    }
}

/// clap's reason, without its usage text.
fn why(e: &clap::Error) -> String {
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("expected one of: {}", valid.join(", "));
    }
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}
