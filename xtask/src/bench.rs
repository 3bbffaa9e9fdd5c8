//! `cargo xtask bench [--iterations N] [--rounds R] [--with-peer|--no-peer]`: measures the
//! agent's overhead on four loops (see [`WORKLOADS`]): TCP connect+accept+close, openat+close
//! and send/recv throughput in a tenant cgroup, and getppid outside any tenant (the node-wide
//! cost of a syscall hook), in interleaved rounds without Seam, with empty programs on the hooks
//! Seam has live (the floor), with Seam (`seam run`) and, if bpftrace is installed, with a
//! bpftrace one-liner as a peer; then the user-space pipeline's events/s on one thread. Prints
//! the medians and ratios, writes `target/bench/latest.json` and the table in
//! `docs/BENCHMARKS.md`. Cgroups, temp files and child processes are cleaned up on every exit
//! path (guards with `Drop`). Runs the testkit build (`target/release/seam-testkit`): the agent
//! it measures is the shipped code, plus `seam workload` and the floor's object.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

mod cgroup;
mod history;
mod kernel;
mod latency;
mod otlp;
mod procs;
mod report;
mod ring;
mod rss;
mod stages;

use cgroup::{Scratch, cgroup2_mount};
use procs::{PeerRun, Proc, tail};
use report::Report;

use crate::{build, setup::Apt, util};

