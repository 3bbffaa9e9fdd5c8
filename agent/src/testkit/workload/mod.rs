//! `seam workload ...` (testkit builds only): small, real workloads that first move themselves
//! into a cgroup, for the integration tests, the kernel matrix and `cargo xtask bench`. The
//! crossings themselves are `seam chaos-actor`'s actions (the same code, [`actor::Action`]); this
//! adds what only tests and benchmarks need: dropping to a uid, Landlock confinement, syscall
//! loops, sealed store and history fills, and the benchmark helpers.
pub(crate) mod landlock;

use std::{
    ffi::OsString,
    io::Read as _,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{chaos::actor, cli::logging};

/// `seam workload`: run a workload inside a cgroup.
#[derive(Debug, Parser)]
#[command(name = "seam workload", bin_name = "seam workload")]
pub(crate) struct WorkloadCli {
    /// Log format on stderr: text or json.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        env = "SEAM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: logging::LogFormat,
    #[command(flatten)]
    identity: actor::Identity,
    /// Drop to this uid (and gid) after joining the cgroup.
    #[arg(long)]
    uid: Option<u32>,
    /// Confine this workload's file reads to this directory with Landlock first (the kernel
    /// matrix: what each file tier reports for an LSM's refusal).
    #[arg(long, value_name = "DIR")]
    landlock_allow_read: Option<PathBuf>,
    #[command(subcommand)]
    workload: Workload,
}

/// A workload to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Workload {
    /// What `seam chaos-actor` does: listen, connect, send, one file syscall, prepare, remove,
    /// exec.
    #[command(flatten)]
    Actor(actor::Action),
    /// Benchmark loop of one cheap syscall: `getppid`, or `openat`+`close` of /etc/hostname;
    /// prints {"iterations","elapsed_ns","ns_per_iter"}.
    SyscallLoop {
        #[arg(long, value_enum)]
        syscall: LoopSyscall,
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// Benchmark loop: listener and client in this process, --iterations connect+accept+close
    /// rounds over 127.0.0.1; prints {"iterations","elapsed_ns","ns_per_iter"}.
    TcpLoop {
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
    /// Append records to a sealed store until --count or --stop-file; JSON progress lines.
    StoreAppend(crate::testkit::store::AppendArgs),
    /// Read a sealed store back: JSON records (--records) and a report of every issue.
    StoreRead(crate::testkit::store::ReadArgs),
    /// Store seal throughput against ring's raw AEAD, read throughput; prints JSON.
    StoreBench(crate::testkit::store::BenchArgs),
    /// Benchmark loops, the floor's empty programs and stage measurements (`cargo xtask bench`).
    #[command(subcommand)]
    Bench(crate::testkit::bench::BenchWorkload),
    /// Write a synthetic history of realistic spans (replay benchmark); prints JSON.
    HistoryFill(crate::testkit::history::FillArgs),
}

/// The syscall a `syscall-loop` repeats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LoopSyscall {
    /// A syscall no Seam probe looks at: measures the node-wide syscall tracepoint tax.
    Getppid,
    /// openat+close: what a file probe costs per open in a tenant cgroup.
    Openat,
}

/// `seam workload ARGS...` (`args` without the binary's name): parses, runs, and returns the
/// exit code (2 with the error on stderr when the workload failed).
pub(crate) fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = WorkloadCli::parse_from(args);
    logging::init(cli.log_format);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            ExitCode::from(crate::cli::USAGE_ERROR)
        }
    }
}

fn run(cli: &WorkloadCli) -> Result<()> {
    cli.identity.enter()?;
    if let Some(uid) = cli.uid {
        drop_to(uid)?;
    }
    if let Some(allowed) = &cli.landlock_allow_read {
        landlock::allow_reads_only_beneath(allowed)?;
    }
    match &cli.workload {
        Workload::Actor(action) => actor::run(action)?,
        Workload::TcpLoop { iterations } => tcp_loop(*iterations)?,
        Workload::SyscallLoop {
            syscall,
            iterations,
        } => syscall_loop(*syscall, *iterations)?,
        Workload::Bench(bench) => crate::testkit::bench::run(bench)?,
        Workload::StoreAppend(args) => crate::testkit::store::append(args)?,
        Workload::StoreRead(args) => crate::testkit::store::read(args)?,
        Workload::StoreBench(args) => crate::testkit::store::bench(args)?,
        Workload::HistoryFill(args) => crate::testkit::history::fill(args)?,
    }
    Ok(())
}

/// Drops every group and takes `uid` as uid and gid.
fn drop_to(uid: u32) -> Result<()> {
    // SAFETY: plain syscalls; failure is reported.
    let rc =
        unsafe { libc::setgroups(0, std::ptr::null()) | libc::setgid(uid) | libc::setuid(uid) };
    if rc != 0 {
        anyhow::bail!(
            "cannot drop to uid {uid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_loop(iterations: u32, elapsed: Duration) {
    let elapsed = elapsed.as_nanos();
    println!(
        "{}",
        serde_json::json!({
            "iterations": iterations,
            "elapsed_ns": elapsed as u64,
            "ns_per_iter": elapsed as f64 / f64::from(iterations.max(1)),
        })
    );
}

fn syscall_loop(syscall: LoopSyscall, iterations: u32) -> Result<()> {
    let path = c"/etc/hostname";
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: plain syscalls; the fd is closed right away.
        unsafe {
            match syscall {
                LoopSyscall::Getppid => {
                    libc::getppid();
                }
                LoopSyscall::Openat => {
                    let fd = libc::openat(libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
        }
    }
    print_loop(iterations, start.elapsed());
    Ok(())
}

fn tcp_loop(iterations: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // The server closes first, so TIME_WAIT lands on the listener's side and the client's
    // ephemeral ports are never exhausted across rounds (that would dwarf what is measured).
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..iterations {
            let (stream, _) = listener.accept()?;
            drop(stream);
        }
        Ok(())
    });
    let start = Instant::now();
    let mut eof = [0u8; 1];
    for _ in 0..iterations {
        let mut stream = TcpStream::connect(addr)?;
        let _ = stream.read(&mut eof)?;
        drop(stream);
    }
    server
        .join()
        .map_err(|_| anyhow::anyhow!("accept thread panicked"))??;
    print_loop(iterations, start.elapsed());
    Ok(())
}
