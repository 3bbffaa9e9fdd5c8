//! `seam run --config FILE`: every `seam run` flag as a TOML key (`feed_file = "/var/..."`,
//! `webhook = ["https://..."]`, `quiet = true`). The file's values are inserted as flags before
//! the command line's, and only for flags the command line and the flags' `SEAM_*` variables
//! leave unset: flags > `SEAM_*` environment > the file > defaults.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use clap::{Arg, ArgAction, Command};

/// The default place of the config file (used when it exists and no `--config` is given).
pub(super) const DEFAULT_PATH: &str = "/etc/seam/seam.toml";

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key names no `seam run` flag.
    #[error(
        "config file {path}: unknown key `{key}`; keys are `seam run` flags without the dashes \
         (`feed_file`, `webhook`, ...): see `seam run --help`"
    )]
    UnknownKey { path: PathBuf, key: String },
    /// A value has the wrong type for its flag.
    #[error("config file {path}: `{key}` must be {expected}")]
    Type {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
}

/// Where `--config` (or `SEAM_CONFIG`, or the default path when it exists) points, if anywhere.
fn config_path(args: &[OsString], env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        let text = token.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return tokens.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    if let Some(path) = env("SEAM_CONFIG") {
        return Some(PathBuf::from(path));
    }
    Path::new(DEFAULT_PATH)
        .exists()
        .then(|| PathBuf::from(DEFAULT_PATH))
}

/// Whether the command line sets `--long` (as `--long`, `--long=V`, or a short alias).
fn on_command_line(args: &[OsString], arg: &Arg) -> bool {
    let Some(long) = arg.get_long() else {
        return false;
    };
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// The flags the file sets for `run`, as tokens; `run_args` are the command line's tokens after
/// `run`, `env` reads the environment.
fn file_tokens(
    flags: &[&Arg],
    run_args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    let Some(path) = config_path(run_args, env) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|source| ConfigFileError::Toml {
        path: path.clone(),
        source: Box::new(source),
    })?;
    let mut tokens = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = flags
            .iter()
            .copied()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| ConfigFileError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            })?;
        let from_env = arg
            .get_env()
            .and_then(|name| env(&name.to_string_lossy()))
            .is_some();
        if on_command_line(run_args, arg) || from_env {
            continue;
        }
        let type_error = |expected| ConfigFileError::Type {
            path: path.clone(),
            key: key.clone(),
            expected,
        };
        let flag = OsString::from(format!("--{long}"));
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if *on {
                    tokens.push(flag);
                }
            }
            (ArgAction::SetTrue, _) => return Err(type_error("true or false")),
            (ArgAction::Append, toml::Value::Array(items)) => {
                for item in items {
                    let item =
                        scalar(item).ok_or_else(|| type_error("an array of strings or numbers"))?;
                    tokens.push(flag.clone());
                    tokens.push(item.into());
                }
            }
            (_, value) => {
                let item = scalar(value).ok_or_else(|| type_error("a string or a number"))?;
                tokens.push(flag);
                tokens.push(item.into());
            }
        }
    }
    Ok(tokens)
}

/// `argv` with the config file's flags inserted after `run` (other commands are untouched).
pub(super) fn expand(
    argv: Vec<OsString>,
    cli: &Command,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    // Global flags with a value may precede the subcommand (`seam --log-format json run`).
    let valued_globals: Vec<String> = cli
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut index = 1;
    while let Some(token) = argv.get(index) {
        let text = token.to_string_lossy();
        if valued_globals.iter().any(|g| *g == text) {
            index += 2;
        } else if text.starts_with('-') {
            index += 1;
        } else {
            break;
        }
    }
    let Some(run) = cli.find_subcommand("run") else {
        return Ok(argv);
    };
    if argv.get(index).is_none_or(|t| t != "run") {
        return Ok(argv);
    }
    let flags: Vec<&Arg> = run
        .get_arguments()
        .chain(cli.get_arguments().filter(|a| a.is_global_set()))
        .collect();
    let tokens = file_tokens(&flags, &argv[index + 1..], env)?;
    let mut out = argv;
    let tail = out.split_off(index + 1);
    out.extend(tokens);
    out.extend(tail);
    Ok(out)
}
