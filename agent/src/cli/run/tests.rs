//! `seam run --config`: the file's keys become flags unless the command line or a `SEAM_*`
//! variable sets them (flags > environment > file > defaults).
use std::{ffi::OsString, path::PathBuf};

use clap::{CommandFactory as _, FromArgMatches as _};

use super::super::{Cli, Command, config_file, logging::LogFormat};

const FILE: &str = r#"
rules = ["/etc/seam/rules", "/etc/seam/tenants"]
feed_file = "/var/log/seam/from-file.jsonl"
node = "node-from-file"
quiet = true
webhook = ["http://127.0.0.1:1/a", "https://127.0.0.1:2/b"]
webhook_header = ["Authorization: Bearer from-file"]
max_open_spans = 7
aggregate-window = 3
cgroup_root = "/host/sys/fs/cgroup"
log_format = "json"
"#;

fn expand(
    file: &str,
    tokens: &[&str],
    env: &[(&str, &str)],
) -> Result<Vec<OsString>, config_file::ConfigFileError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seam.toml");
    std::fs::write(&path, file).unwrap();
    let mut argv: Vec<OsString> = vec!["seam".into(), "run".into(), "--config".into()];
    argv.push(path.into());
    argv.extend(tokens.iter().map(OsString::from));
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    };
    config_file::expand(argv, &Cli::command(), &lookup)
}

fn parse(argv: Vec<OsString>) -> Cli {
    let matches = Cli::command().try_get_matches_from(argv).unwrap();
    Cli::from_arg_matches(&matches).unwrap()
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let argv = expand(
        FILE,
        &[
            "--feed-file",
            "/cli/feed.jsonl",
            "--webhook=http://127.0.0.1:3/cli",
        ],
        &[("SEAM_NODE", "node-from-env")],
    )
    .unwrap();
    let text: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        !text.iter().any(|t| t == "node-from-file"),
        "SEAM_NODE is set: the file's node is not used: {text:?}"
    );
    assert!(
        !text
            .iter()
            .any(|t| t.contains("from-file.jsonl") || t.ends_with("/a")),
        "flags on the command line replace the file's: {text:?}"
    );
    let cli = parse(argv);
    assert_eq!(
        cli.log_format,
        LogFormat::Json,
        "global flags come from the file too"
    );
    let Command::Run(args) = cli.command else {
        panic!("not run");
    };
    assert_eq!(args.feed_file, Some(PathBuf::from("/cli/feed.jsonl")));
    assert_eq!(args.feeds.webhooks, ["http://127.0.0.1:3/cli"]);
    assert!(args.quiet);
    assert_eq!(
        args.rules,
        [
            PathBuf::from("/etc/seam/rules"),
            PathBuf::from("/etc/seam/tenants")
        ]
    );
    assert_eq!(
        args.feeds.webhook_headers,
        ["Authorization: Bearer from-file"]
    );
    assert_eq!(args.spans.max_open_spans, 7);
    assert_eq!(args.feeds.aggregate_window, 3);
    assert_eq!(
        args.host.cgroup_root,
        Some(PathBuf::from("/host/sys/fs/cgroup"))
    );
    assert!(!args.spans.feed_spans, "unset everywhere: the default");
}

#[test]
fn without_flags_or_environment_the_file_decides() {
    let cli = parse(expand(FILE, &[], &[]).unwrap());
    let Command::Run(args) = cli.command else {
        panic!("not run");
    };
    assert_eq!(args.node.as_deref(), Some("node-from-file"));
    assert_eq!(
        args.feed_file,
        Some(PathBuf::from("/var/log/seam/from-file.jsonl"))
    );
    assert_eq!(
        args.feeds.webhooks,
        ["http://127.0.0.1:1/a", "https://127.0.0.1:2/b"]
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_refused() {
    let error = expand("feed_fil = \"x\"\n", &[], &[]).unwrap_err();
    assert!(
        error.to_string().contains("unknown key `feed_fil`"),
        "{error}"
    );
    let error = expand("quiet = \"yes\"\n", &[], &[]).unwrap_err();
    assert!(error.to_string().contains("true or false"), "{error}");
    let error = expand("webhook = [{ url = 1 }]\n", &[], &[]).unwrap_err();
    assert!(error.to_string().contains("`webhook`"), "{error}");
    let error = expand("config = \"/etc/other.toml\"\n", &[], &[]).unwrap_err();
    assert!(
        error.to_string().contains("unknown key `config`"),
        "{error}"
    );
    let error = expand("not toml [", &[], &[]).unwrap_err();
    assert!(error.to_string().contains("not valid TOML"), "{error}");
}

#[test]
fn other_commands_are_left_alone() {
    let argv: Vec<OsString> = ["seam", "check-rules", "--config", "x"]
        .iter()
        .map(OsString::from)
        .collect();
    let out = config_file::expand(argv.clone(), &Cli::command(), &|_| None).unwrap();
    assert_eq!(out, argv);
}