const BENCH_CGROUP: &str = "seam-bench";
const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const PEER_PROGRAM: &str = "tracepoint:syscalls:sys_enter_connect { @[cgroup] = count(); }";
const RULES: &str = r#"[[tenant]]
name = "tenant-a"
cgroups = ["seam-bench/tenant-a"]
[[tenant]]
name = "tenant-b"
cgroups = ["seam-bench/tenant-b"]
[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "cross-tenant connection"
expr = "trace.has(net.*)"
[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "cross-tenant file access (loads the file probes, so their cost is measured)"
expr = "trace.has(file.*).where(file.tenant != null and file.tenant != tenant)"
"#;

/// A measured loop: `seam workload [--cgroup <tenant>] <args> --iterations <N * scale>`.
pub struct WorkloadSpec {
    pub name: &'static str,
    /// Run inside the tenant cgroup (else in xtask's own cgroup, outside every tenant).
    in_tenant: bool,
    args: &'static [&'static str],
    /// Iterations relative to `--iterations` (cheap syscalls need many more).
    scale: u32,
}

/// What the bench measures.
pub const WORKLOADS: [WorkloadSpec; 4] = [
    WorkloadSpec {
        name: "tcp connect+accept+close (tenant)",
        in_tenant: true,
        args: &["tcp-loop"],
        scale: 1,
    },
    WorkloadSpec {
        name: "openat+close (tenant)",
        in_tenant: true,
        args: &["syscall-loop", "--syscall", "openat"],
        scale: 50,
    },
    WorkloadSpec {
        name: "getppid (outside any tenant)",
        in_tenant: false,
        args: &["syscall-loop", "--syscall", "getppid"],
        scale: 250,
    },
    WorkloadSpec {
        name: "send/recv 64 KiB (tenant)",
        in_tenant: true,
        args: &["bench", "stream-loop"],
        scale: 5,
    },
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connect+accept+close iterations per measurement.
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    /// Rounds; each round measures every mode once (the order rotates between rounds).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Install bpftrace (apt) if missing, to compare against it.
    #[arg(long, conflicts_with = "no_peer")]
    with_peer: bool,
    /// Skip the bpftrace comparison even if bpftrace is installed.
    #[arg(long)]
    no_peer: bool,
    /// Measure only the kernel figures (ring rate, violation latency, agent RSS); prints them
    /// and writes target/bench/kernel.json, leaving docs/BENCHMARKS.md alone.
    #[arg(long, conflicts_with = "no_kernel")]
    only_kernel: bool,
    /// Skip the kernel figures (their rows say so).
    #[arg(long)]
    no_kernel: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Baseline,
    /// Empty programs on the hooks Seam has live: what any program there costs.
    Floor,
    Seam,
    Peer,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Floor => "floor",
            Self::Seam => "seam",
            Self::Peer => "bpftrace",
        }
    }
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<()> {
    if args.iterations == 0 || args.rounds == 0 {
        bail!("--iterations and --rounds must be at least 1");
    }
    let peer = find_peer(args)?;
    let (_, bin) = build::setup_and_build_testkit()?;
    util::ensure_tracefs()?;
    util::catch_sigint();

    let mount = cgroup2_mount()?;
    let mut scratch = Scratch::default();
    let tmp = env::temp_dir().join(format!("seam-bench-{}", std::process::id()));
    scratch.tmp = Some(tmp.clone());
    fs::create_dir_all(tmp.join("rules")).with_context(|| format!("creating {}", tmp.display()))?;
    fs::write(tmp.join("rules/tenants.toml"), RULES).context("writing the bench rules")?;
    let bench_cg = mount.join(BENCH_CGROUP);
    scratch.add_cgroup(&bench_cg)?;
    for tenant in TENANTS {
        scratch.add_cgroup(&bench_cg.join(tenant))?;
    }
    let cgroup = format!("{BENCH_CGROUP}/{}", TENANTS[0]);

    eprintln!(
        "xtask: bench: cgroup2 at {}, workload in {cgroup}",
        mount.display()
    );
    run_loop(&bin, &WORKLOADS[0], &cgroup, args.iterations.min(500)).context("warm-up run")?;
    if args.only_kernel {
        let figures = kernel::Figures::measure(&bin, &tmp, &mount, &cgroup, &mut scratch);
        for (figure, value, target, verdict) in figures.rows() {
            println!("{figure}: {value} (target {target}: {verdict})");
        }
        let path = util::target_dir().join("bench/kernel.json");
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&path, figures.json() + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
        return Ok(());
    }

    // The floor attaches empty programs where Seam attaches its own: ask a first run.
    let agent = start_agent(&bin, &tmp)?;
    let hooks = stages::live_hooks(&stop_agent(agent, &tmp));
    if hooks.is_empty() {
        bail!("the agent reported no live hooks; the floor needs them");
    }
    eprintln!("xtask: bench: floor on {}", hooks.join(", "));

    let mut modes = vec![Mode::Baseline, Mode::Floor, Mode::Seam];
    if peer.is_some() {
        modes.push(Mode::Peer);
    }
    let mut samples: Vec<(usize, Mode, Vec<f64>)> = (0..WORKLOADS.len())
        .flat_map(|w| modes.iter().map(move |&m| (w, m, Vec::new())))
        .collect();
    let run_all = |modes_label: &str, round: usize| -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for w in &WORKLOADS {
            let ns = run_loop(&bin, w, &cgroup, args.iterations)?;
            eprintln!(
                "xtask: round {}/{}: {:<8} {:<36} {ns:>10.0} ns/iter",
                round + 1,
                args.rounds,
                modes_label,
                w.name
            );
            out.push(ns);
        }
        Ok(out)
    };
    let mut stats = Vec::new();
    let mut peer_output = String::new();
    for round in 0..args.rounds {
        let mut order = modes.clone();
        order.rotate_left(round % modes.len());
        for mode in order {
            util::check_interrupted()?;
            let measured = match (mode, &peer) {
                (Mode::Seam, _) => {
                    let agent = start_agent(&bin, &tmp)?;
                    let ns = run_all(mode.label(), round)?;
                    stats.push(stop_agent(agent, &tmp));
                    ns
                }
                (Mode::Floor, _) => {
                    let floor = stages::Floor::start(&bin, &tmp, &hooks)?;
                    let ns = run_all(mode.label(), round)?;
                    floor.stop();
                    ns
                }
                (Mode::Peer, Some(tool)) => {
                    let running = PeerRun::start(tool, &tmp)?;
                    let ns = run_all(mode.label(), round)?;
                    peer_output = running.stop()?;
                    ns
                }
                _ => run_all(mode.label(), round)?,
            };
            for (w, ns) in measured.into_iter().enumerate() {
                if let Some((_, _, v)) = samples.iter_mut().find(|(i, m, _)| *i == w && *m == mode)
                {
                    v.push(ns);
                }
            }
        }
    }

    let pipeline = stages::pipeline(&bin, args.rounds)?;
    let otlp = otlp::Figures::measure(&bin, args.rounds.min(3));
    let kernel = if args.no_kernel {
        kernel::Figures::skipped("skipped (--no-kernel)")
    } else {
        kernel::Figures::measure(&bin, &tmp, &mount, &cgroup, &mut scratch)
    };
    let report = Report {
        pipeline,
        otlp,
        kernel,
        iterations: args.iterations,
        rounds: args.rounds,
        samples,
        stats,
        peer_note: peer.is_none().then_some(if args.no_peer {
            "skipped (--no-peer)"
        } else {
            "skipped: bpftrace not installed (pass --with-peer to install it)"
        }),
        peer_output,
    };
    println!("{}", report.text());
    let path = util::target_dir().join("bench/latest.json");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&path, report.json()).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    let table = util::workspace_root().join("docs/BENCHMARKS.md");
    fs::write(&table, report.markdown()).with_context(|| format!("writing {}", table.display()))?;
    println!("wrote {}", table.display());
    history::run(&bin, &tmp, &cgroup)
}

