//! Test and benchmark harness, in `--features testkit` builds only (`cargo xtask test`, `bench`
//! and `kernels`; never `cargo xtask build`, `install` or the image): the `seam workload`
//! commands the integration tests, the kernel matrix and the benchmark run. It sits above the
//! command line: [`main`] takes `seam workload ...` and hands everything else to [`cli::main`],
//! so the command line itself knows nothing of it and the shipped binary has no `workload`.
pub(crate) mod bench;
pub(crate) mod history;
pub(crate) mod store;
pub(crate) mod workload;

use std::process::ExitCode;

use crate::cli;

/// The testkit binary's entry: `seam workload ...`, else the shipped command line.
pub fn main() -> ExitCode {
    // After the program's name; `workload` then stands in for it in clap's parse.
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|first| first == "workload") {
        return workload::main(args);
    }
    cli::main()
}
