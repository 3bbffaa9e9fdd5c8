//! Fixtures for the sealed-store tests: a store with its keys in a temp dir, driven through the
//! real `seam keys` CLI and `seam workload store-append | store-read`; an appender whose JSON
//! progress is read as it comes; a small tmpfs to fill up.
use std::{
    ffi::CString,
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Instant,
};

use serde_json::Value;

use crate::{WAIT, seam_bin};

/// A store directory and master key file in a temp dir, removed on drop.
pub struct Fixture {
    pub dir: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "seam-store-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fixture = Self { dir };
        let out = fixture.keys(&["init"]);
        assert!(out.status.success(), "init: {}", text(&out.stderr));
        fixture
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    pub fn master(&self) -> PathBuf {
        self.dir.join("master.key")
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(seam_bin());
        cmd.env("SEAM_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("SEAM_MASTER_KEY");
        cmd
    }

    /// `seam keys --store <store> --master-key-file <key> ARGS`.
    pub fn keys(&self, args: &[&str]) -> Output {
        self.cmd()
            .arg("keys")
            .arg("--store")
            .arg(self.store())
            .arg("--master-key-file")
            .arg(self.master())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn keys_ok(&self, args: &[&str]) -> String {
        let out = self.keys(args);
        assert!(out.status.success(), "keys {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    pub fn workload(&self, kind: &str) -> Command {
        let mut cmd = self.cmd();
        cmd.args(["workload", kind, "--store"])
            .arg(self.store())
            .arg("--master-key-file")
            .arg(self.master());
        cmd
    }

    pub fn append(&self, tenants: &str, count: u64) -> Value {
        let out = self
            .workload("store-append")
            .args([
                "--tenants",
                tenants,
                "--count",
                &count.to_string(),
                "--progress-every",
                "0",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "append: {}", text(&out.stderr));
        last_json(&out.stdout)
    }

    /// Every record (scope, data) and the read report.
    pub fn read(&self) -> (Vec<(String, String)>, Value) {
        let out = self
            .workload("store-read")
            .arg("--records")
            .output()
            .unwrap();
        assert!(out.status.success(), "read: {}", text(&out.stderr));
        let mut records = Vec::new();
        let mut report = Value::Null;
        for line in text(&out.stdout).lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            if let Some(r) = value.get("record") {
                let scope = r["scope"]["name"].as_str().unwrap_or("node").to_owned();
                records.push((scope, r["data"].as_str().unwrap().to_owned()));
            } else {
                report = value["report"].clone();
            }
        }
        (records, report)
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn last_json(stdout: &[u8]) -> Value {
    let text = text(stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).unwrap()
}

pub fn issues(report: &Value, kind: &str) -> Vec<Value> {
    report["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .cloned()
        .collect()
}

/// The record index in "t-<tenant>:<index>:...".
pub fn index(data: &str) -> u64 {
    data.split(':').nth(1).unwrap().parse().unwrap()
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A running `store-append` whose JSON lines are read as they come.
pub struct Appender {
    pub child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Appender {
    pub fn start(f: &Fixture, args: &[&str]) -> Self {
        let mut child = f
            .workload("store-append")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// Reads progress lines until `done` holds for one; returns it.
    pub fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT * 2;
        while Instant::now() < deadline {
            let line = self
                .lines
                .next()
                .unwrap_or_else(|| panic!("appender ended before {what}"))
                .unwrap();
            let value: Value = serde_json::from_str(&line).unwrap();
            if done(&value) {
                return value;
            }
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs mounted for one test, unmounted on drop whatever happens.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let c = |s: &str| CString::new(s).unwrap();
        let target = c(dir.to_str().unwrap());
        let options = c(&format!("size={size},mode=0700"));
        // SAFETY: valid NUL-terminated strings; mount(2) has no memory preconditions.
        let rc = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: as above.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_dir(&self.0);
    }
}

/// Fills the file system of `path` until ENOSPC.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
}
