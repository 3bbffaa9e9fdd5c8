//! The guests' initramfs: busybox, the `seam` binary with the libraries `ldd` lists, the scenario
//! and an `/init` that mounts what Seam needs and runs it. Written as a newc cpio archive here,
//! so no cpio tool is needed.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The scenario, shared by the guests and the host run.
pub const SCENARIO: &str = include_str!("scenario.sh");

/// A newc ("070701") cpio archive being built in memory.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, &[], (0, 0));
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, S_IFREG | mode, data, (0, 0));
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

/// The shared libraries `ldd` lists for `binary` (absolute paths).
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let text = util::output(
        Command::new("ldd").arg(binary),
        "ldd (libc-bin) lists the libraries the guest needs",
    )?;
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    if libs.is_empty() {
        bail!("ldd listed no libraries for {}", binary.display());
    }
    Ok(libs)
}

/// The guest's `/init`: mounts, loopback, then the scenario; powers off whatever happens.
fn init_script(node: &str, runs: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t securityfs securityfs /sys/kernel/security
mount -t tracefs tracefs /sys/kernel/tracing
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "=====SEAM-INIT====="
SEAM=/bin/seam CG=/sys/fs/cgroup WORK=/tmp/seam-kt NODE={node} RUNS='{runs}' sh /scenario.sh
echo "=====SEAM-DONE====="
poweroff -f
"#
    )
}

/// Writes the initramfs for one guest to `dest`.
pub fn build(seam: &Path, busybox: &Path, node: &str, runs: &str, dest: &Path) -> Result<()> {
    let mut cpio = Cpio::new();
    for dir in [
        "bin", "dev", "proc", "sys", "tmp", "lib", "lib64", "usr", "usr/lib",
    ] {
        cpio.dir(dir);
    }
    cpio.entry("dev/console", S_IFCHR | 0o600, &[], (5, 1));
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    cpio.file("bin/busybox", 0o755, &read(busybox)?);
    cpio.file("bin/seam", 0o755, &read(seam)?);
    cpio.file("init", 0o755, init_script(node, runs).as_bytes());
    cpio.file("scenario.sh", 0o644, SCENARIO.as_bytes());
    let mut dirs_done = vec!["lib".to_owned(), "lib64".to_owned(), "usr/lib".to_owned()];
    for lib in libraries(seam)? {
        let name = lib.to_string_lossy().trim_start_matches('/').to_owned();
        // Parent directories first, e.g. lib/x86_64-linux-gnu.
        let parents: Vec<String> = Path::new(&name)
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        for dir in parents.into_iter().rev() {
            if !dirs_done.contains(&dir) {
                cpio.dir(&dir);
                dirs_done.push(dir);
            }
        }
        cpio.file(&name, 0o755, &read(&lib)?);
    }
    fs::write(dest, cpio.finish()).with_context(|| format!("writing {}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_terminated() {
        let mut cpio = Cpio::new();
        cpio.dir("bin");
        cpio.file("init", 0o755, b"#!/bin/sh\n");
        let bytes = cpio.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        // The file's size field (7th) is 10 bytes.
        let second = text.find("init").unwrap();
        let header = &text[second - 110..second];
        assert_eq!(&header[54..62], "0000000a");
    }
}
