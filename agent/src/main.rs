//! The `seam` binary: see [`seam::cli`]; testkit builds (tests, benchmarks) add `seam workload`.
fn main() -> std::process::ExitCode {
    #[cfg(feature = "testkit")]
    return seam::testkit::main();
    #[cfg(not(feature = "testkit"))]
    seam::cli::main()
}
