//! The benchmark's loops: each prints one JSON line {"iterations","elapsed_ns","ns_per_iter"}.
//! Single-threaded where the kernel lets the other end run inline (loopback delivers in the
//! sender's softirq), so a busy neighbour on a shared core does not add scheduler latency to
//! what is measured.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

#[allow(clippy::print_stdout)]
pub(crate) fn print_loop(iterations: u32, elapsed: Duration) {
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

/// connect + accept + close over 127.0.0.1, in one thread. The server closes first, so
/// TIME_WAIT lands on the listener's side and the client's ephemeral ports are never exhausted
/// across rounds (that would dwarf what is measured).
pub(crate) fn tcp(iterations: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut eof = [0u8; 1];
    let start = Instant::now();
    for _ in 0..iterations {
        let mut client = TcpStream::connect(addr).context("connect")?;
        let (server, _) = listener.accept().context("accept")?;
        drop(server);
        let _ = client.read(&mut eof)?;
        drop(client);
    }
    print_loop(iterations, start.elapsed());
    Ok(())
}

/// sendto + recvfrom of a 64-byte datagram between two unconnected UDP sockets.
pub(crate) fn udp(iterations: u32) -> Result<()> {
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    b.set_read_timeout(Some(Duration::from_secs(5)))?;
    let to = b.local_addr()?;
    let payload = [7u8; 64];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for _ in 0..iterations {
        a.send_to(&payload, to).context("send_to")?;
        b.recv_from(&mut buf).context("recv_from")?;
    }
    print_loop(iterations, start.elapsed());
    Ok(())
}

/// Bytes per iteration of [`stream`].
const CHUNK: usize = 64 * 1024;

/// One TCP connection over 127.0.0.1: a thread writes `iterations` chunks of 64 KiB, this one
/// reads them (send/recv throughput; ns per 64 KiB).
pub(crate) fn stream(iterations: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let chunk = vec![1u8; CHUNK];
        for _ in 0..iterations {
            stream.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut reader, _) = listener.accept()?;
    let mut buf = vec![0u8; CHUNK];
    let total = CHUNK as u64 * u64::from(iterations);
    let mut read = 0u64;
    let start = Instant::now();
    while read < total {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let elapsed = start.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    print_loop(iterations, elapsed);
    Ok(())
}
