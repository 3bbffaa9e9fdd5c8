//! `cargo xtask kernels`: the kernel matrix. Boots each kernel of [`TARGETS`] under QEMU/TCG
//! with an initramfs holding busybox, `seam` (the testkit build: the scenario's processes are
//! `seam workload`) and the scenario (xtask/src/kernels/scenario.sh);
//! inside, `seam fingerprint` and one `seam run` per run of the target, each with a TCP crossing
//! A -> B and a read of B's file from A (both must be flagged) and the same-tenant pair (must
//! not be). The host's kernel runs the same scenario natively: this machine has no /boot image
//! of its own kernel to boot, and the native run is the real thing. Results come back over the
//! serial console between markers; docs/KERNELS.md is written from them.
mod boot;
mod fetch;
mod initramfs;
mod report;
mod results;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::Value;

use self::results::{Expect, RunResult};
use crate::{build, util};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these targets (repeatable), e.g. `--only debian-6.12`.
    #[arg(long)]
    only: Vec<String>,
    /// Seconds one boot (or the host run) may take before it is killed and reported failed.
    #[arg(long, default_value_t = TIMEOUT.as_secs())]
    timeout: u64,
}

/// How a target runs the scenario.
#[derive(Clone, Copy, Debug)]
enum How {
    /// A Debian kernel under QEMU/TCG with extra kernel parameters.
    Qemu {
        package: fetch::Package,
        append: &'static str,
    },
    /// This machine's kernel, natively.
    Host,
}

/// One `seam run` in a target: its name, the probes it disables (to force a stand-in tier),
/// and where the file and connect capabilities must end up.
#[derive(Clone, Copy, Debug)]
struct Run {
    name: &'static str,
    disable: &'static [&'static str],
    expect: Expect,
}

/// A kernel of the matrix.
#[derive(Clone, Copy, Debug)]
struct Target {
    name: &'static str,
    description: &'static str,
    how: How,
    runs: &'static [Run],
}

/// Without the LSM file rows and the cgroup connect hooks: file on fexit, connect on LSM.
const NO_LSM_NO_CGROUP_CONNECT: &[&str] = &[
    "seam_lsm_file_open",
    "seam_lsm_path_unlink",
    "seam_lsm_path_rename",
    "seam_lsm_path_truncate",
    "seam_connect4",
    "seam_connect6",
];
/// Also without fexit file rows and LSM connect: file on kprobe, connect on fentry.
const KPROBE_FILE_FENTRY_CONNECT: &[&str] = &[
    "seam_lsm_file_open",
    "seam_lsm_path_unlink",
    "seam_lsm_path_rename",
    "seam_lsm_path_truncate",
    "seam_fexit_file_open",
    "seam_fexit_path_unlink",
    "seam_fexit_path_rename",
    "seam_fexit_path_truncate",
    "seam_connect4",
    "seam_connect6",
    "seam_lsm_socket_connect",
];

const fn expect(file: &'static str, connect: &'static str) -> Expect {
    Expect { file, connect }
}

const DEBIAN_61: fetch::Package = fetch::Package {
    name: "linux-image-6.1.0-47-cloud-amd64-unsigned",
    successor: "^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64-unsigned$",
};
const DEBIAN_612: fetch::Package = fetch::Package {
    name: "linux-image-6.12.111+deb12-cloud-amd64-unsigned",
    successor: "^linux-image-6\\.12\\.[0-9]+\\+deb12-cloud-amd64-unsigned$",
};

/// Runs on kernels with BPF LSM: the best tiers, then each stand-in forced by disabling the
/// tiers above it, so every new row is shown to load and fire.
const LSM_RUNS: &[Run] = &[
    Run {
        name: "default",
        disable: &[],
        expect: expect("lsm", "cgroup"),
    },
    Run {
        name: "fexit",
        disable: NO_LSM_NO_CGROUP_CONNECT,
        expect: expect("fexit", "lsm"),
    },
    Run {
        name: "kprobe",
        disable: KPROBE_FILE_FENTRY_CONNECT,
        expect: expect("kprobe", "fentry"),
    },
];

