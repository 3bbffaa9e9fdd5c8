//! Shared helpers for the xtask commands: workspace paths, the root check, running external
//! commands with clear error messages, the toolchain env file, tracefs, and a few libc calls
//! (declared here so xtask needs no extra dependencies).

use std::{
    env,
    ffi::OsString,
    fs,
    io::{self, BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;

unsafe extern "C" {
    safe fn geteuid() -> u32;
    safe fn kill(pid: i32, sig: i32) -> i32;
    fn signal(signum: i32, handler: usize) -> usize;
}

/// The workspace root (the parent of xtask/).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (made absolute) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir))
        }
        _ => workspace_root().join("target"),
    }
}

/// Exits with status 2 and a clear message unless running as root.
pub fn require_root() {
    if geteuid() != 0 {
        eprintln!(
            "xtask: error: this command needs root (it loads eBPF programs, mounts tracefs, \
             creates cgroups and installs packages).\n       Run it as root: sudo -E cargo xtask {}",
            env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        std::process::exit(2);
    }
}

/// Sends `sig` to `pid`; errors are ignored (the process may already be gone).
pub fn send_signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(pid, sig);
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT in xtask (children get the default action back on exec), so Ctrl-C stops the
/// children and lets xtask clean up instead of dying mid-way.
pub fn catch_sigint() {
    let handler: extern "C" fn(i32) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGINT, handler as usize);
    }
}

/// Fails if SIGINT arrived since `catch_sigint`.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted (Ctrl-C)");
    }
    Ok(())
}

/// `$CARGO_HOME/bin` (default `~/.cargo/bin`), where `cargo install` puts bpf-linker.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// `$PATH` with the cargo bin dir in front (if it is not on it already).
pub fn path_with_cargo_bin() -> OsString {
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
    if let Some(bin) = cargo_bin_dir()
        && !dirs.contains(&bin)
    {
        dirs.insert(0, bin);
    }
    env::join_paths(dirs).unwrap_or(path)
}

/// Finds `program` on `$PATH` plus the cargo bin dir.
pub fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&path_with_cargo_bin())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A `cargo` command (the cargo running xtask), in the workspace root, with the cargo bin dir on
/// `$PATH` and an absolute `$CARGO_TARGET_DIR` if one is set.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root())
        .env("PATH", path_with_cargo_bin());
    if env::var_os("CARGO_TARGET_DIR").is_some() {
        cmd.env("CARGO_TARGET_DIR", target_dir());
    }
    cmd
}

