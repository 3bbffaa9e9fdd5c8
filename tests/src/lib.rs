//! Harness for Seam's integration tests on the real kernel: tenant cgroups created per test,
//! the real `seam` binary as the agent, and real workloads (`seam workload ...`, in the testkit
//! build only) moved into the cgroups. Everything panics with context instead of returning
//! errors, and every guard cleans up on drop, so a failing test leaves no cgroups or processes
//! behind.
//!
//! Needs root. `cargo xtask test` sets `SEAM_BIN` (the testkit build, with `seam workload`),
//! `SEAM_RELEASE_BIN` (the shipped build) and `SEAM_RULES_DIR`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod bpf;
pub mod docker;
pub mod history;
pub mod http;
pub mod python;
pub mod store;

/// How long to wait for anything the agent should do.
pub const WAIT: Duration = Duration::from_secs(15);

/// The seam binary under test: the testkit build (`SEAM_BIN`; `cargo xtask test` passes
/// target/release/seam-testkit), the agent plus `seam workload`, which most tests need for the
/// processes they move into tenant cgroups.
pub fn seam_bin() -> PathBuf {
    built_bin("SEAM_BIN", "seam-testkit")
}

/// The shipped build, without the testkit feature (`SEAM_RELEASE_BIN`; `cargo xtask test`
/// passes target/release/seam): what the demo, chaos and CLI tests run, to prove the shipped
/// commands need nothing from the harness.
pub fn release_bin() -> PathBuf {
    built_bin("SEAM_RELEASE_BIN", "seam")
}

fn built_bin(var: &str, name: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(var) {
        return PathBuf::from(bin);
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release")
        .join(name);
    assert!(
        default.exists(),
        "{var} is not set and no seam binary is at {}; run the tests with `cargo xtask test` \
         (as root)",
        default.display()
    );
    default
}

/// The repository's rules/ directory.
pub fn repo_rules_dir() -> PathBuf {
    std::env::var_os("SEAM_RULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules"))
}

/// Panics unless running as root (the tests create cgroups and load eBPF programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests need root: run `sudo -E cargo xtask test`"
    );
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .expect("no cgroup2 mount on this machine")
}

fn unique() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "seam-it-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private cgroup subtree for one test: `<mount>/seam-it-<pid>-<n>/<name>...`.
pub struct Cgroups {
    pub root: PathBuf,
    /// Relative to the cgroup2 mount, e.g. `seam-it-42-0`.
    pub base: String,
    created: Vec<PathBuf>,
}

impl Cgroups {
    pub fn new() -> Self {
        require_root();
        let root = cgroup2_root();
        let base = unique();
        let dir = root.join(&base);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self {
            root,
            base,
            created: vec![dir],
        }
    }

