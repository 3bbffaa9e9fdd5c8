//! Repeated opens silenced in the kernel must never hide a crossing. Each test first makes the
//! kernel count a tenant's repeated reads in one directory (it waits until the agent reports
//! opens counted, so the silence is really in place), then changes what that directory is —
//! renames it into another tenant's tree, mounts another tenant's directory over it — or lets
//! another tenant read there, and requires the crossing to be flagged. Without the generation
//! that every rename and mount change advances, the first two would be silenced.
//!
//! These tests only say something where the live file tier silences (the `sys_exit` tier): on
//! other tiers nothing is counted and the wait for counts fails, naming the tier.
use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use seam_integration_tests::{Agent, Cgroups, WAIT, Workload};
use serde_json::Value;

struct Setup {
    cgroups: Cgroups,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let mut cgroups = Cgroups::new();
        cgroups.create("a");
        cgroups.create("b");
        let dir = std::env::temp_dir().join(format!("{}-silences", cgroups.base));
        for sub in ["a", "b", "neutral"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("a/mine"), "a's data").unwrap();
        fs::write(dir.join("b/secret"), "b's data").unwrap();
        fs::write(dir.join("neutral/x"), "nobody's").unwrap();
        Self { cgroups, dir }
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

[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "A tenant's process accessed another tenant's files"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant and not file.shared)"
"#,
            a = self.cgroups.rel("a"),
            b = self.cgroups.rel("b"),
            dir = self.dir.display(),
        )
    }

    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).to_string_lossy().into_owned()
    }

    /// Reads `path` from tenant `who`'s cgroup.
    fn read(&self, who: &str, path: &str) {
        Workload::start(
            Some(&self.cgroups.rel(who)),
            &format!("tenant-{who}-app"),
            &["file-op", "--op", "read", "--path", path],
        )
        .finish();
    }

    fn start_agent(&self) -> Agent {
        Agent::start_with(
            &self.rules(),
            &["--aggregate-window", "0", "--listen", "127.0.0.1:0"],
        )
    }

    /// Reads `path` from `who` until the agent reports repeated opens of `who` counted in the
    /// kernel: from then on, reads in that directory are silenced.
    fn read_until_silenced(&self, agent: &Agent, who: &str, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.read(who, path);
            if counted(agent, who) > 0.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{who}'s repeated reads of {path} were never counted in the kernel (is the \
                 sys_exit file tier live?); agent log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `seam_file_opens_counted_total` summed over the series of caller tenant `who`.
fn counted(agent: &Agent, who: &str) -> f64 {
    let ready: Value =
        serde_json::from_str(&fs::read_to_string(agent.dir.join("ready.json")).unwrap()).unwrap();
    let addr = ready["listen"].as_str().expect("listen address").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    let series: BTreeMap<&str, f64> = body
        .lines()
        .filter(|l| l.starts_with("seam_file_opens_counted_total{"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    series
        .iter()
        .filter(|(k, _)| k.contains(&format!("tenant=\"{who}\"")))
        .map(|(_, v)| v)
        .sum()
}

fn file_violations(agent: &Agent) -> Vec<Value> {
    agent
        .feed()
        .into_iter()
        .filter(|v| v["kind"] == "file" && v["rule_id"] == "cross-tenant-file")
        .collect()
}

fn wait_flagged(agent: &mut Agent, path: &str, from: &str) -> Value {
    agent.wait_until(&format!("{from}'s access to {path} flagged"), |a| {
        file_violations(a)
            .iter()
            .any(|v| v["target"]["path"] == path && v["intended_tenant"] == from)
    });
    file_violations(agent)
        .into_iter()
        .find(|v| v["target"]["path"] == path)
        .unwrap()
}

fn rename(from: &Path, to: &Path) {
    fs::rename(from, to).unwrap_or_else(|e| panic!("rename {from:?} -> {to:?}: {e}"));
}

#[test]
fn an_owned_root_renamed_into_another_tenants_tree_is_flagged_at_once() {
    let s = Setup::new();
    let mut agent = s.start_agent();
    // a's own root, silenced for a: its repeats are counted, not sent.
    s.read_until_silenced(&agent, "a", &s.p("a/mine"));
    // The test process (in no tenant's cgroup) moves a's root into b's tree: the directory is
    // the same object with a path b owns now.
    rename(&s.dir.join("a"), &s.dir.join("b/moved"));
    s.read("a", &s.p("b/moved/mine"));
    let v = wait_flagged(&mut agent, &s.p("b/moved/mine"), "a");
    assert_eq!(v["actual_tenant"], "b", "{v}");
    agent.stop();
}

#[test]
fn a_silenced_directory_under_a_bind_mount_of_another_tenant_is_flagged() {
    let s = Setup::new();
    let mut agent = s.start_agent();
    s.read_until_silenced(&agent, "a", &s.p("neutral/x"));
    // b's directory mounted over the silenced one: the same path now shows b's files.
    let status = Command::new("mount")
        .arg("--bind")
        .arg(s.dir.join("b"))
        .arg(s.dir.join("neutral"))
        .status()
        .unwrap();
    assert!(status.success(), "mount --bind");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(s.dir.join("neutral"));
    s.read("a", &s.p("neutral/secret"));
    let v = wait_flagged(&mut agent, &s.p("b/secret"), "a");
    assert_eq!(v["actual_tenant"], "b", "{v}");
    agent.stop();
}

#[test]
fn a_file_read_by_its_owner_then_by_another_tenant_is_flagged() {
    let s = Setup::new();
    let mut agent = s.start_agent();
    // b's reads of its own file are silenced for b's cgroup only.
    s.read_until_silenced(&agent, "b", &s.p("b/secret"));
    s.read("a", &s.p("b/secret"));
    wait_flagged(&mut agent, &s.p("b/secret"), "a");
    // And a's repeats of that crossing are never silenced: each one is a violation.
    s.read("a", &s.p("b/secret"));
    agent.wait_until("a's second crossing flagged", |a| {
        file_violations(a).len() >= 2
    });
    let stats = agent.stop();
    assert!(
        stats["file_opens_counted"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}

#[test]
fn a_directory_renamed_into_another_tenants_tree_by_another_name_is_flagged() {
    let s = Setup::new();
    let mut agent = s.start_agent();
    s.read_until_silenced(&agent, "a", &s.p("neutral/x"));
    // An unowned directory a reads often, moved under b by a process in b's tenant.
    let status = Command::new(seam_integration_tests::seam_bin())
        .args([
            "workload",
            "--cgroup",
            &s.cgroups.rel("b"),
            "file-op",
            "--op",
            "rename",
        ])
        .args(["--path", &s.p("neutral"), "--to", &s.p("b/inbox")])
        .status()
        .unwrap();
    assert!(status.success(), "rename from b's cgroup");
    s.read("a", &s.p("b/inbox/x"));
    let v = wait_flagged(&mut agent, &s.p("b/inbox/x"), "a");
    assert_eq!(v["target"]["op"], "read", "{v}");
    agent.stop();
}
