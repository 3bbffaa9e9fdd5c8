//! The bench's scratch state: the cgroup2 mount (from /proc/self/mountinfo), the tenant
//! cgroups and the temp dir, all removed on drop.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// Cgroups and the temp dir of this run, removed on drop (children are stopped before, by
/// their own guards, since they are declared later).
#[derive(Default)]
pub struct Scratch {
    cgroups: Vec<PathBuf>,
    pub tmp: Option<PathBuf>,
}

impl Scratch {
    pub fn add_cgroup(&mut self, path: &Path) -> Result<()> {
        match fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => bail!(
                "could not create cgroup {}: {e} (is the cgroup2 hierarchy writable by root?)",
                path.display()
            ),
        }
        self.cgroups.push(path.to_path_buf());
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for cg in self.cgroups.iter().rev() {
            remove_cgroup(cg);
        }
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_dir_all(tmp);
        }
    }
}

fn remove_cgroup(path: &Path) {
    // A process that just exited can keep the cgroup busy for a moment.
    for attempt in 0..30 {
        match fs::remove_dir(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) if attempt < 29 => thread::sleep(Duration::from_millis(100)),
            Err(e) => eprintln!(
                "xtask: warning: could not remove cgroup {}: {e}",
                path.display()
            ),
        }
    }
}

pub fn cgroup2_mount() -> Result<PathBuf> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    parse_cgroup2_mount(&text).context(
        "no cgroup2 filesystem is mounted (see /proc/self/mountinfo); mount one, e.g. \
         `mount -t cgroup2 none /sys/fs/cgroup/unified`",
    )
}

/// The mount point of the first cgroup2 line of a mountinfo file.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(unescape_octal(
            left.split_whitespace().nth(4)?,
        )))
    })
}

/// Undoes mountinfo's `\040`-style escapes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(b) = u8::from_str_radix(oct, 8)
        {
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mount() {
        let text = "24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let text = "1 2 0:1 / /a\\040b rw shared:1 - cgroup2 none rw\n";
        assert_eq!(parse_cgroup2_mount(text), Some(PathBuf::from("/a b")));
        assert_eq!(parse_cgroup2_mount("1 2 0:1 / /x rw - tmpfs t rw\n"), None);
    }
}
