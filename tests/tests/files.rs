//! File access attribution on the real kernel: paths are resolved in the kernel from the object
//! actually opened, so relative paths, dirfds, `..`, symlinks and bind mounts cannot hide the
//! target; failed attempts are recorded with their outcome; long and deep paths are truncated
//! explicitly.
use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Command,
};

use seam_integration_tests::{Agent, Cgroups, Workload};
use serde_json::Value;

/// Tenant a and b with their own cgroups and directories, a shared platform tenant owning
/// /etc, and the file rules.
struct Setup {
    cgroups: Cgroups,
    a: String,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let mut cgroups = Cgroups::new();
        let a = cgroups.create("a");
        cgroups.create("b");
        let dir = std::env::temp_dir().join(format!("{}-files", cgroups.base));
        for sub in ["a", "b"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("a/mine"), "a's data").unwrap();
        fs::write(dir.join("b/secret"), "b's data").unwrap();
        Self { cgroups, a, dir }
    }

    fn rules(&self) -> String {
        format!(
            r#"
[[tenant]]
name = "a"
cgroups = ["{a}"]
paths = ["{dir}/a"]

[[tenant]]
name = "b"
cgroups = ["{b}"]
paths = ["{dir}/b"]

[[tenant]]
name = "platform"
cgroups = []
paths = ["/etc"]
shared = true

[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "A tenant's process accessed another tenant's files"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant and not file.shared)"

[[rule]]
id = "unresolved-path"
severity = "low"
description = "A tenant's process touched a path too long or deep to resolve in full"
expr = "trace.has(file.*).where(tenant != null and file.path starts_with \"...\")"
"#,
            a = self.cgroups.rel("a"),
            b = self.cgroups.rel("b"),
            dir = self.dir.display(),
        )
    }

    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).to_string_lossy().into_owned()
    }

    /// Runs `file-op` in tenant a's cgroup.
    fn op(&self, args: &[&str]) {
        op_in(&self.a, None, args);
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn op_in(cgroup: &str, uid: Option<&str>, args: &[&str]) {
    let mut full = Vec::new();
    if let Some(uid) = uid {
        full.extend(["--uid", uid]);
    }
    full.push("file-op");
    full.extend(args);
    // `--uid` belongs to `workload`, before the subcommand.
    let (pre, post) = full.split_at(if uid.is_some() { 2 } else { 0 });
    let mut args: Vec<&str> = pre.to_vec();
    args.extend(post);
    Workload::start(Some(cgroup), "tenant-a-app", &args).finish();
}

fn file_violations(agent: &Agent, rule: &str) -> Vec<Value> {
    agent
        .feed()
        .into_iter()
        .filter(|v| v["kind"] == "file" && v["rule_id"] == rule)
        .collect()
}

fn assert_target(v: &Value, path: &str, op: &str, outcome: &str) {
    assert_eq!(v["intended_tenant"], "a", "{v}");
    assert_eq!(v["actual_tenant"], "b", "{v}");
    assert_eq!(v["caller"]["comm"], "tenant-a-app", "{v}");
    assert_eq!(v["target"]["tenant"], "b", "{v}");
    assert_eq!(v["target"]["path"], path, "{v}");
    assert_eq!(v["target"]["op"], op, "{v}");
    assert_eq!(v["target"]["outcome"], outcome, "{v}");
}

#[test]
fn reads_of_another_tenants_file_are_flagged_however_the_path_is_spelled() {
    let s = Setup::new();
    symlink(s.dir.join("b/secret"), s.dir.join("a/link")).unwrap();
    let mut agent = Agent::start_with(&s.rules(), &["--aggregate-window", "0"]);
    let secret = s.p("b/secret");
    // Absolute, dirfd-relative, `..` escape from a's tree, and a symlink in a's tree.
    s.op(&["--op", "read", "--path", &secret]);
    s.op(&["--op", "read", "--dir", &s.p("b"), "--path", "secret"]);
    s.op(&["--op", "read", "--path", &s.p("a/../b/secret")]);
    s.op(&["--op", "read", "--dir", &s.p("a"), "--path", "../b/secret"]);
    s.op(&["--op", "read", "--path", &s.p("a/link")]);
    // Same tenant and shared paths: seen, not flagged.
    s.op(&["--op", "read", "--path", &s.p("a/mine")]);
    s.op(&["--op", "read", "--path", "/etc/hostname"]);
    // Opening b's directory as the dirfd is itself a read of b's tree.
    agent.wait_until("six file violations", |a| {
        file_violations(a, "cross-tenant-file").len() >= 6
    });
    let stats = agent.stop();
    let violations = file_violations(&agent, "cross-tenant-file");
    assert_eq!(violations.len(), 6, "{violations:#?}");
    let (secrets, dirs): (Vec<_>, Vec<_>) = violations
        .iter()
        .partition(|v| v["target"]["path"] == secret.as_str());
    assert_eq!(secrets.len(), 5, "{violations:#?}");
    assert_target(dirs[0], &s.p("b"), "read", "ok");
    for v in secrets {
        assert_target(v, &secret, "read", "ok");
        assert_eq!(v["target"]["path_confidence"], "full", "{v}");
    }
    assert!(
        stats["events_by_kind"]["file"].as_u64().unwrap() >= 7,
        "{stats}"
    );
}

#[test]
fn bind_mount_of_another_tenants_directory_does_not_hide_it() {
    let s = Setup::new();
    let mount_point = s.dir.join("a/bshare");
    fs::create_dir_all(&mount_point).unwrap();
    let status = Command::new("mount")
        .arg("--bind")
        .arg(s.dir.join("b"))
        .arg(&mount_point)
        .status()
        .unwrap();
    assert!(status.success(), "mount --bind");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.clone());
    let mut agent = Agent::start_with(&s.rules(), &["--aggregate-window", "0"]);
    s.op(&["--op", "read", "--path", &s.p("a/bshare/secret")]);
    agent.wait_until("a violation", |a| {
        !file_violations(a, "cross-tenant-file").is_empty()
    });
    agent.stop();
    let violations = file_violations(&agent, "cross-tenant-file");
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_target(&violations[0], &s.p("b/secret"), "read", "ok");
}

