//! The `seam` binary: see [`seam::cli`].

/// mimalloc: the agent allocates small, short-lived objects at a high rate (spans, OTLP
/// attributes, feed lines), where glibc's malloc spends a third of the export path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    seam::cli::main()
}
