//! `cargo xtask install`: setup + release build, then installs the agent as `PREFIX/bin/seam`
//! (default /usr/local/bin, on every shell's PATH), so `seam run ...` works as the README
//! writes it.

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf};

use anyhow::{Context as _, Result};

use crate::build;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Install into PREFIX/bin.
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<()> {
    let (_, bin) = build::setup_and_build(false)?;
    let dir = args.prefix.join("bin");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join("seam");
    // Copy to a temporary name and rename, so a running `seam` is never overwritten in place.
    let tmp = dir.join(".seam.xtask-install");
    fs::copy(&bin, &tmp)
        .with_context(|| format!("cannot copy {} to {}", bin.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, &dest).with_context(|| format!("cannot install {}", dest.display()))?;
    println!("{}", dest.display());
    Ok(())
}
