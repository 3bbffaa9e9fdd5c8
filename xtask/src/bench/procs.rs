//! Background children of the bench (the agent, bpftrace): spawned with their output in the
//! bench's temp dir, stopped with SIGINT (then SIGKILL) explicitly or on drop.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{PEER_PROGRAM, READY_TIMEOUT, STOP_TIMEOUT};
use crate::util;

/// A background child (the agent or bpftrace), stopped with SIGINT (then SIGKILL) on drop.
pub struct Proc {
    child: Option<Child>,
    pub stderr_path: PathBuf,
    what: &'static str,
}

impl Proc {
    /// Starts `cmd`; stderr goes to `<tmp>/<what>.stderr`, stdout to `<tmp>/<what>.stdout`
    /// unless `piped_stdout`.
    pub fn spawn(
        mut cmd: Command,
        what: &'static str,
        tmp: &Path,
        piped_stdout: bool,
    ) -> Result<Self> {
        let file = |ext: &str| {
            let path = tmp.join(format!("{what}.{ext}"));
            fs::File::create(&path)
                .map(|f| (path.clone(), f))
                .with_context(|| format!("creating {}", path.display()))
        };
        let (stderr_path, stderr) = file("stderr")?;
        cmd.stdin(Stdio::null()).stderr(stderr);
        if piped_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(file("stdout")?.1);
        }
        eprintln!("xtask: $ {} &", util::display_cmd(&cmd));
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", util::display_cmd(&cmd)))?;
        Ok(Self {
            child: Some(child),
            stderr_path,
            what,
        })
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .with_context(|| format!("checking on the {}", self.what)),
            None => bail!("the {} was already stopped", self.what),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stderr(&self) -> String {
        tail(&self.stderr_path)
    }

    /// SIGINT, wait up to `timeout`, then SIGKILL. None if the status could not be collected.
    pub fn stop(mut self, timeout: Duration) -> Option<ExitStatus> {
        stop_child(self.child.take()?, self.what, timeout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = stop_child(child, self.what, Duration::from_secs(5));
        }
    }
}

fn stop_child(mut child: Child, what: &str, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    util::send_signal(child.id(), util::SIGINT);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    eprintln!("xtask: the {what} ignored SIGINT for {timeout:?}; killing it");
    util::send_signal(child.id(), util::SIGKILL);
    child.wait().ok()
}

/// The bpftrace peer: stdout lines arrive on a channel so readiness can be awaited.
pub struct PeerRun {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    reader: thread::JoinHandle<()>,
}

impl PeerRun {
    pub fn start(tool: &Path, tmp: &Path) -> Result<Self> {
        let mut cmd = Command::new(tool);
        cmd.args(["-B", "line", "-e", PEER_PROGRAM]);
        let mut proc = Proc::spawn(cmd, "bpftrace", tmp, true)?;
        let stdout = proc
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .context("bpftrace has no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // bpftrace prints "Attaching N probes..." (stdout, older) or "Attached ..." (stderr,
        // newer) around attaching; wait for either, then a little more.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("ttach") => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = proc.try_wait();
                    bail!(
                        "bpftrace exited before attaching; its stderr:\n{}",
                        proc.stderr()
                    );
                }
            }
            if proc.stderr().contains("ttach") {
                break;
            }
            if let Some(status) = proc.try_wait()? {
                bail!("bpftrace exited ({status}); its stderr:\n{}", proc.stderr());
            }
            util::check_interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "bpftrace did not attach within {} s; its stderr:\n{}",
                    READY_TIMEOUT.as_secs(),
                    proc.stderr()
                );
            }
        }
        thread::sleep(Duration::from_secs(1));
        Ok(Self {
            proc,
            lines,
            reader,
        })
    }

    /// SIGINTs bpftrace and returns what it printed (its maps) after attaching.
    pub fn stop(self) -> Result<String> {
        let Self {
            proc,
            lines,
            reader,
        } = self;
        let stderr_path = proc.stderr_path.clone();
        let status = proc.stop(STOP_TIMEOUT);
        let _ = reader.join();
        let out: Vec<String> = lines.try_iter().filter(|l| !l.trim().is_empty()).collect();
        match status {
            Some(s) if s.success() => Ok(out.join("\n")),
            other => bail!(
                "bpftrace exited with {other:?}; its stderr:\n{}",
                tail(&stderr_path)
            ),
        }
    }
}

pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
