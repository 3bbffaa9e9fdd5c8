//! What `seam chaos` sets up and attempts: listeners in the target tenant's cgroup, marker
//! files in its paths (created from inside that tenant, so the setup itself is no finding), and
//! every crossing Seam claims to see, each made by a real process in the source tenant's cgroup.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::ChaosError;
use crate::model::vocab::{FileOp, Transport};

/// What an attempt should make Seam report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Expect {
    /// A violation about a connection to this port.
    Network { transport: Transport, port: u16 },
    /// A violation about this (canonical) path and operation.
    File { path: PathBuf, op: FileOp },
}

/// One crossing to attempt.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Attempt {
    /// Short id, e.g. `tcp4`, `read-symlink`.
    pub id: String,
    /// What it does, in words.
    pub how: String,
    /// The `seam chaos-actor` action and its arguments that make it.
    #[serde(skip)]
    pub action: Vec<String>,
    pub expect: Expect,
}

/// The listeners and files prepared in the target tenant.
pub(crate) struct Target {
    children: Vec<Child>,
    pub tcp4: Option<u16>,
    pub tcp6: Option<u16>,
    pub udp4: Option<u16>,
    pub udp6: Option<u16>,
}

/// A `seam chaos-actor --cgroup CGROUP --comm COMM ARGS...` child, its output discarded.
pub(crate) fn actor(cgroup: &str, comm: &str, args: &[String]) -> Result<Command, ChaosError> {
    let mut cmd = super::actor::command(cgroup, comm).map_err(|source| ChaosError::Io {
        what: "cannot find the seam binary".to_owned(),
        source,
    })?;
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    Ok(cmd)
}

/// Runs an actor to completion; an error names it.
pub(crate) fn run_actor(cgroup: &str, comm: &str, args: &[String]) -> Result<(), ChaosError> {
    let status = actor(cgroup, comm, args)?
        .status()
        .map_err(|source| ChaosError::Io {
            what: format!("cannot run {comm}"),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ChaosError::Setup(format!(
            "{comm} ({}) failed: {status}",
            args.join(" ")
        )))
    }
}

fn s(text: impl Into<String>) -> String {
    text.into()
}

impl Target {
    /// Starts the listeners in `cgroup` (each accepts what the attempts will send).
    pub(crate) fn listen(cgroup: &str, scratch: &Path) -> Result<Self, ChaosError> {
        let mut target = Self {
            children: Vec::new(),
            tcp4: None,
            tcp6: None,
            udp4: None,
            udp6: None,
        };
        let specs = [
            ("tcp-listen", "127.0.0.1:0", "1", "tcp4"),
            ("tcp-listen", "[::1]:0", "1", "tcp6"),
            ("udp-recv", "127.0.0.1:0", "2", "udp4"),
            ("udp-recv", "[::1]:0", "2", "udp6"),
        ];
        for (kind, bind, count, name) in specs {
            let port_file = scratch.join(format!("{name}.port"));
            let args = [
                s(kind),
                s("--addr"),
                s(bind),
                s("--port-file"),
                port_file.to_string_lossy().into_owned(),
                s("--count"),
                s(count),
            ];
            let child = actor(cgroup, &format!("chaos-{name}"), &args)?
                .spawn()
                .map_err(|source| ChaosError::Io {
                    what: format!("cannot start the {name} listener"),
                    source,
                })?;
            target.children.push(child);
            // IPv6 may be off on a node: that listener is then skipped, not an error.
            let port = wait_port(&port_file, target.children.last_mut());
            match name {
                "tcp4" => target.tcp4 = port,
                "tcp6" => target.tcp6 = port,
                "udp4" => target.udp4 = port,
                _ => target.udp6 = port,
            }
        }
        if target.tcp4.is_none() {
            return Err(ChaosError::Setup(
                "the target tenant's TCP listener did not start".to_owned(),
            ));
        }
        Ok(target)
    }