/// The kernels of the matrix.
const TARGETS: &[Target] = &[
    Target {
        name: "debian-6.1-lsm",
        description: "Debian 12 cloud kernel 6.1, `lsm=lockdown,yama,landlock,bpf` (BPF LSM active)",
        how: How::Qemu {
            package: DEBIAN_61,
            append: "lsm=lockdown,yama,landlock,bpf",
        },
        runs: LSM_RUNS,
    },
    Target {
        name: "debian-6.1-nolsm",
        description: "Debian 12 cloud kernel 6.1, `lsm=lockdown,yama,landlock` (no BPF LSM)",
        how: How::Qemu {
            package: DEBIAN_61,
            append: "lsm=lockdown,yama,landlock",
        },
        runs: &[
            Run {
                name: "default",
                disable: &[],
                expect: expect("fexit", "cgroup"),
            },
            Run {
                name: "fexit",
                disable: NO_LSM_NO_CGROUP_CONNECT,
                expect: expect("fexit", "fentry"),
            },
            Run {
                name: "kprobe",
                disable: KPROBE_FILE_FENTRY_CONNECT,
                expect: expect("kprobe", "fentry"),
            },
        ],
    },
    Target {
        name: "debian-6.12",
        description: "Debian 12 backports cloud kernel 6.12, Debian's default LSM list (has bpf)",
        how: How::Qemu {
            package: DEBIAN_612,
            append: "",
        },
        runs: LSM_RUNS,
    },
    Target {
        name: "host",
        description: "this machine's kernel, natively (no LSM, fentry/fexit or kprobe programs load)",
        how: How::Host,
        runs: &[Run {
            name: "default",
            disable: &[],
            expect: expect("tp_btf", "cgroup"),
        }],
    },
];

/// The outcome of one target.
#[derive(Debug)]
pub struct KernelOutcome {
    pub name: &'static str,
    pub description: &'static str,
    /// The .deb booted, or "native".
    pub source: String,
    pub boot: Option<Duration>,
    pub wall: Duration,
    pub fingerprint: Option<Value>,
    pub runs: Vec<(RunResult, &'static [&'static str])>,
    /// Empty when the target passed.
    pub failures: Vec<String>,
}

/// The whole matrix.
#[derive(Debug)]
pub struct Matrix {
    pub kernels: Vec<KernelOutcome>,
    pub total: Duration,
}

