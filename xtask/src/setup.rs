//! `cargo xtask setup`: makes sure the probes can be built, idempotently, and records the choice
//! in `target/seam-toolchain.env`.
//!
//! - Toolchain route 1 (preferred): rustup's `nightly` with `rust-src`.
//! - Toolchain route 2 (fallback): Debian's `rustc-web` + `rust-web-src` linked into rustup as
//!   `debian-bpf`, used with `RUSTC_BOOTSTRAP=1`.
//! - `bpf-linker`, built against Debian's LLVM 22 (`cargo install` with `LLVM_PREFIX`).
//!
//! Fast path: when the env file names a toolchain that has rust-src and `bpf-linker` runs, this
//! only spawns two quick processes.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, ToolEnv};

const NIGHTLY: &str = "nightly";
/// The nightly installed when no usable one is there: rustc 1.97.0-nightly (2026-05-19) with
/// LLVM 22, the nightly this machine kind ships as `nightly`. Not the latest: a nightly on a
/// newer LLVM than bpf-linker's writes bitcode bpf-linker cannot read ("ERROR llvm: Invalid
/// record"), which is what a new machine got from `rustup toolchain install nightly`.
const PINNED_NIGHTLY: &str = "nightly-2026-05-20";
/// bpf-linker's LLVM (LLVM_PREFIX below); a probe toolchain's rustc must use the same major.
const LLVM_MAJOR: u32 = 22;
const DEBIAN_TOOLCHAIN: &str = "debian-bpf";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
];
const DEBIAN_RUST_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// rustup nightly + rust-src, falling back to Debian's rustc.
    Auto,
    /// Only rustup nightly + rust-src.
    Nightly,
    /// Only Debian's rustc-web + rust-web-src (linked as the `debian-bpf` toolchain).
    Debian,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which toolchain route to use for the eBPF probes.
    #[arg(long, value_enum, default_value_t = Route::Auto)]
    route: Route,
}

pub fn run(args: &Args) -> Result<()> {
    ensure(args.route)?;
    Ok(())
}

/// Checks (and if needed installs) everything the probe build needs; returns the env to apply
/// to cargo.
pub fn ensure(route: Route) -> Result<ToolEnv> {
    let mut apt = Apt::default();
    let recorded = ToolEnv::load()?;
    let recorded_tc = recorded
        .as_ref()
        .and_then(|e| e.get("SEAM_BPF_TOOLCHAIN"))
        .map(str::to_owned);

    let usable_recorded = recorded_tc.filter(|tc| match route {
        Route::Auto => true,
        Route::Nightly => tc == NIGHTLY || tc == PINNED_NIGHTLY,
        Route::Debian => tc == DEBIAN_TOOLCHAIN,
    });
    let (toolchain, src) = match usable_recorded.and_then(|tc| usable(&tc).map(|s| (tc, s))) {
        Some(found) => found,
        None => acquire_toolchain(route, &mut apt)?,
    };
    eprintln!(
        "xtask: probe toolchain: {toolchain} (rust-src: {})",
        src.display()
    );

    let linker = ensure_bpf_linker(&mut apt)?;
    eprintln!("xtask: {linker}");

    match util::which("bpftool") {
        Some(p) => eprintln!("xtask: bpftool: {} (optional)", p.display()),
        None => eprintln!("xtask: bpftool: not found (optional; `apt-get install bpftool`)"),
    }

    let env = tool_env(&toolchain);
    env.store()?;
    Ok(env)
}

fn tool_env(toolchain: &str) -> ToolEnv {
    let mut vars = vec![("SEAM_BPF_TOOLCHAIN".to_owned(), toolchain.to_owned())];
    if toolchain == DEBIAN_TOOLCHAIN {
        vars.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
        vars.push((
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER".into(),
            "bpf-linker".into(),
        ));
    }
    ToolEnv { vars }
}

fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    // Never let a probe silently download a whole toolchain.
    cmd.env("RUSTUP_AUTO_INSTALL", "0");
    cmd
}

/// The library sources of `toolchain` if it is installed and has rust-src.
fn rust_src(toolchain: &str) -> Option<PathBuf> {
    let sysroot =
        util::probe_stdout(rustup().args(["run", toolchain, "rustc", "--print", "sysroot"]))?;
    let lib = Path::new(&sysroot).join("lib/rustlib/src/rust/library");
    lib.join("core/Cargo.toml").is_file().then_some(lib)
}

