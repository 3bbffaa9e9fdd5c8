//! `seam demo`: two tenant cgroups on this node, a listener in each, one same-tenant connection
//! (not flagged) and one cross-tenant connection (flagged), with Seam watching. Removes its
//! cgroups and processes on every exit path, Ctrl-C included; touches nothing else.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    daemon,
    daemon::AgentOptions,
    evidence::history::HistoryConfig,
    kernel::preflight,
    output::SinkOptions,
    policy::{DEMO_SOURCES, RuleSet},
};

/// The demo's sealed history (`seam demo --store DIR`).
pub(crate) struct DemoHistory {
    pub config: HistoryConfig,
    /// The master key file (None: `SEAM_MASTER_KEY`).
    pub key_file: Option<PathBuf>,
    /// The master key file the demo created (said where).
    pub created_key: Option<PathBuf>,
}

/// Where the demo keeps the master key of a store it was not given a key for: beside the
/// store (never inside it), `<store>.master-key`.
pub(crate) fn master_key_path(store: &Path) -> PathBuf {
    let text = store.to_string_lossy();
    PathBuf::from(format!("{}.master-key", text.trim_end_matches('/')))
}

/// Writes the embedded rules to `<store>.rules/` (what replay and report need) and prints the
/// exact commands that read the history back.
#[allow(clippy::print_stdout)]
fn history_commands(store: &Path, key_file: Option<&Path>, created: Option<&Path>) -> Result<()> {
    let rules = PathBuf::from(format!(
        "{}.rules",
        store.to_string_lossy().trim_end_matches('/')
    ));
    fs::create_dir_all(&rules).with_context(|| format!("cannot create {}", rules.display()))?;
    for (name, text) in DEMO_SOURCES {
        let file = Path::new(name).file_name().unwrap_or_default();
        fs::write(rules.join(file), text)
            .with_context(|| format!("cannot write {}", rules.join(file).display()))?;
    }
    let seam = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("seam"));
    let key = key_file
        .map(|k| format!(" --master-key-file {}", k.display()))
        .unwrap_or_default();
    let base = format!(
        "--store {}{key} --rules {}",
        store.display(),
        rules.display()
    );
    if let Some(created) = created {
        println!(
            "seam demo: created master key file {} for the store (keep it apart from the store)",
            created.display()
        );
    }
    println!(
        "seam demo: history sealed per tenant in {}",
        store.display()
    );
    println!("seam demo: re-evaluate it (breach scope as JSON):");
    println!("  {} replay {base}", seam.display());
    println!("seam demo: report on it (JSON, Markdown or a self-contained HTML page):");
    println!(
        "  {} report {base} --format html --output seam-report.html",
        seam.display()
    );
    println!("seam demo: gate on it (exit 0 when no violation, 1 listing them):");
    println!("  {} validate {base}", seam.display());
    Ok(())
}

const DEMO_ROOT: &str = "seam-demo";
const TENANT_A: &str = "seam-demo/tenant-a";
const TENANT_B: &str = "seam-demo/tenant-b";
/// The tenants' data directories (rules/demo/tenants.toml `paths`).
const DATA_ROOT: &str = "/tmp/seam-demo";

/// Owns the demo's cgroups and child processes; cleans both up when dropped.
struct DemoGuard {
    cgroup_root: PathBuf,
    children: Vec<Child>,
    workdir: PathBuf,
}

impl DemoGuard {
    fn create(cgroup_root: &Path) -> Result<Self> {
        let guard = Self {
            cgroup_root: cgroup_root.to_owned(),
            children: Vec::new(),
            workdir: std::env::temp_dir().join(format!("seam-demo-{}", std::process::id())),
        };
        guard.remove_cgroups();
        for cgroup in [TENANT_A, TENANT_B] {
            let path = cgroup_root.join(cgroup);
            fs::create_dir_all(&path)
                .with_context(|| format!("cannot create cgroup {}", path.display()))?;
        }
        fs::create_dir_all(&guard.workdir)?;
        for (tenant, file, text) in [
            ("tenant-a", "notes.txt", "tenant-a's own notes\n"),
            (
                "tenant-b",
                "customers.csv",
                "id,name\n1,tenant-b's customer\n",
            ),
        ] {
            let dir = Path::new(DATA_ROOT).join(tenant);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::write(dir.join(file), text)?;
        }
        Ok(guard)
    }

    fn spawn(&mut self, cgroup: &str, comm: &str, args: &[&str]) -> Result<()> {
        let child = crate::chaos::actor::command(cgroup, comm)
            .context("cannot find the seam binary")?
            .args(args)
            .spawn()
            .with_context(|| format!("cannot start {comm}"))?;
        self.children.push(child);
        Ok(())
    }