    /// The network attempts against these listeners.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        let mut out = Vec::new();
        let mut add = |id: &str, how: &str, action: Vec<String>, transport, port| {
            out.push(Attempt {
                id: id.to_owned(),
                how: how.to_owned(),
                action,
                expect: Expect::Network { transport, port },
            });
        };
        if let Some(p) = self.tcp4 {
            let addr = format!("127.0.0.1:{p}");
            add(
                "tcp4",
                "TCP connect over IPv4",
                vec![s("tcp-connect"), s("--addr"), addr],
                Transport::Tcp,
                p,
            );
        }
        if let Some(p) = self.tcp6 {
            let addr = format!("[::1]:{p}");
            add(
                "tcp6",
                "TCP connect over IPv6",
                vec![s("tcp-connect"), s("--addr"), addr],
                Transport::Tcp,
                p,
            );
        }
        for (id, port, host) in [
            ("udp4", self.udp4, "127.0.0.1"),
            ("udp6", self.udp6, "[::1]"),
        ] {
            let Some(p) = port else { continue };
            let addr = format!("{host}:{p}");
            add(
                &format!("{id}-unconnected"),
                "UDP sendto on an unconnected socket",
                vec![s("udp-send"), s("--addr"), addr.clone()],
                Transport::Udp,
                p,
            );
            add(
                &format!("{id}-connected"),
                "UDP connect, then send",
                vec![s("udp-send"), s("--connected"), s("--addr"), addr],
                Transport::Udp,
                p,
            );
        }
        out
    }

    /// Stops the listeners.
    pub(crate) fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

