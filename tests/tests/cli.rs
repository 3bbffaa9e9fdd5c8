//! The CLI's contract: clear errors with file:line:col and exit code 2 for bad input, 3 when
//! the node cannot run the agent; the shipped build carries no test harness.
use std::{fs, process::Command};

use seam_integration_tests::{release_bin, repo_rules_dir, seam_bin};

fn temp_rules(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seam-cli-{}-{}", std::process::id(), files.len()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[test]
fn check_rules_accepts_the_shipped_rules() {
    // The examples refer to the shipped rules: they are loaded together.
    for dirs in [&["demo"][..], &["shipped", "examples"][..]] {
        let dir = repo_rules_dir().join(dirs[0]);
        let out = Command::new(seam_bin())
            .arg("check-rules")
            .args(dirs.iter().map(|d| repo_rules_dir().join(d)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    }
}

#[test]
fn malformed_rules_name_every_error_with_location_and_exit_2() {
    let dir = temp_rules(&[
        (
            "a.toml",
            "[[tenant]]\nname = \"a\"\ncgroups = [\"x/a\"]\nendpoints = [\"10.0.0.300\"]\n",
        ),
        (
            "b.toml",
            "[[rule]]\nid = \"r\"\nexpr = \"trace.has(net.*)\"\nseverity = \"urgent\"\ndescription = \"d\"\n",
        ),
    ]);
    let out = Command::new(seam_bin())
        .arg("check-rules")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a.toml:4:"), "{stderr}");
    assert!(stderr.contains("10.0.0.300"), "{stderr}");
    assert!(stderr.contains("b.toml:4:"), "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");

    // `seam run` refuses to start on the same rules, before touching the kernel.
    let out = Command::new(seam_bin())
        .arg("run")
        .arg("--rules")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn expression_errors_join_the_list_with_toml_positions() {
    let dir = temp_rules(&[
        (
            "a.toml",
            "[[tenant]]\nname = \"a\"\ncgroups = [\"x/a\"]\n\n[[rule]]\nid = \"r\"\nseverity = \"high\"\n\
             description = \"d\"\nexpr = 'trace.has(net.connect).where(peer.tenat != tenant or peer.port == \"x\")'\n",
        ),
        ("b.toml", "[[tenant]]\nname = \"b\"\ncgroups = []\n"),
        ("c.toml", "# nothing\n"),
    ]);
    let out = Command::new(seam_bin())
        .arg("check-rules")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a.toml:9:38: rule \"r\": unknown attribute `peer.tenat`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.toml:9:62: rule \"r\": cannot apply `==`"),
        "{stderr}"
    );
    assert!(stderr.contains("b.toml:2:8:"), "{stderr}");
    assert!(stderr.contains("3 errors"), "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn missing_rules_directory_is_a_clear_error() {
    let out = Command::new(seam_bin())
        .args(["check-rules", "/nonexistent/seam-rules"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/seam-rules"));
}

#[test]
fn not_root_is_refused_with_exit_3() {
    let demo = repo_rules_dir().join("demo");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(seam_bin())
        .arg("run")
        .arg("--rules")
        .arg(&demo)
        .output()
        .expect("setpriv (util-linux) runs seam as nobody");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the node, not the input: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must run as root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `seam run` on the demo rules with `extra` arguments; it must exit 2 before observing.
fn run_demo_rules_expecting_exit_2(extra: &[&str]) -> String {
    seam_integration_tests::require_root();
    let out = Command::new(seam_bin())
        .arg("run")
        .arg("--rules")
        .arg(repo_rules_dir().join("demo"))
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_required_probe_names_the_capability_and_probes() {
    let stderr = run_demo_rules_expecting_exit_2(&[
        "--disable-probe",
        "seam_connect4",
        "--disable-probe",
        "cgroup/connect6",
    ]);
    assert!(stderr.contains("ConnectIntent"), "{stderr}");
    assert!(stderr.contains("seam_connect4"), "{stderr}");
    assert!(stderr.contains("seam_connect6"), "{stderr}");
}

#[test]
fn bad_ring_buffer_size_is_refused() {
    let stderr = run_demo_rules_expecting_exit_2(&["--ring-buffer-bytes", "5000"]);
    assert!(stderr.contains("power of two"), "{stderr}");
}

/// `seam workload` is the test harness's (testkit builds): the shipped build answers it as an
/// unknown subcommand, exit 2, and still has the commands whose processes it replaced.
#[test]
fn the_shipped_build_has_no_workload_but_keeps_demo_chaos_and_their_actor() {
    let run = |bin: &std::path::Path, args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let workload = [
        "workload",
        "--comm",
        "x",
        "tcp-connect",
        "--addr",
        "127.0.0.1:9",
    ];
    let (code, stderr) = run(&release_bin(), &workload);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unrecognized subcommand 'workload'"),
        "{stderr}"
    );
    for args in [
        &["demo", "--help"][..],
        &["chaos", "--help"],
        &["chaos-actor", "--help"],
        &["chaos-actor", "tcp-listen", "--help"],
        &["chaos-actor", "file-op", "--help"],
    ] {
        let (code, stderr) = run(&release_bin(), args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
    // The testkit build the other tests run has it.
    let (code, stderr) = run(&seam_bin(), &["workload", "--help"]);
    assert_eq!(
        code,
        Some(0),
        "SEAM_BIN must be the testkit build: {stderr}"
    );
}
