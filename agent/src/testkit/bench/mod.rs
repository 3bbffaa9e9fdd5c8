//! Benchmark helpers behind `seam workload bench ...` (hidden): the loops `cargo xtask bench`
//! times, the empty programs that give the floor of the hooks Seam uses, and the measurements
//! of the agent's own stages. Never used by the agent itself.
pub(crate) mod floor;
pub(crate) mod kernel;
pub(crate) mod loops;
mod node;
pub(crate) mod otlp;
pub(crate) mod pipeline;
pub(crate) mod receive;
mod records;

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

/// What `seam workload bench` runs.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchWorkload {
    /// Attach empty programs on the given hooks until SIGINT/SIGTERM (the floor).
    Floor(floor::FloorArgs),
    /// connect+accept+close over loopback, one thread.
    TcpLoop {
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
    /// sendto+recvfrom of 64-byte UDP datagrams over loopback, one thread.
    UdpLoop {
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// TCP send/recv throughput over loopback: ns per 64 KiB.
    StreamLoop {
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
    },
    /// The agent's user-space stages on one thread: events/s.
    Pipeline(pipeline::PipelineArgs),
    /// OTLP export on one thread to a local receiver: spans/s (or, stalled, memory).
    OtlpExport(otlp::ExportArgs),
    /// OTLP application spans decoded and joined on one thread: spans/s.
    OtlpReceive(receive::ReceiveArgs),
    /// connect+accept+close paced at --rate connections/s (the kernel ring's rate).
    Paced(kernel::PacedArgs),
    /// --count listeners, their ports in --ports-file, accepting until killed.
    Listeners {
        #[arg(long, default_value_t = 200)]
        count: u32,
        #[arg(long)]
        ports_file: PathBuf,
    },
    /// One connect per port of --ports-file, timed (CLOCK_REALTIME ns before connect).
    TimedConnect {
        #[arg(long)]
        ports_file: PathBuf,
        #[arg(long, default_value_t = 5)]
        gap_ms: u64,
    },
    /// Open --count connections (to --connect PORT, or accept them) and hold them until killed.
    Hold {
        #[arg(long, default_value_t = 10_000)]
        count: u32,
        #[arg(long)]
        connect: Option<u16>,
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long)]
        ready_file: PathBuf,
    },
}

pub(crate) fn run(workload: &BenchWorkload) -> Result<()> {
    match workload {
        BenchWorkload::Floor(args) => floor::run(args),
        BenchWorkload::TcpLoop { iterations } => loops::tcp(*iterations),
        BenchWorkload::UdpLoop { iterations } => loops::udp(*iterations),
        BenchWorkload::StreamLoop { iterations } => loops::stream(*iterations),
        BenchWorkload::Pipeline(args) => pipeline::run(args),
        BenchWorkload::OtlpExport(args) => otlp::export(args),
        BenchWorkload::OtlpReceive(args) => receive::run(args),
        BenchWorkload::Paced(args) => kernel::paced(args),
        BenchWorkload::Listeners { count, ports_file } => kernel::listeners(*count, ports_file),
        BenchWorkload::TimedConnect { ports_file, gap_ms } => {
            kernel::timed_connect(ports_file, *gap_ms)
        }
        BenchWorkload::Hold {
            count,
            connect,
            port_file,
            ready_file,
        } => kernel::hold(*count, *connect, port_file, ready_file),
    }
}