/// The LLVM major version of `toolchain`'s rustc (`rustc -vV`), if it runs.
fn llvm_major(toolchain: &str) -> Option<u32> {
    let verbose = util::probe_stdout(rustup().args(["run", toolchain, "rustc", "-vV"]))?;
    parse_llvm_major(&verbose)
}

fn parse_llvm_major(rustc_vv: &str) -> Option<u32> {
    let version = rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// The library sources of `toolchain` if it can build the probes: rust-src, and (for a rustup
/// nightly) the LLVM bpf-linker uses.
fn usable(toolchain: &str) -> Option<PathBuf> {
    let src = rust_src(toolchain)?;
    if toolchain == DEBIAN_TOOLCHAIN {
        return Some(src);
    }
    match llvm_major(toolchain) {
        Some(major) if major == LLVM_MAJOR => Some(src),
        other => {
            eprintln!(
                "xtask: toolchain {toolchain} uses LLVM {other:?}, bpf-linker LLVM {LLVM_MAJOR}: \
                 not used for the probes"
            );
            None
        }
    }
}

fn toolchain_installed(toolchain: &str) -> bool {
    util::probe_stdout(rustup().args(["run", toolchain, "rustc", "--version"])).is_some()
}

fn acquire_toolchain(route: Route, apt: &mut Apt) -> Result<(String, PathBuf)> {
    match route {
        Route::Nightly => acquire_nightly(),
        Route::Debian => acquire_debian(apt),
        Route::Auto => acquire_nightly().or_else(|err| {
            eprintln!("xtask: rustup nightly route failed: {err:#}");
            eprintln!("xtask: falling back to Debian's rustc (route 2)");
            acquire_debian(apt)
                .context("both toolchain routes failed (rustup nightly, then Debian rustc-web)")
        }),
    }
}

fn acquire_nightly() -> Result<(String, PathBuf)> {
    if util::which("rustup").is_none() {
        bail!("`rustup` is not on PATH; install it from https://rustup.rs");
    }
    for toolchain in [NIGHTLY, PINNED_NIGHTLY] {
        if let Some(src) = usable(toolchain) {
            return Ok((toolchain.to_owned(), src));
        }
    }
    // An installed `nightly` on bpf-linker's LLVM only lacks rust-src; otherwise the pinned one.
    let toolchain = if llvm_major(NIGHTLY) == Some(LLVM_MAJOR) {
        NIGHTLY
    } else {
        PINNED_NIGHTLY
    };
    let hint = "rustup could not provide the nightly with rust-src (offline, or the mirror is \
                unreachable?)";
    if toolchain_installed(toolchain) {
        util::run(
            rustup().args(["component", "add", "rust-src", "--toolchain", toolchain]),
            hint,
        )?;
    } else {
        util::run(
            rustup().args([
                "toolchain",
                "install",
                toolchain,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]),
            hint,
        )?;
    }
    let src = usable(toolchain).with_context(|| {
        format!(
            "rustup reported success but {toolchain} has no rust-src library sources or not \
             LLVM {LLVM_MAJOR}"
        )
    })?;
    Ok((toolchain.to_owned(), src))
}

fn acquire_debian(apt: &mut Apt) -> Result<(String, PathBuf)> {
    apt.install(DEBIAN_RUST_PACKAGES)?;
    for needed in ["/usr/bin/rustc", "/usr/lib/rustlib/src/rust/library/core"] {
        if !Path::new(needed).exists() {
            bail!(
                "{needed} is missing after installing {}; check `dpkg -L rustc-web rust-web-src`",
                DEBIAN_RUST_PACKAGES.join(" ")
            );
        }
    }
    if !toolchain_installed(DEBIAN_TOOLCHAIN) {
        util::run(
            rustup().args(["toolchain", "link", DEBIAN_TOOLCHAIN, "/usr"]),
            "could not link Debian's rustc into rustup; try `rustup toolchain link debian-bpf /usr`",
        )?;
    }
    let src = rust_src(DEBIAN_TOOLCHAIN).with_context(|| {
        format!(
            "rustup toolchain `{DEBIAN_TOOLCHAIN}` does not resolve to /usr with library \
             sources; remove it (`rustup toolchain uninstall {DEBIAN_TOOLCHAIN}`) and rerun setup"
        )
    })?;
    Ok((DEBIAN_TOOLCHAIN.to_owned(), src))
}

/// Returns a one-line description of the working bpf-linker, installing it if needed.
fn ensure_bpf_linker(apt: &mut Apt) -> Result<String> {
    let version = || {
        let path = util::which("bpf-linker")?;
        let v = util::probe_stdout(Command::new(&path).arg("--version"))?;
        Some(format!("{v} ({})", path.display()))
    };
    if let Some(found) = version() {
        return Ok(found);
    }
    eprintln!("xtask: bpf-linker not found; building it against LLVM 22 (takes a few minutes)");
    apt.install(LLVM_PACKAGES)?;
    let llvm_config = Path::new(LLVM_PREFIX).join("bin/llvm-config");
    if !llvm_config.is_file() {
        bail!(
            "{} is missing after installing {}",
            llvm_config.display(),
            LLVM_PACKAGES.join(" ")
        );
    }
    util::run(
        util::cargo()
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
        "building bpf-linker failed; check the LLVM 22 packages and the network to crates.io",
    )?;
    version().context(
        "`cargo install bpf-linker` succeeded but `bpf-linker --version` does not run; is \
         $CARGO_HOME/bin (~/.cargo/bin) on PATH?",
    )
}

/// Installs Debian packages, running `apt-get update` at most once.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// Which of `pkgs` dpkg does not list as installed (one `dpkg-query` for all of them, so
    /// the check stays quick when everything is present).
    fn missing<'p>(pkgs: &[&'p str]) -> Vec<&'p str> {
        let out = util::probe(
            Command::new("dpkg-query")
                .args(["-W", "-f=${Package} ${Status}\n"])
                .args(pkgs),
        );
        // dpkg-query exits 1 when it knows some package not at all, and still lists the others.
        let listed = out.map_or_else(String::new, |o| String::from_utf8_lossy(&o.stdout).into());
        pkgs.iter()
            .copied()
            .filter(|p| !installed_in(&listed, p))
            .collect()
    }

    pub fn install(&mut self, pkgs: &[&str]) -> Result<()> {
        let missing = Self::missing(pkgs);
        if missing.is_empty() {
            return Ok(());
        }
        if util::which("apt-get").is_none() {
            bail!(
                "apt-get not found; install these packages by hand: {}",
                missing.join(" ")
            );
        }
        let apt_get = || {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(std::process::Stdio::null());
            cmd
        };
        if !self.updated {
            util::run(
                apt_get().args(["update", "-q"]),
                "check the Debian mirrors in /etc/apt/sources.list(.d) and the network",
            )?;
            self.updated = true;
        }
        util::run(
            apt_get().args(["install", "-y", "-q"]).args(&missing),
            "check that the packages exist for this Debian release (`apt-cache policy <pkg>`)",
        )
    }
}

