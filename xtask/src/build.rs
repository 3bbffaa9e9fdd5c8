//! `cargo xtask build [--debug]`: runs setup if needed, then builds the agent (`-p seam`, which
//! builds the eBPF probes through agent/build.rs) with the recorded toolchain env.

use std::path::PathBuf;

use anyhow::{Result, bail};

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

/// Builds the agent and returns the absolute path of its binary.
pub fn build(env: &ToolEnv, debug: bool) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "seam"]);
    if !debug {
        cmd.arg("--release");
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
