//! `cargo xtask fresh-check`: the README's two commands (`cargo xtask demo`, then
//! `cargo xtask test` through `.ci/run`) in a clean Debian 12 root on this kernel, with nothing
//! installed by hand beyond what a fresh CI machine has (fresh/image.rs), so that a missing
//! install step fails here before CI.
//!
//! The root is a debootstrap minbase imported into this host's Docker; the container gets a
//! `git clone` of HEAD (what CI sees: uncommitted changes are not in it), this host's cgroups,
//! /sys/kernel (BTF, tracefs) and BPF fs, and its own network namespace with IPv6 loopback (as
//! a host has). The commands run as this host's root entered into the container's namespaces
//! (`nsenter`), so they have root's capabilities as on CI. The container tests get their own
//! dockerd, started by `cargo xtask test` as on a fresh machine: the paths they bind into
//! containers (temporary directories, a BPF fs they mount) exist only in the container's mount
//! namespace, where this host's daemon would not find them. Output goes to target/fresh/log.

mod image;

use std::{
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};

use crate::{
    deps::{self, DOCKER},
    setup::Apt,
    util,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// `cargo xtask demo`.
    Demo,
    /// `bash .ci/run` (`cargo xtask test`).
    Test,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the container and the clone (target/fresh/work) afterwards, to look inside.
    #[arg(long)]
    keep: bool,
    /// Run only this command (default: demo, then test).
    #[arg(long, value_enum)]
    only: Option<Step>,
    /// Pass --no-kernels to the test command (no QEMU kernel matrix).
    #[arg(long)]
    no_kernels: bool,
}

/// How one command went.
struct Outcome {
    step: Step,
    ok: bool,
    status: String,
    secs: f64,
    summary: Option<String>,
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<ExitCode> {
    util::catch_sigint();
    let started = Instant::now();
    let dir = util::target_dir().join("fresh");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Apt::default().install(&["debootstrap", "docker.io"])?;
    deps::ensure_docker_daemon()
        .map_err(|why| anyhow!("fresh-check needs a Docker daemon on this host: {why}"))?;
    let toolchain = image::Toolchain::of_host()?;
    let image = image::ensure(&dir, &toolchain)?;
    let clone = clone_head(&dir)?;
    let log_path = dir.join("log");
    let mut log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!(
        "xtask: fresh-check: output of the commands: {}",
        log_path.display()
    );

    let container = Container::start(&image, &toolchain, &clone)?;
    let steps = match args.only {
        Some(step) => vec![step],
        None => vec![Step::Demo, Step::Test],
    };
    let mut outcomes = Vec::new();
    let mut failure = None;
    for step in steps {
        match container.exec(step, args.no_kernels, &mut log) {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
        if let Err(err) = util::check_interrupted() {
            failure = Some(err);
            break;
        }
    }
    if args.keep {
        eprintln!(
            "xtask: fresh-check: kept container {} (`docker exec -it {} bash`; remove with \
             `docker rm -f {}`) and the clone {}",
            container.name,
            container.name,
            container.name,
            clone.display()
        );
    } else {
        container.remove();
        let _ = fs::remove_dir_all(dir.join("work"));
    }
    if let Some(err) = failure {
        return Err(err);
    }
    for o in &outcomes {
        let name = match o.step {
            Step::Demo => "cargo xtask demo",
            Step::Test => "cargo xtask test (.ci/run)",
        };
        let verdict = if o.ok { "ok" } else { "FAILED" };
        let summary = o.summary.as_deref().unwrap_or("no summary line");
        println!(
            "fresh-check: {name}: {verdict} ({}) in {:.0} s; {summary}",
            o.status, o.secs
        );
    }
    println!(
        "fresh-check: {:.0} s in all; log: {}",
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    Ok(if outcomes.iter().all(|o| o.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A fresh `git clone` of HEAD in target/fresh/work/seam.
fn clone_head(dir: &Path) -> Result<PathBuf> {
    let root = util::workspace_root();
    let head = util::output(
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["rev-parse", "HEAD"]),
        "fresh-check clones HEAD; the workspace must be a git checkout",
    )?;
    let head = head.trim();
    let dirty = util::output(
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["status", "--porcelain"]),
        "git status failed",
    )?;
    let changed = dirty.lines().count();
    if changed > 0 {
        eprintln!(
            "xtask: fresh-check: NOTE: {changed} uncommitted or untracked path(s) are not in \
             the check: it clones HEAD {head}, as CI does"
        );
    }
    let work = dir.join("work");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let clone = work.join("seam");
    util::run(
        Command::new("git")
            .args(["clone", "--quiet", "--no-local"])
            .arg(&root)
            .arg(&clone),
        "git clone of the workspace failed",
    )?;
    util::run(
        Command::new("git")
            .arg("-C")
            .arg(&clone)
            .args(["checkout", "--quiet", "--detach", head]),
        "checking out HEAD in the clone failed",
    )?;
    eprintln!(
        "xtask: fresh-check: clone of HEAD {head} in {}",
        clone.display()
    );
    Ok(clone)
}

fn docker() -> Command {
    Command::new(DOCKER)
}

/// Whether this host has a BPF file system mounted at /sys/fs/bpf.
fn host_bpffs() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut fields = l.split_whitespace();
            fields.nth(4) == Some("/sys/fs/bpf") && l.contains(" - bpf ")
        })
}

/// What the container adds to Docker's default capabilities, so that root in it can do what
/// root on a CI machine does. Not --privileged nor --cap-add ALL: both fail on this VM (its
/// bounding set lacks CAP_SYS_RESOURCE; this Docker does not know CAP_BPF). SYS_TIME: the
/// faults tests step the wall clock (without it clock_settime failed with EPERM and the binary
/// aborted). Never SYS_BOOT or SYS_MODULE: the container shares the host's PID namespace.
const CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "SYS_TIME",
    "SYS_NICE",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_RAWIO",
    "SYSLOG",
    "LINUX_IMMUTABLE",
    "NET_BROADCAST",
    "LEASE",
    "WAKE_ALARM",
    "AUDIT_CONTROL",
    "AUDIT_READ",
];