/// `program args...` as a shell-like string for messages.
pub fn display_cmd(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn spawn_error(cmd: &Command, err: &io::Error, hint: &str) -> anyhow::Error {
    anyhow!("could not start `{}`: {err}. {hint}", display_cmd(cmd))
}

fn status_error(cmd: &Command, status: ExitStatus, hint: &str) -> anyhow::Error {
    anyhow!("`{}` failed ({status}). {hint}", display_cmd(cmd))
}

/// Runs `cmd` with inherited stdio (echoing it first); fails with `hint` on a non-zero exit.
pub fn run(cmd: &mut Command, hint: &str) -> Result<()> {
    eprintln!("xtask: $ {}", display_cmd(cmd));
    let status = cmd.status().map_err(|e| spawn_error(cmd, &e, hint))?;
    if !status.success() {
        return Err(status_error(cmd, status, hint));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its output (whatever the exit status), or None if it could
/// not be started.
pub fn probe(cmd: &mut Command) -> Option<Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

/// Runs `cmd` quietly; returns its trimmed stdout when it exits 0.
pub fn probe_stdout(cmd: &mut Command) -> Option<String> {
    let out = probe(cmd)?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `cmd` capturing stdout and stderr; fails (showing stderr) on a non-zero exit.
pub fn output(cmd: &mut Command, hint: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, &e, hint))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(anyhow!(
            "`{}` failed ({}). {hint}\n--- its stderr ---\n{}",
            display_cmd(cmd),
            out.status,
            stderr.trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The toolchain settings `cargo xtask setup` records in `target/seam-toolchain.env`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolEnv {
    pub vars: Vec<(String, String)>,
}

impl ToolEnv {
    pub fn path() -> PathBuf {
        target_dir().join("seam-toolchain.env")
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses `KEY=VALUE` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Self {
        let vars = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Self { vars }
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Written by `cargo xtask setup`; applied by `cargo xtask build/demo/test/bench`\n\
             # as environment variables when they run cargo.\n",
        );
        for (k, v) in &self.vars {
            s.push_str(&format!("{k}={v}\n"));
        }
        s
    }

    /// Reads the env file; None if it does not exist.
    pub fn load() -> Result<Option<Self>> {
        let path = Self::path();
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Self::parse(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the env file unless it already has this content.
    pub fn store(&self) -> Result<()> {
        let path = Self::path();
        let text = self.render();
        if fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
        Ok(())
    }

    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }
}

/// How long output may still arrive once the command exited (its last lines in the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `cmd` with its stdout and stderr merged into one pipe (so the two stay in order) and
/// hands every line to `on_line`; returns its exit status. Ends when the command exits, even
/// if something it started still holds the pipe open (a test process left running would
/// otherwise keep xtask waiting forever): that is said, not waited for.
pub fn tee_lines(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
    let (reader, writer) = io::pipe().context("creating a pipe for the command's output")?;
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(writer.try_clone().context("duplicating the pipe")?)
        .stderr(writer)
        .spawn();
    // Drop the Command's copies of the pipe's write end, or the reader never sees its end.
    cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let mut child = spawned.with_context(|| format!("could not start `{}`", display_cmd(cmd)))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if tx.send(line).is_err() => break,
                Ok(_) => {}
            }
        }
    });
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => on_line(&String::from_utf8_lossy(&line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exited.is_none()
            && let Some(status) = child.try_wait().context("waiting for the command")?
        {
            exited = Some((status, Instant::now()));
        }
        if let Some((_, at)) = exited
            && at.elapsed() > DRAIN_GRACE
        {
            eprintln!(
                "xtask: WARNING: `{}` exited, but processes it started still hold its output \
                 open (left running by a test?); not waiting for them",
                display_cmd(cmd)
            );
            break;
        }
    }
    match exited {
        Some((status, _)) => Ok(status),
        None => child.wait().context("waiting for the command"),
    }
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at /sys/kernel/tracing unless its `events` directory is already there.
pub fn ensure_tracefs() -> Result<()> {
    let events = Path::new(TRACEFS).join("events");
    if events.is_dir() {
        return Ok(());
    }
    run(
        Command::new("mount").args(["-t", "tracefs", "tracefs", TRACEFS]),
        "Tracepoints need tracefs: check that the kernel has CONFIG_TRACING and that \
         /sys/kernel/tracing exists, then mount it by hand.",
    )?;
    if !events.is_dir() {
        bail!(
            "mounted tracefs at {TRACEFS} but {} is missing; is tracing enabled in this kernel?",
            events.display()
        );
    }
    Ok(())
}

/// Escapes `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_env_round_trips() {
        let env = ToolEnv {
            vars: vec![
                ("SEAM_BPF_TOOLCHAIN".into(), "debian-bpf".into()),
                ("RUSTC_BOOTSTRAP".into(), "1".into()),
            ],
        };
        assert_eq!(ToolEnv::parse(&env.render()), env);
        assert_eq!(env.get("RUSTC_BOOTSTRAP"), Some("1"));
    }

    #[test]
    fn tee_lines_ends_when_the_command_exits_though_its_child_holds_the_pipe() {
        let started = Instant::now();
        let mut lines = Vec::new();
        let status = tee_lines(
            Command::new("sh").args(["-c", "echo one; echo two >&2; sleep 30 & exit 3"]),
            |l| lines.push(l.trim().to_owned()),
        )
        .unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(lines, ["one", "two"]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the sleep"
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
