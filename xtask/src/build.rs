//! `cargo xtask build [--debug]`: runs setup if needed, then builds the agent (`-p seam`, which
//! builds the eBPF probes through agent/build.rs) with the recorded toolchain env.
//!
//! Two agent binaries, from one target directory (the dependencies are shared; only the agent
//! crate and its build script differ by feature):
//! - the shipped one, `target/release/seam`, without the `testkit` feature: what `build`,
//!   `install`, `demo` and the image use;
//! - the testkit one, `target/release/seam-testkit` (`--features testkit`: `seam workload` and
//!   the benchmark floor's object), for `test`, `bench` and `kernels`. Cargo writes it to
//!   `target/release/seam` too; [`build_testkit`] copies it away and removes that, so
//!   `target/release/seam` is only ever a shipped build (the next build links it back at once).

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::{self, Route},
    util::{self, ToolEnv},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Build the debug profile (target/debug/seam) instead of release.
    #[arg(long)]
    debug: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<()> {
    let (_, bin) = setup_and_build(args.debug)?;
    println!("{}", bin.display());
    Ok(())
}

/// Setup (fast when everything is present) + release build; returns the env and the binary.
pub fn setup_and_build(debug: bool) -> Result<(ToolEnv, PathBuf)> {
    let env = setup::ensure(Route::Auto)?;
    let bin = build(&env, debug)?;
    Ok((env, bin))
}

/// Setup + the testkit release build; returns the env and `target/release/seam-testkit`.
pub fn setup_and_build_testkit() -> Result<(ToolEnv, PathBuf)> {
    let env = setup::ensure(Route::Auto)?;
    let bin = build_testkit(&env)?;
    Ok((env, bin))
}

/// Builds the shipped agent (no testkit) and returns the absolute path of its binary.
pub fn build(env: &ToolEnv, debug: bool) -> Result<PathBuf> {
    cargo_build(env, debug, false)
}

/// Builds the testkit agent (`seam workload`, the floor's object) in release and returns
/// `target/release/seam-testkit`; `target/release/seam` is removed, never left a testkit build.
pub fn build_testkit(env: &ToolEnv) -> Result<PathBuf> {
    let built = cargo_build(env, false, true)?;
    let bin = built.with_file_name("seam-testkit");
    // A copy, not a hard link: the next shipped build re-links `target/release/seam`.
    let tmp = built.with_file_name(".seam-testkit.tmp");
    fs::copy(&built, &tmp)
        .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
    fs::rename(&tmp, &bin).with_context(|| format!("cannot write {}", bin.display()))?;
    fs::remove_file(&built).with_context(|| format!("cannot remove {}", built.display()))?;
    Ok(bin)
}

fn cargo_build(env: &ToolEnv, debug: bool, testkit: bool) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "seam"]);
    if !debug {
        cmd.arg("--release");
    }
    if testkit {
        cmd.args(["--features", "testkit"]);
    }
    util::run(
        env.apply(&mut cmd),
        "the agent or its eBPF probes did not build; see the errors above (probe errors appear \
         as `warning:` lines from agent/build.rs). `cargo xtask setup` re-checks the toolchain.",
    )?;
    let bin = util::target_dir()
        .join(if debug { "debug" } else { "release" })
        .join("seam");
    if !bin.is_file() {
        bail!("cargo build succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}