fn runs_spec(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| {
            let mut line = r.name.to_owned();
            for p in r.disable {
                line.push(' ');
                line.push_str(p);
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks a target's console: the fingerprint, then every run against its expectations.
fn evaluate(target: &Target, console: &boot::Console, source: String) -> KernelOutcome {
    let sections = results::sections(&console.text);
    let mut failures = Vec::new();
    if console.timed_out {
        failures.push(format!(
            "timed out after {} s; last console lines:\n{}",
            console.wall.as_secs(),
            tail(&console.text, 30)
        ));
    }
    let fingerprint: Option<Value> = sections
        .get("fingerprint")
        .and_then(|t| serde_json::from_str(t.trim()).ok());
    if fingerprint.is_none() {
        failures.push(format!(
            "no fingerprint on the console; last lines:\n{}",
            tail(&console.text, 30)
        ));
    }
    let mut runs = Vec::new();
    for run in target.runs {
        match results::run(&sections, run.name) {
            Some(result) => {
                failures.extend(results::check_run(&result, run.expect));
                runs.push((result, run.disable));
            }
            None => failures.push(format!("run {} did not report", run.name)),
        }
    }
    KernelOutcome {
        name: target.name,
        description: target.description,
        source,
        boot: console.boot,
        wall: console.wall,
        fingerprint,
        runs,
        failures,
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs every target (or those in `only`) against `seam`; a target that cannot even be set up
/// is reported failed, the others still run.
pub fn run_matrix(seam: &Path, only: &[String], timeout: Duration) -> Result<Matrix> {
    let started = Instant::now();
    let dir = util::target_dir().join("kernels");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let needs_qemu = TARGETS.iter().any(|t| {
        matches!(t.how, How::Qemu { .. }) && (only.is_empty() || only.iter().any(|o| o == t.name))
    });
    let tools = if needs_qemu {
        Some(fetch::ensure_tools()?)
    } else {
        None
    };
    let mut kernels = Vec::new();
    for target in TARGETS {
        if !only.is_empty() && !only.iter().any(|o| o == target.name) {
            continue;
        }
        util::check_interrupted()?;
        eprintln!(
            "xtask: kernel matrix: {} ({})",
            target.name, target.description
        );
        let log = dir.join(format!("{}.console.log", target.name));
        let runs = runs_spec(target.runs);
        let outcome = match (target.how, &tools) {
            (How::Qemu { package, append }, Some((qemu, busybox))) => fetch::kernel(&package, &dir)
                .and_then(|kernel| {
                    let initrd = dir.join(format!("{}.initrd", target.name));
                    initramfs::build(seam, busybox, target.name, &runs, &initrd)?;
                    let console =
                        boot::qemu(qemu, &kernel.vmlinuz, &initrd, append, &log, timeout)?;
                    Ok(evaluate(target, &console, kernel.deb))
                }),
            (How::Host, _) => {
                let work = std::env::temp_dir().join(format!("seam-kt-{}", std::process::id()));
                cgroup2_mount()
                    .and_then(|cgroup2| boot::host(seam, &cgroup2, &work, &runs, &log, timeout))
                    .map(|console| evaluate(target, &console, "native".into()))
            }
            (How::Qemu { .. }, None) => unreachable!("tools are set up for QEMU targets"),
        };
        let outcome = outcome.unwrap_or_else(|error| KernelOutcome {
            name: target.name,
            description: target.description,
            source: String::new(),
            boot: None,
            wall: Duration::ZERO,
            fingerprint: None,
            runs: Vec::new(),
            failures: vec![format!("could not run: {error:#}")],
        });
        eprintln!(
            "xtask: kernel matrix: {} {} in {:.1} s (console: {})",
            target.name,
            if outcome.failures.is_empty() {
                "passed"
            } else {
                "FAILED"
            },
            outcome.wall.as_secs_f64(),
            log.display()
        );
        for failure in &outcome.failures {
            eprintln!("xtask:   {}: {failure}", target.name);
        }
        kernels.push(outcome);
    }
    Ok(Matrix {
        kernels,
        total: started.elapsed(),
    })
}

fn cgroup2_mount() -> Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .context("no cgroup2 mount on this machine")
}

/// Default bound of one boot (or the host run).
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// Saves each kernel's fingerprint under target/kernels/fingerprints/, compares them with
/// `seam fleet-check`, and writes the report: docs/KERNELS.md when `docs`, else
/// target/kernels/KERNELS.md. Returns where it went.
pub fn write_report(matrix: &Matrix, seam: &Path, docs: bool) -> Result<PathBuf> {
    let dir = util::target_dir().join("kernels/fingerprints");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for kernel in &matrix.kernels {
        if let Some(fp) = &kernel.fingerprint {
            let mut fp = fp.clone();
            fp["node"] = Value::from(kernel.name);
            std::fs::write(dir.join(format!("{}.json", kernel.name)), fp.to_string())?;
        }
    }
    let fleet = util::probe(
        std::process::Command::new(seam)
            .arg("fleet-check")
            .arg(&dir),
    )
    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    .unwrap_or_default();
    let path = if docs {
        util::workspace_root().join("docs/KERNELS.md")
    } else {
        util::target_dir().join("kernels/KERNELS.md")
    };
    std::fs::write(&path, report::markdown(matrix, &fleet))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `cargo xtask kernels`: build, run the matrix, write docs/KERNELS.md; fails if a kernel does.
#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<std::process::ExitCode> {
    util::catch_sigint();
    let (_, bin) = build::setup_and_build_testkit()?;
    util::ensure_tracefs()?;
    let matrix = run_matrix(&bin, &args.only, Duration::from_secs(args.timeout))?;
    let doc = write_report(&matrix, &bin, args.only.is_empty())?;
    let failed = matrix
        .kernels
        .iter()
        .filter(|k| !k.failures.is_empty())
        .count();
    println!(
        "kernel matrix: {} kernel(s), {failed} failed, {:.0} s; wrote {}",
        matrix.kernels.len(),
        matrix.total.as_secs_f64(),
        doc.display()
    );
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
