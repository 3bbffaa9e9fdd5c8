//! A real Docker for the container tests: Debian's `docker.io`, installed and started here when
//! missing, and an image built without pulling anything: `docker import` of a root file
//! system holding busybox (static) and the `seam` binary with its shared libraries.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::seam_bin;

/// Debian's docker CLI (not another one earlier on PATH).
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
/// The Engine API socket.
pub const SOCKET: &str = "/var/run/docker.sock";

/// A daemon that answers, and the image.
pub struct Docker {
    pub image: String,
}

fn docker_answers() -> bool {
    Command::new(DOCKER)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn install() -> Result<(), String> {
    if Path::new(DOCKERD).exists() && Path::new(DOCKER).exists() {
        return Ok(());
    }
    eprintln!("installing Debian's docker.io for the container tests");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("apt-get: {e}"))
            .and_then(|s| {
                s.success()
                    .then_some(())
                    .ok_or(format!("apt-get {args:?}: {s}"))
            })
    };
    apt(&["update", "-q"])?;
    apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "docker.io",
    ])
}

fn start_daemon() -> Result<(), String> {
    if docker_answers() {
        return Ok(());
    }
    let log = fs::File::create("/tmp/seam-it-dockerd.log").map_err(|e| e.to_string())?;
    Command::new(DOCKERD)
        .args(["--host", &format!("unix://{SOCKET}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start dockerd: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = fs::read_to_string("/tmp/seam-it-dockerd.log").unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    Err(format!(
        "dockerd did not answer within 60 s; its log ends:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// `ldd`'s libraries of `binary` (absolute paths).
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn copy_into(root: &Path, file: &Path) {
    let dest = root.join(file.strip_prefix("/").unwrap());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
}

/// The root file system of the test image: what the Dockerfile's runtime stage holds (seam in
/// /usr/local/bin, the shipped rules), from files on this machine, plus busybox.
fn build_image() -> Result<String, String> {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = root.path();
    let seam = seam_bin();
    copy_into(root, Path::new("/bin/busybox"));
    let bin = root.join("bin");
    for applet in ["sh", "sleep", "cat", "ls", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    let dest = root.join("usr/local/bin/seam");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(&seam, &dest).map_err(|e| e.to_string())?;
    for lib in shared_libraries(&seam) {
        copy_into(root, &lib);
    }
    for dir in ["tmp", "proc", "sys", "dev", "etc/seam", "out"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    // Tag by the binary's size and mtime: a rebuilt seam gets a new image.
    let meta = fs::metadata(&seam).map_err(|e| e.to_string())?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let image = format!("seam-it:{}-{mtime}", meta.len());
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let imported = Command::new(DOCKER)
        .args(["import", "-", &image])
        .stdin(tar.stdout.unwrap())
        .output()
        .map_err(|e| e.to_string())?;
    if !imported.status.success() {
        return Err(format!(
            "docker import failed: {}",
            String::from_utf8_lossy(&imported.stderr)
        ));
    }
    Ok(image)
}

impl Docker {
    /// Docker with the test image, or why there is none (printed: the caller skips).
    pub fn get() -> Option<&'static Docker> {
        static DOCKER_READY: OnceLock<Result<Docker, String>> = OnceLock::new();
        let ready = DOCKER_READY.get_or_init(|| {
            install()?;
            start_daemon()?;
            Ok(Docker {
                image: build_image()?,
            })
        });
        match ready {
            Ok(docker) => Some(docker),
            Err(why) => {
                eprintln!("SKIPPED: no Docker daemon for the container tests: {why}");
                None
            }
        }
    }

    /// Runs `docker ARGS`, panicking with its output on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker ARGS`' output, whatever its status.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
    }
}

/// A container removed (forcibly) on drop.
pub struct Container {
    pub id: String,
}

impl Container {
    /// `docker run -d ARGS`.
    pub fn run(docker: &Docker, args: &[&str]) -> Self {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        Self {
            id: docker.run(&all),
        }
    }

    /// Its cgroup, relative to the cgroup2 mount (`docker/<id>` with the cgroupfs driver).
    pub fn cgroup(&self, docker: &Docker) -> String {
        let pid = docker.run(&["inspect", "-f", "{{.State.Pid}}", &self.id]);
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .trim_start_matches('/')
            .to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(DOCKER)
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