#[test]
fn create_unlink_rename_and_truncate_across_trees() {
    let s = Setup::new();
    fs::write(s.dir.join("b/victim"), "x").unwrap();
    fs::write(s.dir.join("b/moved"), "x").unwrap();
    fs::write(s.dir.join("b/big"), "xxxx").unwrap();
    let mut agent = Agent::start_with(&s.rules(), &["--aggregate-window", "0"]);
    s.op(&["--op", "create", "--path", &s.p("b/new")]);
    s.op(&["--op", "unlink", "--dir", &s.p("b"), "--path", "victim"]);
    s.op(&[
        "--op",
        "rename",
        "--path",
        &s.p("b/moved"),
        "--to",
        &s.p("a/stolen"),
    ]);
    s.op(&["--op", "truncate", "--path", &s.p("b/big")]);
    // Its own tree: not flagged.
    s.op(&["--op", "create", "--path", &s.p("a/new")]);
    // Four operations on b's files, plus opening b's directory as the unlink's dirfd.
    agent.wait_until("five violations", |a| {
        file_violations(a, "cross-tenant-file").len() >= 5
    });
    agent.stop();
    let violations = file_violations(&agent, "cross-tenant-file");
    assert_eq!(violations.len(), 5, "{violations:#?}");
    let find = |op: &str| {
        violations
            .iter()
            .find(|v| v["target"]["op"] == op)
            .unwrap_or_else(|| panic!("no {op} violation in {violations:#?}"))
    };
    assert_target(find("create"), &s.p("b/new"), "create", "ok");
    assert_target(find("delete"), &s.p("b/victim"), "delete", "ok");
    assert_eq!(
        find("delete")["target"]["path_confidence"],
        "full",
        "plain name in a dirfd"
    );
    assert_target(find("rename"), &s.p("b/moved"), "rename", "ok");
    assert_eq!(find("rename")["target"]["role"], "from");
    assert_target(find("truncate"), &s.p("b/big"), "truncate", "ok");
    assert!(!s.dir.join("b/victim").exists());
}