/// The running container.
struct Container {
    name: String,
    /// Its first process on the host, whose namespaces the commands enter.
    pid: String,
    /// Its environment (PATH, CI, the trust variables), given to the commands.
    env: Vec<String>,
}

impl Container {
    fn start(image: &str, toolchain: &image::Toolchain, clone: &Path) -> Result<Self> {
        let name = format!("seam-fresh-check-{}", std::process::id());
        let mut cmd = docker();
        cmd.args(["run", "--detach", "--name", &name]);
        for cap in CAPABILITIES {
            cmd.args(["--cap-add", cap]);
        }
        cmd.args([
            "--security-opt",
            "seccomp=unconfined",
            "--cgroupns=host",
            "--pid=host",
            // Docker turns IPv6 off in a container; a host has ::1 (tests/tests/network.rs).
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl",
            "net.ipv6.conf.lo.disable_ipv6=0",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup",
            "-v",
            "/sys/kernel:/sys/kernel",
        ]);
        if host_bpffs() {
            cmd.args(["-v", "/sys/fs/bpf:/sys/fs/bpf"]);
        }
        cmd.arg("-v").arg(format!(
            "{}:{}:ro",
            toolchain.dir.display(),
            toolchain.mount_point()
        ));
        for var in image::TRUST_ENV {
            if let Some(value) = std::env::var_os(var) {
                cmd.arg("-e")
                    .arg(format!("{var}={}", value.to_string_lossy()));
            }
        }
        cmd.arg("-v")
            .arg(format!("{}:/seam", clone.display()))
            .args(["-w", "/seam", "-e", "CI=true", image, "sleep", "infinity"]);
        util::output(&mut cmd, "could not start the fresh container")?;
        eprintln!("xtask: fresh-check: container {name} from {image}");
        let inspect = |format: &str| {
            util::output(
                docker().args(["inspect", "-f", format, &name]),
                "docker inspect of the fresh container failed",
            )
        };
        let pid = inspect("{{.State.Pid}}")?.trim().to_owned();
        let env = inspect("{{range .Config.Env}}{{println .}}{{end}}")?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self { name, pid, env })
    }

    /// Runs one of the README's commands inside, its output to `log` (and the lines that tell
    /// progress to the terminal).
    fn exec(&self, step: Step, no_kernels: bool, log: &mut File) -> Result<Outcome> {
        // Root of this host (every capability it has, no seccomp) in the container's mount,
        // UTS, IPC and network namespaces: root as on a CI machine, on the clean root. Docker
        // 20.10 cannot grant CAP_BPF or CAP_PERFMON, so under `docker exec` the agent could not
        // keep CAP_BPF (tests/tests/security.rs) nor load LSM programs.
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &self.pid])
            .args(["--mount", "--uts", "--ipc", "--net", "--root", "--wd"])
            .args(["--", "env", "-i", "HOME=/root"])
            .args(&self.env);
        match step {
            Step::Demo => cmd.args(["cargo", "xtask", "demo"]),
            Step::Test if no_kernels => cmd.args(["bash", ".ci/run", "--no-kernels"]),
            Step::Test => cmd.args(["bash", ".ci/run"]),
        };
        eprintln!("xtask: fresh-check: $ {}", util::display_cmd(&cmd));
        let _ = writeln!(log, "==== $ {}", util::display_cmd(&cmd));
        let started = Instant::now();
        let mut summary = None;
        let mut err = std::io::stderr();
        let status = util::tee_lines(&mut cmd, |line| {
            let line = line.trim_end_matches('\n');
            let _ = writeln!(log, "{line}");
            if is_summary(line) {
                summary = Some(line.trim().to_owned());
            }
            if worth_showing(line) {
                let _ = writeln!(err, "  | {line}");
            }
        })?;
        let _ = log.flush();
        Ok(Outcome {
            step,
            ok: status.success(),
            status: status.to_string(),
            secs: started.elapsed().as_secs_f64(),
            summary,
        })
    }

    /// Stops what the tests started inside (their dockerd and its containers, which live in
    /// the host's PID namespace and would outlive the container), then removes it.
    fn remove(&self) {
        let stop = "if [ -f /var/run/docker.pid ]; then \
                    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1; \
                    kill \"$(cat /var/run/docker.pid)\"; \
                    for i in $(seq 30); do [ -e /var/run/docker.pid ] || break; sleep 1; done; \
                    fi";
        let _ = util::probe(docker().args(["exec", &self.name, "sh", "-c", stop]));
        match util::probe(docker().args(["rm", "-f", &self.name])) {
            Some(o) if o.status.success() => {}
            _ => eprintln!(
                "xtask: fresh-check: could not remove container {}; `docker rm -f {}`",
                self.name, self.name
            ),
        }
    }
}

/// `N passed, N failed` alone on a line.
fn is_summary(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(
        words.as_slice(),
        [p, "passed,", f, "failed"] if p.parse::<u64>().is_ok() && f.parse::<u64>().is_ok()
    )
}

/// Whether a line tells progress (shown on the terminal; the log has every line).
fn worth_showing(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("xtask:")
        || t.starts_with("Running ")
        || t.starts_with("Doc-tests ")
        || t.starts_with("Finished ")
        || t.starts_with("test result:")
        || t.starts_with("error")
        || t.starts_with("kernel matrix:")
        || t.contains("panicked at")
        || (t.starts_with("test ") && t.ends_with("FAILED"))
        || is_summary(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_summary_line() {
        assert!(is_summary("372 passed, 0 failed"));
        assert!(is_summary("299 passed, 2 failed\n"));
        assert!(!is_summary("test result: ok. 5 passed; 0 failed"));
        assert!(!is_summary("xtask: 3 passed, 1 failed, 2 skipped"));
    }
}