/// TCP connects to listeners the operator named (`--target`): the tenant's real services.
pub(crate) fn given(addrs: &[std::net::SocketAddr]) -> Vec<Attempt> {
    addrs
        .iter()
        .enumerate()
        .map(|(n, addr)| Attempt {
            id: format!("tcp-target-{n}"),
            how: format!("TCP connect to the target's listener {addr}"),
            action: vec![s("tcp-connect"), s("--addr"), addr.to_string()],
            expect: Expect::Network {
                transport: Transport::Tcp,
                port: addr.port(),
            },
        })
        .collect()
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_port(path: &Path, child: Option<&mut Child>) -> Option<u16> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut child = child;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(path)
            && let Ok(port) = text.trim().parse()
        {
            return Some(port);
        }
        if let Some(c) = child.as_deref_mut()
            && c.try_wait().ok().flatten().is_some()
        {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The marker files in the target tenant's path and the source tenant's side of the file
/// attempts (a symlink, a relative path, a bind mount).
pub(crate) struct Files {
    /// `<target path>/.seam-chaos-<pid>`: markers the attempts aim at.
    pub target_dir: PathBuf,
    /// `<source path>/.seam-chaos-<pid>`, when the source tenant owns a path: symlinks and
    /// relative paths start there.
    pub source_dir: Option<PathBuf>,
    /// A bind mount of `target_dir`, outside every tenant's paths.
    pub bind: Option<PathBuf>,
}

/// Names of the markers.
const READ: &str = "read-me";
const TRUNCATE: &str = "truncate-me";
const UNLINK: &str = "unlink-me";
const RENAME: &str = "rename-me";
const EXEC: &str = "run-me";

impl Files {
    /// Creates the markers from inside the tenants' own cgroups.
    pub(crate) fn prepare(
        target_cgroup: &str,
        target_path: &Path,
        source: Option<(&str, &Path)>,
        scratch: &Path,
    ) -> Result<Self, ChaosError> {
        let tag = format!(".seam-chaos-{}", std::process::id());
        let target_dir = target_path.join(&tag);
        let mut args = vec![
            s("prepare"),
            s("--dir"),
            target_dir.to_string_lossy().into_owned(),
        ];
        for name in [READ, TRUNCATE, UNLINK, RENAME] {
            args.extend([s("--file"), s(name)]);
        }
        args.extend([s("--binary"), s(EXEC)]);
        run_actor(target_cgroup, "chaos-setup", &args)?;
        let mut files = Self {
            target_dir: target_dir.clone(),
            source_dir: None,
            bind: None,
        };
        if let Some((cgroup, path)) = source {
            let dir = path.join(&tag);
            let link = target_dir.join(READ);
            let args = vec![
                s("prepare"),
                s("--dir"),
                dir.to_string_lossy().into_owned(),
                s("--symlink"),
                format!("link={}", link.display()),
            ];
            run_actor(cgroup, "chaos-setup", &args)?;
            files.source_dir = Some(dir);
        }
        let bind = scratch.join("bind");
        fs::create_dir_all(&bind).map_err(|source| ChaosError::Io {
            what: format!("cannot create {}", bind.display()),
            source,
        })?;
        match nix::mount::mount(
            Some(&target_dir),
            &bind,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Ok(()) => files.bind = Some(bind),
            Err(error) => {
                tracing::warn!(%error, "cannot bind-mount the target's directory; that attempt is skipped")
            }
        }
        Ok(files)
    }

    /// The file attempts. Every expected path is the canonical one: the kernel resolves the
    /// object whatever path the caller used.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        let read = self.marker(READ);
        let mut out = vec![file_attempt(
            "read-absolute",
            "open(O_RDONLY) by absolute path".into(),
            file_op("read", &read),
            read,
            FileOp::Read,
        )];
        out.extend(self.indirect_reads());
        out.extend(self.changes());
        out
    }

    /// The path of marker `name` in the target's directory.
    fn marker(&self, name: &str) -> PathBuf {
        self.target_dir.join(name)
    }

    /// Reads of the read marker by other paths than its own: `..` through the source's own
    /// directory, a path relative to a dirfd there, a symlink there, a bind mount.
    fn indirect_reads(&self) -> Vec<Attempt> {
        let read = self.marker(READ);
        let mut out = Vec::new();
        if let Some(dir) = &self.source_dir {
            let dotdot = dir.join(relative(dir, &read));
            out.push(file_attempt(
                "read-dotdot",
                format!("open of {}", dotdot.display()),
                file_op("read", &dotdot),
                read.clone(),
                FileOp::Read,
            ));
            let mut rel = file_op("read", &relative(dir, &read));
            rel.extend([s("--dir"), path_arg(dir)]);
            out.push(file_attempt(
                "read-relative",
                "openat(dirfd, relative path)".into(),
                rel,
                read.clone(),
                FileOp::Read,
            ));
            out.push(file_attempt(
                "read-symlink",
                "open through a symlink in the source's own path".into(),
                file_op("read", &dir.join("link")),
                read.clone(),
                FileOp::Read,
            ));
        }
        if let Some(bind) = &self.bind {
            out.push(file_attempt(
                "read-bind-mount",
                format!("open through a bind mount at {}", bind.display()),
                file_op("read", &bind.join(READ)),
                read,
                FileOp::Read,
            ));
        }
        out
    }

    /// Changes in the target's directory: create, truncate, rename, unlink, and an exec.
    fn changes(&self) -> Vec<Attempt> {
        let marker = |name: &str| self.marker(name);
        let mut rename = file_op("rename", &marker(RENAME));
        rename.extend([s("--to"), path_arg(&marker("renamed"))]);
        vec![
            file_attempt(
                "create",
                "open(O_CREAT) in the target's directory".into(),
                file_op("create", &marker("created")),
                marker("created"),
                FileOp::Create,
            ),
            file_attempt(
                "truncate",
                "truncate(2)".into(),
                file_op("truncate", &marker(TRUNCATE)),
                marker(TRUNCATE),
                FileOp::Truncate,
            ),
            file_attempt(
                "rename",
                "rename(2) within the target's directory".into(),
                rename,
                marker(RENAME),
                FileOp::Rename,
            ),
            file_attempt(
                "unlink",
                "unlink(2)".into(),
                file_op("unlink", &marker(UNLINK)),
                marker(UNLINK),
                FileOp::Delete,
            ),
            file_attempt(
                "exec",
                "execve of a program in the target's path".into(),
                vec![s("exec"), path_arg(&marker(EXEC))],
                marker(EXEC),
                FileOp::Exec,
            ),
        ]
    }

    /// Removes the markers (from inside each tenant) and the bind mount.
    pub(crate) fn remove(&mut self, target_cgroup: &str, source_cgroup: Option<&str>) {
        if let Some(bind) = self.bind.take() {
            let _ = nix::mount::umount2(&bind, nix::mount::MntFlags::MNT_DETACH);
        }
        let dir = self.target_dir.to_string_lossy().into_owned();
        if let Err(error) = run_actor(
            target_cgroup,
            "chaos-cleanup",
            &[s("remove"), s("--dir"), dir],
        ) {
            tracing::warn!(%error, dir = %self.target_dir.display(), "cannot remove the chaos markers");
        }
        if let (Some(dir), Some(cgroup)) = (self.source_dir.take(), source_cgroup) {
            let dir = dir.to_string_lossy().into_owned();
            let _ = run_actor(cgroup, "chaos-cleanup", &[s("remove"), s("--dir"), dir]);
        }
    }
}

/// A file attempt: `id`, described by `how`, made by the actor's `action`, expected to be
/// reported as `op` on `expected`.
fn file_attempt(
    id: &str,
    how: String,
    action: Vec<String>,
    expected: PathBuf,
    op: FileOp,
) -> Attempt {
    Attempt {
        id: id.to_owned(),
        how,
        action,
        expect: Expect::File { path: expected, op },
    }
}

/// The actor's `file-op --op OP --path PATH` arguments.
fn file_op(op: &str, path: &Path) -> Vec<String> {
    vec![s("file-op"), s("--op"), s(op), s("--path"), path_arg(path)]
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `to` relative to `from` (both absolute), with `..` components.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative(Path::new("/srv/a/.x"), Path::new("/srv/b/.x/read-me")),
            PathBuf::from("../../b/.x/read-me")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a/b")),
            PathBuf::from("b")
        );
    }
}
