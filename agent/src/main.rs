//! The `seam` binary: see [`seam::cli`].
fn main() -> std::process::ExitCode {
    seam::cli::main()
}
