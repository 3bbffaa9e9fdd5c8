use std::{fs, path::Path, time::Instant};

use clap::Parser as _;

use super::{file::FileOpKind, *};

/// The actor's command line as `seam chaos-actor` parses it.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    actor: ActorArgs,
}

fn parse(args: &[&str]) -> ActorArgs {
    Cli::try_parse_from(std::iter::once(SUBCOMMAND).chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .actor
}

/// The port a listener wrote (it renames the file into place whole).
fn wait_port(port_file: &Path) -> String {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(port_file) {
            return text;
        }
        assert!(Instant::now() < deadline, "no port file");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn identity_options_come_before_the_action() {
    let args = parse(&[
        "--cgroup", "t/a", "--comm", "app-a", "file-op", "--op", "read", "--path", "/x",
    ]);
    assert_eq!(args.identity.cgroup.as_deref(), Some("t/a"));
    assert_eq!(args.identity.comm.as_deref(), Some("app-a"));
    assert!(matches!(
        args.action,
        Action::FileOp(FileOpArgs {
            op: FileOpKind::Read,
            ..
        })
    ));
    // What `seam chaos` runs for its exec attempt: the program's own flags are not ours.
    let args = parse(&["exec", "/bin/true", "--version"]);
    assert!(matches!(&args.action, Action::Exec { command } if command.len() == 2));
}

#[test]
fn prepare_creates_markers_a_binary_and_symlinks_and_remove_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("markers");
    run(&parse(&[
        "prepare",
        "--dir",
        dir.to_str().unwrap(),
        "--file",
        "read-me",
        "--binary",
        "run-me",
        "--symlink",
        "link=/etc/hostname",
    ])
    .action)
    .unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("read-me")).unwrap(),
        "seam chaos marker\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(dir.join("run-me"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        fs::read_link(dir.join("link")).unwrap(),
        Path::new("/etc/hostname")
    );
    run(&parse(&["remove", "--dir", dir.to_str().unwrap()]).action).unwrap();
    assert!(!dir.exists());
}

#[test]
fn a_bad_symlink_argument_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let error = run(&parse(&["prepare", "--dir", dir, "--symlink", "no-target"]).action);
    assert!(matches!(error, Err(ActorError::Usage(_))), "{error:?}");
}

#[test]
fn file_ops_succeed_or_fail_with_the_errno_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let op = |args: &[&str]| run(&parse(&[&["file-op"][..], args].concat()).action);
    // Relative to --dir: created, renamed, truncated, read, unlinked.
    op(&["--op", "create", "--path", "a", "--dir", dir]).unwrap();
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"x");
    op(&["--op", "rename", "--path", "a", "--to", "b", "--dir", dir]).unwrap();
    let b = tmp.path().join("b");
    let b = b.to_str().unwrap();
    op(&["--op", "truncate", "--path", b]).unwrap();
    assert_eq!(fs::read(b).unwrap(), b"");
    op(&["--op", "read", "--path", b]).unwrap();
    op(&["--op", "unlink", "--path", "b", "--dir", dir]).unwrap();
    // A missing file: ENOENT (2) is a success only when asked for.
    op(&["--op", "read", "--path", b, "--expect-errno", "2"]).unwrap();
    let error = op(&["--op", "read", "--path", b]);
    assert!(matches!(error, Err(ActorError::Unexpected(_))), "{error:?}");
    let error = op(&["--op", "create", "--path", b, "--expect-errno", "2"]);
    assert!(matches!(error, Err(ActorError::Unexpected(_))), "{error:?}");
    let error = op(&["--op", "rename", "--path", b]);
    assert!(matches!(error, Err(ActorError::Usage(_))), "{error:?}");
}

#[test]
fn a_tcp_listener_reports_its_port_and_accepts_the_connects() {
    let tmp = tempfile::tempdir().unwrap();
    let port_file = tmp.path().join("port");
    let listen = parse(&[
        "tcp-listen",
        "--addr",
        "127.0.0.1:0",
        "--port-file",
        port_file.to_str().unwrap(),
        "--count",
        "2",
    ]);
    let listener = std::thread::spawn(move || run(&listen.action));
    let port = wait_port(&port_file);
    let addr = format!("127.0.0.1:{port}");
    run(&parse(&["tcp-connect", "--addr", &addr, "--count", "2"]).action).unwrap();
    listener.join().unwrap().unwrap();
    // Nothing listens there any more.
    run(&parse(&["tcp-connect", "--addr", &addr, "--expect-refused"]).action).unwrap();
    let error = run(&parse(&["tcp-connect", "--addr", &addr]).action);
    assert!(matches!(error, Err(ActorError::Io { .. })), "{error:?}");
}

#[test]
fn udp_datagrams_reach_the_receiver_connected_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let port_file = tmp.path().join("port");
    let recv = parse(&[
        "udp-recv",
        "--addr",
        "127.0.0.1:0",
        "--port-file",
        port_file.to_str().unwrap(),
        "--count",
        "2",
    ]);
    let receiver = std::thread::spawn(move || run(&recv.action));
    let port = wait_port(&port_file);
    let addr = format!("127.0.0.1:{port}");
    run(&parse(&["udp-send", "--addr", &addr]).action).unwrap();
    run(&parse(&["udp-send", "--addr", &addr, "--connected"]).action).unwrap();
    receiver.join().unwrap().unwrap();
}
