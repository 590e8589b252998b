//! `fal serve --print-config`: every setting in the config file's own
//! syntax, with where its value came from; secrets masked.

use std::any::TypeId;
use std::fmt::Write as _;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::secrets::file_id;
use super::{Origin, Plan, file_keys, is_secret, key_of};

/// What a set secret prints as.
pub const MASK: &str = "\"********\"";

/// The settings of the command at `path` as parsed into `m`.
pub(super) fn render(path: &[String], cmd: &Command, m: &ArgMatches, plan: &Plan) -> String {
    let mut out = format!(
        "# fal {}: the settings in effect, each with where it came from\n\
         # (a flag, over its environment variable, over the config file, over the default).\n",
        path.join(" ")
    );
    match &plan.config {
        Some(config) => {
            let _ = writeln!(out, "# config file: {}", config.display());
        }
        None => out.push_str("# config file: none (--config, FAL_CONFIG)\n"),
    }
    // Each secret's `_file` flag right under it, not at the end where
    // the command lists it.
    let companions: Vec<String> = file_keys(cmd)
        .filter(|a| is_secret(a))
        .map(file_id)
        .collect();
    for arg in file_keys(cmd) {
        if companions.iter().any(|c| arg.get_id() == c.as_str()) {
            continue;
        }
        line(&mut out, arg, m, plan);
        let id = file_id(arg);
        if let Some(file) = file_keys(cmd).find(|a| is_secret(arg) && a.get_id() == id.as_str()) {
            line(&mut out, file, m, plan);
        }
    }
    out
}

fn line(out: &mut String, arg: &Arg, m: &ArgMatches, plan: &Plan) {
    let key = key_of(arg);
    let _ = match value(arg, m) {
        Some(value) => writeln!(out, "{key} = {value}  # {}", source(arg, m, plan)),
        None => writeln!(out, "# {key}: not set"),
    };
}

fn source(arg: &Arg, m: &ArgMatches, plan: &Plan) -> String {
    let config = plan.config.as_deref().unwrap_or(Path::new(""));
    match plan.origins.get(arg.get_id().as_str()) {
        Some(Origin::File { line }) => return format!("{}:{line}", config.display()),
        Some(Origin::SecretFile { path, from }) => {
            return format!("read from {} ({from})", path.display());
        }
        None => {}
    }
    match m.value_source(arg.get_id().as_str()) {
        Some(ValueSource::CommandLine) => format!("flag --{}", arg.get_long().unwrap_or_default()),
        Some(ValueSource::EnvVariable) => format!(
            "env {}",
            arg.get_env().unwrap_or_default().to_string_lossy()
        ),
        _ => "default".to_owned(),
    }
}

/// The value as the config file would write it; `None` when unset.
fn value(arg: &Arg, m: &ArgMatches) -> Option<String> {
    let id = arg.get_id().as_str();
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return Some(m.get_flag(id).to_string());
    }
    let raw: Vec<String> = m
        .get_raw(id)?
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if is_secret(arg) {
        return Some(MASK.to_owned());
    }
    let one = |t: &String| {
        if is_integer(arg) && t.parse::<i64>().is_ok() {
            t.clone()
        } else {
            quote(t)
        }
    };
    Some(match arg.get_action() {
        ArgAction::Append => format!("[{}]", raw.iter().map(one).collect::<Vec<_>>().join(", ")),
        _ => raw.first().map(one).unwrap_or_default(),
    })
}

/// Whether the flag's parser makes a whole number.
fn is_integer(arg: &Arg) -> bool {
    let t = arg.get_value_parser().type_id();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]
    .into_iter()
    .any(|i| t == i)
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
