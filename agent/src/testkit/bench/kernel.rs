//! Helpers for the bench figures that go through the kernel: a paced connection generator (the
//! ring's rate), listeners and a timed client (violation latency), and a holder of many open
//! connections (the agent's memory with them). Each prints JSON lines on stdout.
use std::{
    fs,
    io::{ErrorKind, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use clap::Args;

/// `seam workload bench paced`.
#[derive(Debug, Args)]
pub(crate) struct PacedArgs {
    /// Connections per second to offer, over all threads.
    #[arg(long)]
    rate: u32,
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    #[arg(long, default_value_t = 2)]
    threads: u32,
}

/// connect+accept+close at `--rate` connections/s over `--threads` threads (each with its own
/// listener), for `--seconds`; prints {"connections","elapsed_ns","per_sec"}. A thread that
/// falls behind does not sleep, so the achieved rate shows when the generator saturates.
#[allow(clippy::print_stdout)]
pub(crate) fn paced(args: &PacedArgs) -> Result<()> {
    let threads = args.threads.max(1);
    let per_thread = f64::from(args.rate) / f64::from(threads);
    let total = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || -> Result<u64> {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let mut eof = [0u8; 1];
                let mut n = 0u64;
                loop {
                    let elapsed = start.elapsed();
                    if elapsed >= total {
                        return Ok(n);
                    }
                    let due = Duration::from_secs_f64(n as f64 / per_thread);
                    if due > elapsed {
                        thread::sleep((due - elapsed).min(Duration::from_millis(5)));
                        continue;
                    }
                    let mut client = TcpStream::connect(addr).context("connect")?;
                    let (server, _) = listener.accept().context("accept")?;
                    drop(server);
                    let _ = client.read(&mut eof)?;
                    n += 1;
                }
            })
        })
        .collect();
    let mut connections = 0u64;
    for w in workers {
        connections += w
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
    }
    let elapsed = start.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "connections": connections,
            "elapsed_ns": elapsed.as_nanos() as u64,
            "per_sec": connections as f64 / elapsed.as_secs_f64(),
        })
    );
    Ok(())
}

/// `seam workload bench listeners`: `--count` TCP listeners on 127.0.0.1, their ports written
/// one a line to `--ports-file` (renamed into place), connections accepted and closed until
/// killed.
pub(crate) fn listeners(count: u32, ports_file: &PathBuf) -> Result<()> {
    let listeners = (0..count)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .collect::<std::io::Result<Vec<_>>>()
        .context("bind")?;
    let mut text = String::new();
    for l in &listeners {
        text.push_str(&format!("{}\n", l.local_addr()?.port()));
    }
    let tmp = ports_file.with_extension("tmp");
    fs::write(&tmp, text).context("write the ports file")?;
    fs::rename(&tmp, ports_file).context("publish the ports file")?;
    loop {
        let mut idle = true;
        for l in &listeners {
            match l.accept() {
                Ok(_) => idle = false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("accept"),
            }
        }
        if idle {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `seam workload bench timed-connect`: one connection to each port of `--ports-file` on
/// 127.0.0.1, `--gap-ms` apart; prints {"port","t_ns"} per attempt, `t_ns` being
/// CLOCK_REALTIME just before connect().
#[allow(clippy::print_stdout)]
pub(crate) fn timed_connect(ports_file: &PathBuf, gap_ms: u64) -> Result<()> {
    let text = fs::read_to_string(ports_file).context("read the ports file")?;
    for port in text.lines().filter_map(|l| l.trim().parse::<u16>().ok()) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
        let client = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        drop(client);
        println!("{{\"port\":{port},\"t_ns\":{t_ns}}}");
        thread::sleep(Duration::from_millis(gap_ms));
    }
    Ok(())
}

/// `seam workload bench hold`: without `--connect`, listens on 127.0.0.1, writes its port to
/// `--port-file` and accepts `--count` connections; with `--connect PORT`, opens `--count`
/// connections to it. Either way writes `--ready-file` once all are open, then holds them
/// until killed. Raises RLIMIT_NOFILE to fit.
pub(crate) fn hold(
    count: u32,
    connect: Option<u16>,
    port_file: &PathBuf,
    ready_file: &PathBuf,
) -> Result<()> {
    let want = u64::from(count) + 64;
    let limit = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("raise RLIMIT_NOFILE");
    }
    let mut held = Vec::with_capacity(count as usize);
    if let Some(port) = connect {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..count {
            held.push(TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?);
        }
    } else {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let tmp = port_file.with_extension("tmp");
        fs::write(&tmp, listener.local_addr()?.port().to_string())?;
        fs::rename(&tmp, port_file)?;
        for _ in 0..count {
            held.push(listener.accept().context("accept")?.0);
        }
    }
    fs::write(ready_file, held.len().to_string())?;
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}
