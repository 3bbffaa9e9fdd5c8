//! `cargo xtask demo [-- ARGS...]`: setup + release build, mounts tracefs if needed, then
//! replaces itself with `target/release/seam demo ARGS...` (so the exit code is the demo's).
//! Unless ARGS name a store, the demo keeps its history in `target/demo/history` (master key
//! beside it), and prints the commands that replay and report on it.

use std::{ffi::OsString, os::unix::process::CommandExt as _, process::Command};

use anyhow::{Result, anyhow};

use crate::{build, deps, util};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Extra arguments passed to `seam demo` (put them after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

pub fn run(args: &Args) -> Result<()> {
    let (_, bin) = build::setup_and_build(false)?;
    deps::ensure(deps::DEMO)?;
    util::ensure_tracefs()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("demo").args(&args.args);
    if !args
        .args
        .iter()
        .any(|a| a.to_str().is_some_and(|a| a.starts_with("--store")))
    {
        let store = util::target_dir().join("demo/history");
        if let Some(dir) = store.parent() {
            std::fs::create_dir_all(dir)?;
        }
        cmd.arg("--store").arg(store);
    }
    eprintln!("xtask: $ {}", util::display_cmd(&cmd));
    // exec only returns on failure.
    let err = cmd.exec();
    Err(anyhow!(
        "could not start `{}`: {err}",
        util::display_cmd(&cmd)
    ))
}
