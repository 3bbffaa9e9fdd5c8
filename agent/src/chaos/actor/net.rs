//! The network actions: a TCP or UDP listener that reports its port through a file, and clients
//! that connect or send to it.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{ActorError, hold_until};

/// How long one accept, read or connect may block.
const TIMEOUT: Duration = Duration::from_secs(30);
/// What the clients send (tests/tests/spans.rs counts its bytes).
const LINE: &[u8] = b"hello from seam workload\n";

#[derive(Debug, clap::Args)]
pub(crate) struct TcpListenArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long)]
    pub port_file: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Keep every accepted connection open, after its client closed, until this file exists
    /// (at most 60 s).
    #[arg(long, value_name = "FILE")]
    pub hold_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TcpConnectArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Every connect is expected to be refused (nothing listens): succeed only then.
    #[arg(long)]
    pub expect_refused: bool,
    /// Pause this long between connections.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub interval_ms: u64,
    /// Keep each connection open, after sending, until this file exists (at most 60 s).
    #[arg(long, value_name = "FILE")]
    pub hold_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UdpRecvArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long)]
    pub port_file: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UdpSendArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Send to this many consecutive ports starting at --addr's port (unconnected only).
    #[arg(long, default_value_t = 1)]
    pub spread: u16,
    /// connect() the socket to --addr first and send() on it (a connected UDP socket).
    #[arg(long)]
    pub connected: bool,
}

/// Writes the port through a temporary file and a rename, so a reader never sees half of it.
fn write_port(path: &Path, port: u16) -> Result<(), ActorError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, port.to_string())
        .map_err(ActorError::io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(ActorError::io(format!("rename to {}", path.display())))
}

pub(super) fn tcp_listen(args: &TcpListenArgs) -> Result<(), ActorError> {
    let addr = args.addr;
    let listener = TcpListener::bind(addr).map_err(ActorError::io(format!("bind {addr}")))?;
    let port = listener
        .local_addr()
        .map_err(ActorError::io("getsockname"))?
        .port();
    write_port(&args.port_file, port)?;
    let mut held = Vec::new();
    for _ in 0..args.count {
        let (mut stream, _) = listener.accept().map_err(ActorError::io("accept"))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(ActorError::io("set a read timeout"))?;
        let mut buf = Vec::new();
        // The client's line, until it closes (or the timeout): what it sent does not matter.
        let _ = stream.read_to_end(&mut buf);
        if args.hold_file.is_some() {
            held.push(stream);
        }
    }
    if let Some(file) = &args.hold_file {
        hold_until(file);
    }
    Ok(())
}

pub(super) fn tcp_connect(args: &TcpConnectArgs) -> Result<(), ActorError> {
    let addr = args.addr;
    for n in 0..args.count {
        if n > 0 && args.interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
        let result = TcpStream::connect_timeout(&addr, TIMEOUT);
        if args.expect_refused {
            match result {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    return Err(ActorError::Unexpected(format!(
                        "connect {addr}: {e}, expected refused"
                    )));
                }
                Ok(_) => {
                    return Err(ActorError::Unexpected(format!(
                        "connect {addr} succeeded, expected refused"
                    )));
                }
            }
        }
        let mut stream = result.map_err(ActorError::io(format!("connect {addr}")))?;
        stream
            .write_all(LINE)
            .map_err(ActorError::io(format!("send to {addr}")))?;
        if let Some(file) = &args.hold_file {
            hold_until(file);
        }
    }
    Ok(())
}

pub(super) fn udp_recv(args: &UdpRecvArgs) -> Result<(), ActorError> {
    let addr = args.addr;
    let socket = UdpSocket::bind(addr).map_err(ActorError::io(format!("bind {addr}")))?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(ActorError::io("set a read timeout"))?;
    let port = socket
        .local_addr()
        .map_err(ActorError::io("getsockname"))?
        .port();
    write_port(&args.port_file, port)?;
    let mut buf = [0u8; 2048];
    for _ in 0..args.count {
        socket
            .recv_from(&mut buf)
            .map_err(ActorError::io("recv_from"))?;
    }
    Ok(())
}

pub(super) fn udp_send(args: &UdpSendArgs) -> Result<(), ActorError> {
    let addr = args.addr;
    let any: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).map_err(ActorError::io(format!("bind {any}")))?;
    if args.connected {
        socket
            .connect(addr)
            .map_err(ActorError::io(format!("connect {addr}")))?;
        for _ in 0..args.count {
            socket
                .send(LINE)
                .map_err(ActorError::io(format!("send to {addr}")))?;
        }
        return Ok(());
    }
    for offset in 0..args.spread {
        let mut to = addr;
        to.set_port(addr.port().wrapping_add(offset));
        for _ in 0..args.count {
            socket
                .send_to(LINE, to)
                .map_err(ActorError::io(format!("send_to {to}")))?;
        }
    }
    Ok(())
}