    /// Path of `name` relative to the cgroup2 mount.
    pub fn rel(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Creates `<base>/<name>`; returns its path relative to the mount.
    pub fn create(&mut self, name: &str) -> String {
        let dir = self.root.join(&self.base).join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        self.created.push(dir);
        self.rel(name)
    }
}

impl Default for Cgroups {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // Deepest first; kill anything left inside.
        for dir in self.created.iter().rev() {
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    // SAFETY: sending a signal has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            for _ in 0..100 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A running `seam run` with its feed, ready, stats and log files in a temp dir.
pub struct Agent {
    child: Option<Child>,
    pub dir: PathBuf,
}

/// Final counters from `--stats-file`.
pub type Stats = Value;

impl Agent {
    /// Writes `rules` (TOML) to a temp rules dir and starts the agent; returns once it is ready.
    pub fn start(rules: &str) -> Self {
        Self::start_with(rules, &[])
    }

    /// [`Agent::start`] with extra `seam run` arguments.
    pub fn start_with(rules: &str, extra: &[&str]) -> Self {
        Self::start_env(rules, extra, &[])
    }

    /// [`Agent::start_with`] with extra environment variables (e.g. `SEAM_LOG=debug`).
    pub fn start_env(rules: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        require_root();
        let dir = std::env::temp_dir().join(unique());
        fs::create_dir_all(dir.join("rules")).expect("create agent temp dir");
        fs::write(dir.join("rules/tenants.toml"), rules).expect("write rules");
        let log = fs::File::create(dir.join("agent.log")).expect("create log");
        let child = Command::new(seam_bin())
            .arg("run")
            .arg("--rules")
            .arg(dir.join("rules"))
            .arg("--feed-file")
            .arg(dir.join("feed.jsonl"))
            .arg("--ready-file")
            .arg(dir.join("ready.json"))
            .arg("--stats-file")
            .arg(dir.join("stats.json"))
            .arg("--quiet")
            .args(extra)
            .env("SEAM_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start seam run");
        let mut agent = Self {
            child: Some(child),
            dir,
        };
        agent.wait_until("the agent to become ready", |a| {
            a.dir.join("ready.json").exists()
        });
        agent
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// The ready file's JSON (live hooks, listen addresses).
    pub fn ready(&self) -> Value {
        let text = fs::read_to_string(self.dir.join("ready.json")).expect("read ready file");
        serde_json::from_str(&text).expect("ready file is JSON")
    }

    /// The agent's resident memory in KiB (0 once it is gone).
    pub fn rss_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Kills the agent with SIGKILL (no flush, no clean-up of its own) and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("agent already stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    }

    /// [`Agent::stop`], but panics if the agent has not exited `limit` after SIGINT; also
    /// returns how long it took.
    pub fn stop_within(&mut self, limit: Duration) -> (Stats, Duration) {
        let mut child = self.child.take().expect("agent already stopped");
        let started = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for seam") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "seam did not stop within {limit:?} of SIGINT; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        assert!(
            status.success(),
            "seam exited with {status}; log:\n{}",
            self.log()
        );
        let text = fs::read_to_string(self.dir.join("stats.json"))
            .unwrap_or_else(|e| panic!("no stats file ({e}); log:\n{}", self.log()));
        (
            serde_json::from_str(&text).expect("stats file is JSON"),
            took,
        )
    }

    /// The rules file the agent was started with (rewrite it to test reloads).
    pub fn rules_file(&self) -> PathBuf {
        self.dir.join("rules/tenants.toml")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Polls `condition` until it holds; panics with the agent's log after [`WAIT`].
    pub fn wait_until(&mut self, what: &str, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if condition(self) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "seam exited ({status}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}; agent log:\n{}", self.log());
    }

    /// Feed records so far (violations and loss records). A line the agent is writing now may
    /// be visible in part (a write crossing a page boundary): only whole lines are read.
    pub fn feed(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.join("feed.jsonl")).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad feed line {l}: {e}")))
            .collect()
    }

    /// Network violations so far.
    pub fn violations(&self) -> Vec<Value> {
        self.feed()
            .into_iter()
            .filter(|v| v["kind"] == "network")
            .collect()
    }

    /// Waits until at least `n` network violations are in the feed.
    pub fn wait_violations(&mut self, n: usize) -> Vec<Value> {
        self.wait_until(&format!("{n} violation(s)"), |a| a.violations().len() >= n);
        self.violations()
    }

    /// Stops the agent (SIGINT), waits for it and returns its final counters. Everything the
    /// agent had seen is flushed to the feed by then.
    pub fn stop(&mut self) -> Stats {
        let mut child = self.child.take().expect("agent already stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().expect("wait for seam");
        assert!(
            status.success(),
            "seam exited with {status}; log:\n{}",
            self.log()
        );
        let text = fs::read_to_string(self.dir.join("stats.json"))
            .unwrap_or_else(|e| panic!("no stats file ({e}); log:\n{}", self.log()));
        serde_json::from_str(&text).expect("stats file is JSON")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A workload process (`seam workload`, of the testkit build [`seam_bin`]) in a cgroup, killed
/// on drop.
pub struct Workload {
    child: Child,
}

impl Workload {
    /// Starts `seam workload --cgroup <cgroup> --comm <comm> <args...>`; `cgroup` None leaves the
    /// process in the test's own (unregistered) cgroup.
    pub fn start(cgroup: Option<&str>, comm: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(seam_bin());
        cmd.arg("workload");
        if let Some(cgroup) = cgroup {
            cmd.args(["--cgroup", cgroup]);
        }
        let child = cmd
            .args(["--comm", comm])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start workload {comm}: {e}"));
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the workload to finish successfully.
    pub fn finish(mut self) {
        let status = self.child.wait().expect("wait for workload");
        assert!(status.success(), "workload failed: {status}");
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A listener workload and the port it bound.
pub struct Listener {
    pub workload: Workload,
    pub port: u16,
}

/// Starts a `tcp-listen` or `udp-recv` workload on `bind` (e.g. `127.0.0.1:0`) accepting `count`
/// connections/datagrams, and waits for its port.
pub fn listen(kind: &str, cgroup: Option<&str>, comm: &str, bind: &str, count: u32) -> Listener {
    listen_with(kind, cgroup, comm, bind, count, &[])
}

/// [`listen`] with extra workload arguments (e.g. `--hold-file`).
pub fn listen_with(
    kind: &str,
    cgroup: Option<&str>,
    comm: &str,
    bind: &str,
    count: u32,
    extra: &[&str],
) -> Listener {
    let port_file = std::env::temp_dir().join(format!("{}.port", unique()));
    let port_arg = port_file.to_string_lossy().into_owned();
    let count = count.to_string();
    let mut args = vec![
        kind,
        "--addr",
        bind,
        "--port-file",
        &port_arg,
        "--count",
        &count,
    ];
    args.extend_from_slice(extra);
    let workload = Workload::start(cgroup, comm, &args);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = fs::read_to_string(&port_file) {
            let _ = fs::remove_file(&port_file);
            let port = text.trim().parse().expect("port file holds a port");
            return Listener { workload, port };
        }
        assert!(Instant::now() < deadline, "listener {comm} did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tenants `a` and `b` owning `<base>/a` and `<base>/b`, no rules.
pub fn tenants_ab(cgroups: &Cgroups) -> String {
    format!(
        "\n[[tenant]]\nname = \"a\"\ncgroups = [\"{a}\"]\n\n[[tenant]]\nname = \"b\"\ncgroups = [\"{b}\"]\n",
        a = cgroups.rel("a"),
        b = cgroups.rel("b"),
    )
}

/// The shipped rules (`rules/shipped/*.toml`) as one TOML text.
pub fn shipped_rules() -> String {
    let dir = repo_rules_dir().join("shipped");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rules with tenants `a` and `b` owning `<base>/a` and `<base>/b`, the cross-tenant network
/// rule, plus `extra` TOML.
pub fn two_tenants(cgroups: &Cgroups, extra: &str) -> String {
    format!(
        r#"
[[tenant]]
name = "a"
cgroups = ["{a}"]

[[tenant]]
name = "b"
cgroups = ["{b}"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)"
{extra}
"#,
        a = cgroups.rel("a"),
        b = cgroups.rel("b"),
    )
}
