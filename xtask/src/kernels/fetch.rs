//! What the matrix needs from Debian: QEMU, a static busybox, and the kernel packages (cached
//! under target/kernels/, extracted with dpkg-deb).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, bail};

use crate::util;

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

fn apt_update() -> Result<()> {
    if APT_UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    util::run(
        Command::new("apt-get").args(["update", "-q"]),
        "apt-get update failed; the kernel matrix needs Debian's package lists",
    )
}

fn installed(package: &str) -> bool {
    util::probe_stdout(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.ends_with("installed") && !s.contains("not-installed"))
}

/// Installs qemu-system-x86 and busybox-static when missing; returns (qemu, busybox).
pub fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let missing: Vec<&str> = ["qemu-system-x86", "busybox-static"]
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    if !missing.is_empty() {
        apt_update()?;
        util::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "could not install the kernel matrix's tools; install them by hand with apt-get",
        )?;
    }
    let qemu = util::which("qemu-system-x86_64")
        .context("qemu-system-x86_64 not found after installing qemu-system-x86")?;
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox not found after installing busybox-static");
    }
    Ok((qemu, busybox))
}

/// A Debian kernel package: the pinned name, and a pattern for its successors should the
/// archive have dropped it (`apt-cache search --names-only`).
#[derive(Clone, Copy, Debug)]
pub struct Package {
    pub name: &'static str,
    pub successor: &'static str,
}

/// A downloaded, extracted kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The .deb it came from (file name), e.g. `linux-image-..._6.1.170-3_amd64.deb`.
    pub deb: String,
    pub vmlinuz: PathBuf,
}

fn cached_deb(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    found.sort();
    found.pop()
}

fn download(dir: &Path, name: &str) -> bool {
    eprintln!("xtask: apt-get download {name}");
    Command::new("apt-get")
        .args(["download", "-q", name])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

/// The newest package whose name matches `pattern` (names sort by their ABI number).
fn successor(pattern: &str) -> Option<String> {
    let text =
        util::probe_stdout(Command::new("apt-cache").args(["search", "--names-only", pattern]))?;
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort_by_key(|n| {
        n.split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u64>().ok())
            .collect::<Vec<_>>()
    });
    names.pop()
}

/// Downloads (once) and extracts `package`; returns its vmlinuz.
pub fn kernel(package: &Package, dir: &Path) -> Result<Kernel> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut name = package.name.to_owned();
    let deb = match cached_deb(dir, &name) {
        Some(deb) => deb,
        None => {
            if !download(dir, &name) {
                apt_update()?;
                if !download(dir, &name) {
                    name = successor(package.successor).with_context(|| {
                        format!(
                            "{} is not in the package lists and nothing matches {}; update the \
                             kernel list in xtask/src/kernels/mod.rs",
                            package.name, package.successor
                        )
                    })?;
                    eprintln!(
                        "xtask: {} is gone from the archive; using {name}",
                        package.name
                    );
                    if cached_deb(dir, &name).is_none() && !download(dir, &name) {
                        bail!("apt-get download {name} failed");
                    }
                }
            }
            cached_deb(dir, &name)
                .with_context(|| format!("no .deb for {name} in {}", dir.display()))?
        }
    };
    let stem = deb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = dir.join("x").join(&stem);
    let boot = root.join("boot");
    if !boot.is_dir() {
        // dpkg-deb creates the directory but not its parents.
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        util::run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
            "dpkg-deb could not extract the kernel package",
        )?;
    }
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz in {}", boot.display()))?;
    Ok(Kernel {
        deb: deb
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        vmlinuz,
    })
}