/// Whether `dpkg-query -W -f='${Package} ${Status}\n'` output lists `pkg` as installed.
fn installed_in(listed: &str, pkg: &str) -> bool {
    listed.lines().any(|line| {
        line.split_once(' ')
            .is_some_and(|(name, status)| name == pkg && status == "install ok installed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_route_sets_bootstrap_and_linker() {
        let env = tool_env(DEBIAN_TOOLCHAIN);
        assert_eq!(env.get("RUSTC_BOOTSTRAP"), Some("1"));
        assert_eq!(
            env.get("CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER"),
            Some("bpf-linker")
        );
        let env = tool_env(NIGHTLY);
        assert_eq!(env.vars.len(), 1);
        assert_eq!(env.get("SEAM_BPF_TOOLCHAIN"), Some(NIGHTLY));
    }

    #[test]
    fn reads_the_llvm_major_of_rustc() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                  release: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(vv), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.95.0\n"), None);
    }

    #[test]
    fn only_fully_installed_packages_count_as_installed() {
        let listed = "curl install ok installed\n\
                      docker.io deinstall ok config-files\n\
                      busybox-static unknown ok not-installed\n";
        assert!(installed_in(listed, "curl"));
        assert!(!installed_in(listed, "docker.io"));
        assert!(!installed_in(listed, "busybox-static"));
        assert!(!installed_in(listed, "chromium"), "not listed at all");
        assert!(!installed_in(listed, "cur"), "names match whole");
    }
}