#[test]
fn denied_open_is_recorded_as_an_attempt() {
    let s = Setup::new();
    fs::set_permissions(s.dir.join("b/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    for d in [s.dir.as_path(), &s.dir.join("b")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut agent = Agent::start_with(&s.rules(), &["--aggregate-window", "0"]);
    op_in(
        &s.a,
        Some("65534"),
        &[
            "--op",
            "read",
            "--path",
            &s.p("b/secret"),
            "--expect-errno",
            "13",
        ],
    );
    agent.wait_until("a violation", |a| {
        !file_violations(a, "cross-tenant-file").is_empty()
    });
    agent.stop();
    let violations = file_violations(&agent, "cross-tenant-file");
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_target(&violations[0], &s.p("b/secret"), "read", "denied");
    assert_eq!(violations[0]["caller"]["uid"], 65534);
}

/// Creates `levels` nested directories named `name(i)` under `base` with mkdirat/openat, so the
/// total may exceed PATH_MAX; returns an open fd on the deepest one.
fn nest(base: &Path, levels: usize, name: impl Fn(usize) -> String) -> std::fs::File {
    use std::{ffi::CString, os::fd::FromRawFd};
    let mut dir = std::fs::File::open(base).unwrap();
    for i in 0..levels {
        let c = CString::new(name(i)).unwrap();
        // SAFETY: plain *at syscalls on an fd we own and a NUL-terminated name.
        let fd = unsafe {
            use std::os::fd::AsRawFd;
            assert_eq!(
                libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755),
                0,
                "mkdirat"
            );
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY,
            )
        };
        assert!(fd >= 0, "openat");
        // SAFETY: fd was just opened and is owned here.
        dir = unsafe { std::fs::File::from_raw_fd(fd) };
    }
    dir
}

/// Reads `leaf` in the directory `dir` (an open fd of this test process) from tenant a.
fn read_leaf_in(s: &Setup, dir: &std::fs::File) {
    use std::os::fd::AsRawFd;
    fs::write(format!("/proc/self/fd/{}/leaf", dir.as_raw_fd()), "deep").unwrap();
    let via = format!("/proc/{}/fd/{}", std::process::id(), dir.as_raw_fd());
    s.op(&["--op", "read", "--dir", &via, "--path", "leaf"]);
}

/// Reads a leaf at the bottom of `levels` nested directories named `name(i)` in b's tree from
/// tenant a, and checks the violation's path is explicitly truncated.
fn assert_truncated_leaf(levels: usize, name: impl Fn(usize) -> String) {
    let s = Setup::new();
    let deep = nest(&s.dir.join("b"), levels, name);
    let mut agent = Agent::start_with(&s.rules(), &["--aggregate-window", "0"]);
    read_leaf_in(&s, &deep);
    agent.wait_until("an unresolved-path violation", |a| {
        !file_violations(a, "unresolved-path").is_empty()
    });
    agent.stop();
    let violations = file_violations(&agent, "unresolved-path");
    let v = violations
        .iter()
        .find(|v| v["target"]["path"].as_str().unwrap().ends_with("/leaf"))
        .unwrap_or_else(|| panic!("no truncated leaf in {violations:#?}"));
    let path = v["target"]["path"].as_str().unwrap();
    assert!(path.starts_with(".../"), "{path}");
    assert_eq!(v["target"]["path_truncated"], true, "{v}");
    assert_eq!(v["target"]["path_confidence"], "partial", "{v}");
}

#[test]
fn paths_deeper_than_the_walk_bound_are_truncated_explicitly() {
    // 120 levels: deeper than the kernel walk's bound (96), well under PATH_MAX.
    assert_truncated_leaf(120, |i| format!("d{i}"));
}

#[test]
fn paths_longer_than_a_page_are_truncated_explicitly() {
    // 30 levels of 200-byte names: 6000 bytes, longer than a page and than PATH_MAX.
    assert_truncated_leaf(30, |i| format!("{i:03}{}", "x".repeat(197)));
}

#[test]
fn syscall_tracepoints_are_attached_only_when_a_rule_needs_file_spans() {
    let s = Setup::new();
    let live = |agent: &Agent| -> Vec<String> {
        let ready: Value =
            serde_json::from_str(&fs::read_to_string(agent.dir.join("ready.json")).unwrap())
                .unwrap();
        ready["live_hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    };
    // The syscall hooks: one program on raw_syscalls' sys_exit (x86-64), else a pair per
    // file syscall.
    let syscall_hook = |h: &String| h == "tp_btf/sys_exit" || h.starts_with("tracepoint/syscalls/");
    let mut with_files = Agent::start(&s.rules());
    let hooks = live(&with_files);
    with_files.stop();
    assert!(hooks.iter().any(syscall_hook), "{hooks:?}");
    let network_only = seam_integration_tests::two_tenants(&s.cgroups, "");
    let mut without = Agent::start(&network_only);
    let hooks = live(&without);
    without.stop();
    assert!(!hooks.iter().any(syscall_hook), "{hooks:?}");
    assert!(hooks.iter().any(|h| h == "cgroup/connect4"), "{hooks:?}");
}
