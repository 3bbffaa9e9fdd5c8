//! The Python environment of the test clients (tests/py): a venv under target/py with
//! tests/py/requirements.txt installed, reused while the requirements are unchanged.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result};

use crate::{setup::Apt, util};

/// The venv's python, ready (creating the venv and installing the requirements if needed).
pub fn ensure() -> Result<PathBuf> {
    let root = util::workspace_root();
    let requirements = root.join("tests/py/requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = util::target_dir().join("py");
    let python = venv.join("bin/python");
    let marker = venv.join("seam-requirements.txt");
    if python.is_file() && fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        return Ok(python);
    }
    eprintln!(
        "xtask: creating the test clients' Python environment in {}",
        venv.display()
    );
    let system = util::which("python3").context("python3 not found; install Python 3")?;
    let created = Command::new(&system)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !created {
        // Debian's python3 needs its venv module as a package.
        Apt::default().install(&["python3-venv"])?;
        util::run(
            Command::new("/usr/bin/python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "cannot create the Python venv for the test clients",
        )?;
    }
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "cannot install the test clients' Python packages (PyPI must be reachable)",
    )?;
    fs::write(&marker, wanted)?;
    Ok(python)
}