    fn wait_port(&self, name: &str) -> Result<u16> {
        let path = self.workdir.join(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(text) = fs::read_to_string(&path) {
                return text.trim().parse().context("bad port file");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("listener {name} did not start within 10 s")
    }

    fn wait_children(&mut self) -> Result<()> {
        for child in &mut self.children {
            let status = child.wait()?;
            if !status.success() {
                bail!("a demo process failed: {status}");
            }
        }
        self.children.clear();
        Ok(())
    }

    fn remove_cgroups(&self) {
        for cgroup in [TENANT_A, TENANT_B, DEMO_ROOT] {
            let path = self.cgroup_root.join(cgroup);
            if !path.exists() {
                continue;
            }
            // Leftovers from an interrupted run: end their processes first.
            if let Ok(procs) = fs::read_to_string(path.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            for _ in 0..50 {
                if fs::remove_dir(&path).is_ok() || !path.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for DemoGuard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_cgroups();
        let _ = fs::remove_dir_all(&self.workdir);
        let _ = fs::remove_dir_all(DATA_ROOT);
    }
}

/// Runs the demo; fails unless Seam saw both connections and flagged exactly the
/// cross-tenant connection and the cross-tenant file read. Returns the number of violations.
#[allow(clippy::print_stdout)]
pub(crate) async fn run(
    node: String,
    otlp: Option<crate::output::otlp::OtlpConfig>,
    history: Option<DemoHistory>,
) -> Result<u64> {
    preflight::require_root()?;
    let cgroup_root = preflight::cgroup2_mount()?;
    let rules = RuleSet::demo().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut guard = DemoGuard::create(&cgroup_root)?;
    let (history_config, history) = match history {
        Some(DemoHistory {
            config,
            key_file,
            created_key,
        }) => (Some(config), Some((key_file, created_key))),
        None => (None, None),
    };
    let store = history_config.as_ref().map(|c| c.dir.clone());
    let agent = daemon::start(agent_options(rules, node, otlp, history_config)).await?;
    let outcome = tokio::select! {
        result = stage(&mut guard) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let stats = agent.stop().await;
    drop(guard);
    outcome?;
    println!(
        "seam demo: {} connection(s) and {} file access(es) seen, {} violation(s) from {} events \
         ({} lost); expected 2 connections (tenant-a -> tenant-a, tenant-a -> tenant-b) and 2 \
         violations (the connection to tenant-b, the read of tenant-b's file); live hooks: {}",
        stats.spans,
        stats.file_spans,
        stats.violations,
        stats.events_total,
        stats.lost_total,
        stats.live_hooks.join(", ")
    );
    if stats.spans < 2 || stats.violations != 2 {
        bail!(
            "the demo did not see what it staged: {} connection(s), {} violation(s)",
            stats.spans,
            stats.violations
        );
    }
    if let (Some(store), Some((key_file, created))) = (&store, &history) {
        history_commands(store, key_file.as_deref(), created.as_deref())?;
    }
    Ok(stats.violations)
}

/// The agent as the demo runs it: the embedded rules, no listener, no container runtime, and
/// no start record (people read the feed).
fn agent_options(
    rules: RuleSet,
    node: String,
    otlp: Option<crate::output::otlp::OtlpConfig>,
    history: Option<HistoryConfig>,
) -> AgentOptions {
    AgentOptions {
        rules,
        node,
        feeds: SinkOptions::default(),
        listen: None,
        listen_security: crate::serve::ListenSecurity::none(),
        ready_file: None,
        rescan: Duration::from_secs(2),
        ring_bytes: None,
        budget: crate::kernel::probes::budget::DEFAULT,
        disabled_probes: Vec::new(),
        otlp,
        receive: None,
        max_open_spans: 100_000,
        procfs: PathBuf::from("/proc"),
        history,
        cgroup_root: None,
        bpffs: None,
        start_record: false,
        runtime: crate::attribution::pods::RuntimeConfig {
            kind: crate::attribution::pods::RuntimeKind::None,
            ..crate::attribution::pods::RuntimeConfig::default()
        },
    }
}

/// The scenario: a listener in each tenant, client-a connecting to both, then app-a reading
/// its own notes and tenant-b's customers.
async fn stage(guard: &mut DemoGuard) -> Result<()> {
    let port_file = |name: &str| guard.workdir.join(name).to_string_lossy().into_owned();
    let (a_port, b_port) = (port_file("a.port"), port_file("b.port"));
    for (tenant, comm, port_file) in [(TENANT_A, "web-a", &a_port), (TENANT_B, "db-b", &b_port)] {
        guard.spawn(
            tenant,
            comm,
            &[
                "tcp-listen",
                "--addr",
                "127.0.0.1:0",
                "--port-file",
                port_file,
            ],
        )?;
    }
    let a = guard.wait_port("a.port")?;
    let b = guard.wait_port("b.port")?;
    eprintln!("seam demo: tenant-a listens on 127.0.0.1:{a}, tenant-b on 127.0.0.1:{b}");
    eprintln!("seam demo: client-a (tenant-a) connects to tenant-a (allowed), then to tenant-b");
    for port in [a, b] {
        guard.spawn(
            TENANT_A,
            "client-a",
            &["tcp-connect", "--addr", &format!("127.0.0.1:{port}")],
        )?;
    }
    guard.wait_children()?;
    eprintln!("seam demo: app-a (tenant-a) reads its own notes, then tenant-b's customers.csv");
    for file in ["tenant-a/notes.txt", "tenant-b/customers.csv"] {
        let path = format!("{DATA_ROOT}/{file}");
        guard.spawn(
            TENANT_A,
            "app-a",
            &["file-op", "--op", "read", "--path", &path],
        )?;
        guard.wait_children()?;
    }
    Ok(())
}
