//! What the demo and the tests take from Debian, installed by `cargo xtask demo`/`test` before
//! they run, so that a fresh machine (the README's two commands, nothing by hand) passes. One
//! `dpkg-query` checks them all when they are present. `cargo xtask fresh-check` proves the
//! list complete in a clean Debian root.
//!
//! Installed elsewhere, on the same principle: the probe toolchain and bpf-linker's LLVM
//! (xtask/src/setup.rs), the test clients' venv and python3-venv (xtask/src/python.rs),
//! qemu-system-x86 and busybox-static for the kernel matrix (xtask/src/kernels/fetch.rs),
//! bpftrace for `cargo xtask bench --with-peer` (xtask/src/bench.rs).

use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{setup::Apt, util};

/// A Debian package and what uses it.
pub struct Need {
    pub package: &'static str,
    pub used_by: &'static str,
}

/// What `seam demo` needs beyond the build: `mount` for tracefs (util::ensure_tracefs).
pub const DEMO: &[Need] = &[Need {
    package: "mount",
    used_by: "mount(8) for tracefs (xtask)",
}];

/// What the unit and integration tests run, beyond the build and the venv.
pub const TESTS: &[Need] = &[
    Need {
        package: "mount",
        used_by: "mount/umount of tracefs, bpf and tmpfs (xtask; files, silences, containers)",
    },
    Need {
        package: "util-linux",
        used_by: "setpriv (tests/tests/cli.rs)",
    },
    Need {
        package: "iproute2",
        used_by: "ip netns and veth for the metadata endpoint (tests/tests/rules.rs)",
    },
    Need {
        package: "curl",
        used_by: "HTTPS and bearer-token checks (tests/tests/security.rs)",
    },
    Need {
        package: "openssl",
        used_by: "the test certificate (tests/tests/security.rs)",
    },
    Need {
        package: "ca-certificates",
        used_by: "HTTPS to PyPI for the venv (xtask/src/python.rs)",
    },
    Need {
        package: "docker.io",
        used_by: "docker and dockerd for the container tests (tests/src/docker.rs)",
    },
    Need {
        package: "busybox-static",
        used_by: "a static /bin/busybox in the container tests' image (tests/src/docker.rs)",
    },
    Need {
        package: "chromium",
        used_by: "headless screenshot of the HTML report (tests/src/history.rs)",
    },
];

/// Installs whatever of `needs` is missing (nothing, and one quick query, when all are there).
pub fn ensure(needs: &[Need]) -> Result<()> {
    let packages: Vec<&str> = needs.iter().map(|n| n.package).collect();
    Apt::default().install(&packages).with_context(|| {
        let why: Vec<String> = needs
            .iter()
            .map(|n| format!("{}: {}", n.package, n.used_by))
            .collect();
        format!("installing what the run needs ({})", why.join("; "))
    })
}

/// Debian's docker CLI and daemon (docker.io), not another CLI earlier on PATH.
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn docker_answers() -> bool {
    Command::new(DOCKER)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts dockerd (docker.io must be installed) unless a daemon already answers on the
/// default socket; waits up to 60 s for it. Errors say why, with the end of its log.
pub fn ensure_docker_daemon() -> std::result::Result<(), String> {
    if docker_answers() {
        return Ok(());
    }
    if !Path::new(DOCKERD).is_file() {
        return Err(format!("{DOCKERD} is missing (Debian's docker.io)"));
    }
    let log_path = util::target_dir().join("dockerd.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: starting dockerd (log: {}); it keeps running after xtask",
        log_path.display()
    );
    Command::new(DOCKERD)
        .args(["--host", &format!("unix://{DOCKER_SOCKET}")])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group: a Ctrl-C meant for xtask does not stop the daemon mid-way.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {DOCKERD}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(250));
    }
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(format!(
        "dockerd did not answer within 60 s; the end of {}:\n{}",
        log_path.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}
