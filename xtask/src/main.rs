//! `cargo xtask`: Seam's developer commands (setup, build, demo, test, bench, kernels,
//! fresh-check). Each command lives in its own module; `util` holds the shared helpers.
//! Everything runs as root.

mod bench;
mod build;
mod demo;
mod deps;
mod fresh;
mod install;
mod kernels;
mod python;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Seam's setup, build, install, demo, test, bench, kernel-matrix and fresh-check commands (run as root: sudo -E cargo xtask ...)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install/check the probe toolchain (nightly+rust-src or Debian rustc) and bpf-linker.
    Setup(setup::Args),
    /// Setup if needed, then build the shipped agent (target/release/seam, no testkit).
    Build(build::Args),
    /// Setup, build, then install the agent as /usr/local/bin/seam (`--prefix` to change).
    Install(install::Args),
    /// Setup, build, mount tracefs, then run `seam demo` (extra args after `--`).
    Demo(demo::Args),
    /// Setup, build the testkit (target/release/seam-testkit) and the shipped agent, then run
    /// the unit and the integration tests; prints `N passed, N failed`.
    Test(test::Args),
    /// Measure the agent's overhead on a TCP connect/accept/close loop in a tenant cgroup
    /// (testkit build).
    Bench(bench::Args),
    /// The README's two commands (demo, test) in a clean Debian 12 container on this kernel,
    /// as a fresh machine would run them: a missing install step fails here before CI.
    FreshCheck(fresh::Args),
    /// Boot each kernel of the matrix under QEMU (and run natively on the host): fingerprint,
    /// crossings flagged; writes docs/KERNELS.md (testkit build).
    Kernels(kernels::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    util::require_root();
    let result = match &cli.command {
        Cmd::Setup(args) => setup::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Build(args) => build::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Install(args) => install::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Demo(args) => demo::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Test(args) => test::run(args),
        Cmd::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Kernels(args) => kernels::run(args),
        Cmd::FreshCheck(args) => fresh::run(args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("xtask: error: {err:#}");
        ExitCode::FAILURE
    })
}