fn find_peer(args: &Args) -> Result<Option<PathBuf>> {
    if args.no_peer {
        return Ok(None);
    }
    if let Some(path) = util::which("bpftrace") {
        return Ok(Some(path));
    }
    if args.with_peer {
        Apt::default().install(&["bpftrace"])?;
        let path = util::which("bpftrace")
            .context("installed the bpftrace package but `bpftrace` is not on PATH")?;
        return Ok(Some(path));
    }
    eprintln!(
        "xtask: note: bpftrace not installed; skipping the peer comparison (--with-peer installs it)"
    );
    Ok(None)
}

/// Runs one workload loop and returns its ns per iteration.
fn run_loop(bin: &Path, w: &WorkloadSpec, cgroup: &str, iterations: u32) -> Result<f64> {
    let mut cmd = Command::new(bin);
    cmd.arg("workload");
    if w.in_tenant {
        cmd.args(["--cgroup", cgroup]);
    }
    cmd.args(w.args)
        .arg("--iterations")
        .arg(iterations.saturating_mul(w.scale).to_string());
    let stdout = util::output(
        &mut cmd,
        "the benchmark workload failed (it needs the testkit build, target/release/seam-testkit, \
         for `seam workload`)",
    )?;
    parse_ns_per_iter(&stdout).with_context(|| {
        format!(
            "`{}` printed no JSON line with ns_per_iter; it printed:\n{stdout}",
            util::display_cmd(&cmd)
        )
    })
}

fn parse_ns_per_iter(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    json_number(line, "ns_per_iter")
        .or_else(|| Some(json_number(line, "elapsed_ns")? / json_number(line, "iterations")?))
}

/// The number after `"key":` in a flat JSON object (no JSON dependency needed for this).
fn json_number(obj: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\"");
    let rest = &obj[obj.find(&pat)? + pat.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub(crate) fn start_agent(bin: &Path, tmp: &Path) -> Result<Proc> {
    start_agent_with(bin, tmp, &tmp.join("rules"), &[])
}

/// `seam run` on the rules in `rules`, with `extra` flags; waits for its ready file.
pub(crate) fn start_agent_with(
    bin: &Path,
    tmp: &Path,
    rules: &Path,
    extra: &[&std::ffi::OsStr],
) -> Result<Proc> {
    let ready = tmp.join("ready");
    let stats = tmp.join("stats.json");
    for stale in [&ready, &stats] {
        let _ = fs::remove_file(stale);
    }
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--rules")
        .arg(rules)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--stats-file")
        .arg(&stats)
        .args(extra);
    let mut agent = Proc::spawn(cmd, "agent", tmp, false)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready.exists() {
        if let Some(status) = agent.try_wait()? {
            bail!(
                "the agent exited before it was ready ({status}); its stderr:\n{}",
                agent.stderr()
            );
        }
        util::check_interrupted()?;
        if Instant::now() > deadline {
            bail!(
                "the agent did not create {} within {} s; its stderr:\n{}",
                ready.display(),
                READY_TIMEOUT.as_secs(),
                agent.stderr()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(agent)
}

/// SIGINTs the agent, waits for it, and returns its stats file (or `null` with a warning).
pub(crate) fn stop_agent(agent: Proc, tmp: &Path) -> String {
    let stderr_path = agent.stderr_path.clone();
    match agent.stop(STOP_TIMEOUT) {
        Some(status) if status.success() => {}
        other => eprintln!(
            "xtask: warning: the agent exited with {other:?} after SIGINT; its stderr:\n{}",
            tail(&stderr_path)
        ),
    }
    let stats = tmp.join("stats.json");
    match fs::read_to_string(&stats) {
        Ok(text) => text.trim().to_owned(),
        Err(e) => {
            eprintln!(
                "xtask: warning: could not read the agent's stats file {}: {e}",
                stats.display()
            );
            "null".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workload_line() {
        let out = "noise\n{\"iterations\":2000,\"elapsed_ns\":40000000,\"ns_per_iter\":20000.5}\n";
        assert_eq!(parse_ns_per_iter(out), Some(20000.5));
        let out = "{\"iterations\": 4, \"elapsed_ns\": 100}";
        assert_eq!(parse_ns_per_iter(out), Some(25.0));
        assert_eq!(parse_ns_per_iter("nothing"), None);
    }
}
