//! `cargo xtask test`: setup + the testkit and the shipped release builds, mounts tracefs, then
//! runs the host unit tests and the integration tests (on the real kernel: the testkit agent as
//! `SEAM_BIN`, for its `seam workload`, and the shipped one as `SEAM_RELEASE_BIN`, which the
//! demo, chaos and CLI tests run), teeing cargo's output and printing `N passed, N failed` over
//! every test binary (xtask/src/test/binaries.rs: an aborted or unbuilt binary counts as a
//! failure). Both cargo runs use `--no-fail-fast`.

mod binaries;

use std::{
    io::Write as _,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result};
use binaries::{Fate, Run, Tally};

use crate::{build, deps, util};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip the kernel matrix (`cargo xtask kernels`: Debian kernels under QEMU and the host).
    #[arg(long)]
    no_kernels: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<ExitCode> {
    // The testkit build first: the shipped build after it leaves `target/release/seam` shipped.
    let (env, bin) = build::setup_and_build_testkit()?;
    let shipped = build::build(&env, false)?;
    deps::ensure(deps::TESTS)?;
    util::ensure_tracefs()?;
    let python = crate::python::ensure()?;
    let chromium = chromium()?;
    let mut skipped = Vec::new();
    if let Err(why) = deps::ensure_docker_daemon() {
        // The container tests then skip (tests/src/docker.rs); say so where it shows.
        eprintln!("xtask: WARNING: no Docker daemon, the container tests will skip: {why}");
        skipped.push(format!(
            "container tests (tests/tests/containers.rs): no Docker daemon: {why}"
        ));
    }
    let rules = util::workspace_root().join("rules");

    let mut unit = util::cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "seam-ebpf",
        "--exclude",
        "seam-integration-tests",
        "--release",
        // One failing test binary must not hide the results of the others.
        "--no-fail-fast",
    ]);
    env.apply(&mut unit);

    let mut integration = util::cargo();
    integration
        .args([
            "test",
            "--release",
            "-p",
            "seam-integration-tests",
            "--no-fail-fast",
            "--",
            "--test-threads=2",
        ])
        .env("SEAM_BIN", &bin)
        .env("SEAM_RELEASE_BIN", &shipped)
        .env("SEAM_RULES_DIR", &rules)
        .env("SEAM_PYTHON", &python)
        .env("SEAM_CHROMIUM", &chromium);
    env.apply(&mut integration);

    let mut total = Tally::default();
    let mut failed_steps = Vec::new();
    let mut binaries = Vec::new();
    for (name, cmd) in [
        ("unit tests", &mut unit),
        ("integration tests", &mut integration),
    ] {
        let run = tee_cargo_test(cmd)?;
        total.add(run.tally());
        if run.binaries.iter().any(|b| b.fate != Fate::Passed) {
            failed_steps.push(format!("{name} (`{}`)", util::display_cmd(cmd)));
        }
        binaries.extend(run.binaries);
    }

    if args.no_kernels {
        skipped.push("kernel matrix: --no-kernels".into());
    } else if let Err(err) = kernel_matrix(&bin, &mut total, &mut failed_steps) {
        // The matrix as a whole could not run (tools, packages, QEMU): one failure, and the
        // summary below still counts everything else.
        total.failed += 1;
        failed_steps.push(format!("kernel matrix did not run: {err:#}"));
    }
    report_binaries(&binaries);
    for step in &failed_steps {
        eprintln!("xtask: FAILED: {step}");
    }
    for what in &skipped {
        eprintln!("xtask: SKIPPED: {what}");
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 && failed_steps.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the kernel matrix; each kernel counts as one test (report in target/kernels/).
#[allow(clippy::print_stdout)]
fn kernel_matrix(
    bin: &std::path::Path,
    total: &mut Tally,
    failed_steps: &mut Vec<String>,
) -> Result<()> {
    let matrix = crate::kernels::run_matrix(bin, &[], crate::kernels::TIMEOUT)?;
    let report = crate::kernels::write_report(&matrix, bin, false)?;
    for kernel in &matrix.kernels {
        if kernel.failures.is_empty() {
            total.passed += 1;
        } else {
            total.failed += 1;
            failed_steps.push(format!("kernel matrix: {}", kernel.name));
        }
    }
    println!(
        "kernel matrix: {} kernel(s) in {:.0} s; report: {}",
        matrix.kernels.len(),
        matrix.total.as_secs_f64(),
        report.display()
    );
    Ok(())
}

/// Headless Chromium for the HTML report's test (Debian's `chromium`, installed if missing).
fn chromium() -> Result<std::path::PathBuf> {
    if let Some(path) = util::which("chromium") {
        return Ok(path);
    }
    crate::setup::Apt::default().install(&["chromium"])?;
    util::which("chromium").context("installed Debian's chromium but `chromium` is not on PATH")
}

/// Prints how many test binaries ran and names each one that did not pass, and why.
fn report_binaries(binaries: &[binaries::Binary]) {
    let count = |f: fn(&Fate) -> bool| binaries.iter().filter(|b| f(&b.fate)).count();
    eprintln!(
        "xtask: {} test binaries: {} passed, {} with failing tests, {} aborted, {} not built",
        binaries.len(),
        count(|f| *f == Fate::Passed),
        count(|f| *f == Fate::Failed),
        count(|f| matches!(f, Fate::Aborted(_))),
        count(|f| matches!(f, Fate::NotBuilt(_))),
    );
    for b in binaries {
        match &b.fate {
            Fate::Passed | Fate::Running => {}
            Fate::Failed => eprintln!(
                "xtask:   failing tests: {}: {} failed, {} passed",
                b.name, b.tally.failed, b.tally.passed
            ),
            Fate::Aborted(how) => eprintln!(
                "xtask:   aborted (counted as 1 failed): {}: {how}; {} passed before",
                b.name, b.tally.passed
            ),
            Fate::NotBuilt(why) => {
                eprintln!(
                    "xtask:   not built (counted as 1 failed): {}: {why}",
                    b.name
                )
            }
        }
    }
}

/// Runs a `cargo test` command with its stdout and stderr merged (so cargo's `Running` lines
/// and each binary's results stay in order), copying every line to our stdout and reading
/// which binary ran and how it ended.
fn tee_cargo_test(cmd: &mut Command) -> Result<Run> {
    eprintln!("xtask: $ {}", util::display_cmd(cmd));
    let mut run = Run::default();
    let mut out = std::io::stdout();
    let status = util::tee_lines(cmd, |line| {
        // A closed terminal must not stop the tests; keep counting.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        run.line(line);
    })?;
    run.finish(status.success(), &status.to_string());
    Ok(run)
}
