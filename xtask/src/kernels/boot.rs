//! Running the scenario: in a QEMU/TCG guest booted on a kernel image (console on the serial
//! port, captured here), or natively on the host. Both are bounded by a timeout.
use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::util;

/// What came out of one boot (or host run).
#[derive(Debug)]
pub struct Console {
    pub text: String,
    /// From start to the end of the console (or the timeout).
    pub wall: Duration,
    /// From start to the guest's `=====SEAM-INIT=====` (the kernel's boot), when seen.
    pub boot: Option<Duration>,
    pub timed_out: bool,
}

/// Copies the child's output to `log` line by line, noting when the init marker arrives, and
/// kills the child at the deadline.
fn collect(mut child: Child, log: &Path, timeout: Duration) -> Result<Console> {
    let started = Instant::now();
    let stdout = child.stdout.take().context("child stdout not piped")?;
    let (tx, rx) = mpsc::channel::<Option<Duration>>();
    let log_path = log.to_owned();
    let reader = std::thread::spawn(move || -> std::io::Result<String> {
        let mut file = fs::File::create(&log_path)?;
        let mut text = String::new();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            file.write_all(&line)?;
            let s = String::from_utf8_lossy(&line);
            if s.contains("=====SEAM-INIT=====") {
                let _ = tx.send(Some(started.elapsed()));
            }
            text.push_str(&s);
        }
        let _ = tx.send(None);
        Ok(text)
    });
    let deadline = started + timeout;
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline || util::check_interrupted().is_err() {
            timed_out = Instant::now() >= deadline;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed();
    let text = reader
        .join()
        .map_err(|_| anyhow::anyhow!("console reader panicked"))?
        .with_context(|| format!("writing {}", log.display()))?;
    let boot = rx.try_iter().flatten().next();
    Ok(Console {
        text,
        wall,
        boot,
        timed_out,
    })
}

/// Boots `vmlinuz` with `initrd` under QEMU (TCG: KVM is not usable on every CI machine) and
/// returns its serial console.
pub fn qemu(
    qemu: &Path,
    vmlinuz: &Path,
    initrd: &Path,
    append: &str,
    log: &Path,
    timeout: Duration,
) -> Result<Console> {
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 panic=-1 quiet loglevel=1 {append}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("xtask: $ {}", util::display_cmd(&cmd));
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", qemu.display()))?;
    collect(child, log, timeout)
}

/// Runs the scenario natively on this machine's kernel (`cgroup2` is where it is mounted).
pub fn host(
    seam: &Path,
    cgroup2: &Path,
    work: &Path,
    runs: &str,
    log: &Path,
    timeout: Duration,
) -> Result<Console> {
    let script = work.with_extension("sh");
    fs::write(&script, super::initramfs::SCENARIO)
        .with_context(|| format!("writing {}", script.display()))?;
    let mut cmd = Command::new("sh");
    cmd.arg(&script)
        .env("SEAM", seam)
        .env("CG", cgroup2)
        .env("WORK", work)
        .env("NODE", "host")
        .env("RUNS", runs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "xtask: $ sh {} (natively, on this kernel)",
        script.display()
    );
    let child = cmd.spawn().context("could not start sh")?;
    let console = collect(child, log, timeout);
    let _ = fs::remove_file(&script);
    console
}
