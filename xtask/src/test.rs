//! `cargo xtask test`: setup + the testkit and the shipped release builds, mounts tracefs, then
//! runs the host unit tests and the integration tests (on the real kernel: the testkit agent as
//! `SEAM_BIN`, for its `seam workload`, and the shipped one as `SEAM_RELEASE_BIN`, which the
//! demo, chaos and CLI tests run), teeing cargo's output and printing `N passed, N failed`
//! summed over every `test result:` line.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result};

use crate::{build, util};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip the kernel matrix (`cargo xtask kernels`: Debian kernels under QEMU and the host).
    #[arg(long)]
    no_kernels: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

#[allow(clippy::print_stdout)]
pub fn run(args: &Args) -> Result<ExitCode> {
    // The testkit build first: the shipped build after it leaves `target/release/seam` shipped.
    let (env, bin) = build::setup_and_build_testkit()?;
    let shipped = build::build(&env, false)?;
    util::ensure_tracefs()?;
    let python = crate::python::ensure()?;
    let chromium = chromium()?;
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
    ]);
    env.apply(&mut unit);

    let mut integration = util::cargo();
    integration
        .args([
            "test",
            "--release",
            "-p",
            "seam-integration-tests",
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
    for (name, cmd) in [
        ("unit tests", &mut unit),
        ("integration tests", &mut integration),
    ] {
        let (ok, tally) = tee_cargo_test(cmd)?;
        total.passed += tally.passed;
        total.failed += tally.failed;
        if !ok {
            failed_steps.push(format!("{name} (`{}`)", util::display_cmd(cmd)));
        }
    }

    if !args.no_kernels {
        // Each kernel of the matrix counts as one test; its report goes to target/kernels/.
        let matrix = crate::kernels::run_matrix(&bin, &[], crate::kernels::TIMEOUT)?;
        let report = crate::kernels::write_report(&matrix, &bin, false)?;
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
    }
    for step in &failed_steps {
        eprintln!("xtask: FAILED: {step}");
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 && failed_steps.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Headless Chromium for the HTML report's test (Debian's `chromium`, installed if missing).
fn chromium() -> Result<std::path::PathBuf> {
    if let Some(path) = util::which("chromium") {
        return Ok(path);
    }
    crate::setup::Apt::default().install(&["chromium"])?;
    util::which("chromium").context("installed Debian's chromium but `chromium` is not on PATH")
}

/// Runs a `cargo test` command, copying its stdout to ours line by line while counting the
/// `test result:` lines; stderr (cargo's progress) goes straight to the terminal.
fn tee_cargo_test(cmd: &mut Command) -> Result<(bool, Tally)> {
    eprintln!("xtask: $ {}", util::display_cmd(cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", util::display_cmd(cmd)))?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut out = std::io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .context("reading cargo test output")?;
            if n == 0 {
                break;
            }
            // A closed terminal must not stop the tests; keep counting.
            let _ = out.write_all(&line).and_then(|()| out.flush());
            if let Some(t) = parse_result_line(&String::from_utf8_lossy(&line)) {
                tally.passed += t.passed;
                tally.failed += t.failed;
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", util::display_cmd(cmd)))?;
    Ok((status.success(), tally))
}

/// Parses libtest's `test result: ok. 5 passed; 1 failed; 0 ignored; ...` (ANSI colours allowed).
fn parse_result_line(line: &str) -> Option<Tally> {
    let plain = strip_ansi(line);
    let rest = plain.trim().strip_prefix("test result:")?;
    let mut tally = Tally::default();
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(count)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        match what {
            "passed" => tally.passed += count,
            "failed" => tally.failed += count,
            _ => {}
        }
    }
    Some(tally)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip `ESC [ ... final-byte`.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
                 finished in 0.01s\n"
            ),
            Some(Tally {
                passed: 5,
                failed: 0
            })
        );
        assert_eq!(
            parse_result_line(
                "test result: \u{1b}[31mFAILED\u{1b}[0m. 3 passed; 2 failed; 0 ignored"
            ),
            Some(Tally {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
    }
}
