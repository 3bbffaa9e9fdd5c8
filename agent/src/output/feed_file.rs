//! The feed file, with optional size-based rotation: `PATH` is renamed to `PATH.1` (and
//! `PATH.1` to `PATH.2`, ... up to `PATH.K`, the oldest being removed) before a record that
//! would push it past the size limit. Records are never split across files and the record that
//! triggers a rotation goes, whole, into the new file.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use super::SinkError;

/// When to rotate and how many rotated files to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rotation {
    /// Rotate before a record would make the file larger than this.
    pub max_bytes: u64,
    /// Rotated files kept: `PATH.1` (newest) to `PATH.keep` (oldest); at least 1.
    pub keep: u32,
}

/// An append-only JSON-lines file, rotated by size.
pub(crate) struct RotatingFile {
    path: PathBuf,
    rotation: Option<Rotation>,
    file: File,
    /// Bytes in the current file.
    size: u64,
}

/// Opens for appending; a new file is 0600 (the feed names tenants' processes and files).
fn append_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true).append(true).mode(0o600);
    options
}

fn open_append(path: &Path) -> Result<File, SinkError> {
    append_options()
        .open(path)
        .map_err(|source| SinkError::Open {
            path: path.to_owned(),
            source,
        })
}

/// `PATH.n`.
pub(crate) fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    /// Opens (appends to) `path`; its current size counts towards the limit.
    pub(crate) fn open(path: &Path, rotation: Option<Rotation>) -> Result<Self, SinkError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            rotation: rotation.map(|r| Rotation {
                keep: r.keep.max(1),
                ..r
            }),
            file,
            size,
        })
    }

    /// Appends `line` and a newline in one write, rotating first if the file would grow past
    /// the limit (a record larger than the limit gets a file of its own).
    pub(crate) fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if let Some(rotation) = self.rotation
            && self.size > 0
            && self.size + len > rotation.max_bytes
            && let Err(error) = self.rotate(rotation.keep)
        {
            // Keep appending to the current file rather than lose the record.
            tracing::error!(
                path = %self.path.display(),
                %error,
                "cannot rotate the feed file; appending past its size limit (check the \
                 directory is writable and has space)"
            );
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.file.flush()?;
        self.size += len;
        Ok(())
    }

    /// Shifts `PATH.i` to `PATH.i+1` (dropping `PATH.keep`), renames `PATH` to `PATH.1` and opens
    /// a fresh `PATH`.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        self.file.flush()?;
        match fs::remove_file(rotated_path(&self.path, keep)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        for n in (1..keep).rev() {
            match fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        fs::rename(&self.path, rotated_path(&self.path, 1))?;
        // If reopening fails, the old handle (now PATH.1) keeps receiving records: none is lost.
        self.file = append_options().open(&self.path)?;
        self.size = 0;
        tracing::info!(path = %self.path.display(), keep, "feed file rotated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn record(n: usize) -> String {
        format!("{{\"n\":{n:04}}}") // 10 bytes + newline
    }

    #[test]
    fn without_rotation_appends_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let mut file = RotatingFile::open(&path, None).unwrap();
        for n in 0..100 {
            file.write_line(&record(n)).unwrap();
        }
        assert_eq!(lines(&path).len(), 100);
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn rotates_by_size_numbers_files_and_keeps_k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        // 11 bytes per line, 35 bytes max: 3 lines per file.
        let rotation = Rotation {
            max_bytes: 35,
            keep: 2,
        };
        let mut file = RotatingFile::open(&path, Some(rotation)).unwrap();
        for n in 0..10 {
            file.write_line(&record(n)).unwrap();
        }
        // 10 lines: [0,1,2] [3,4,5] [6,7,8] [9]; keep 2 -> PATH.2=[3,4,5], PATH.1=[6,7,8].
        assert_eq!(lines(&path), vec![record(9)]);
        assert_eq!(
            lines(&rotated_path(&path, 1)),
            vec![record(6), record(7), record(8)]
        );
        assert_eq!(
            lines(&rotated_path(&path, 2)),
            vec![record(3), record(4), record(5)]
        );
        assert!(
            !rotated_path(&path, 3).exists(),
            "only keep=2 rotated files"
        );
        for p in [path.clone(), rotated_path(&path, 1), rotated_path(&path, 2)] {
            let meta = fs::metadata(&p).unwrap();
            assert!(meta.len() <= 35, "{}", p.display());
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn no_record_is_lost_or_split_while_within_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let rotation = Rotation {
            max_bytes: 100,
            keep: 50,
        };
        let mut file = RotatingFile::open(&path, Some(rotation)).unwrap();
        // Lines of varying length, some longer than the limit.
        let written: Vec<String> = (0..200)
            .map(|n| format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(n % 130)))
            .collect();
        for line in &written {
            file.write_line(line).unwrap();
        }
        let mut read = Vec::new();
        for n in (1..=50).rev() {
            read.extend(lines(&rotated_path(&path, n)));
        }
        read.extend(lines(&path));
        // Everything still kept is whole, in order, and a suffix of what was written.
        assert!(!read.is_empty());
        let start = written.len() - read.len();
        assert_eq!(read, written[start..], "records in order, none split");
        for line in &read {
            serde_json::from_str::<serde_json::Value>(line).expect("whole JSON line");
        }
        // With enough files kept, nothing is lost at all.
        assert!(rotated_path(&path, 50).exists() || start == 0);
    }

    #[test]
    fn nothing_lost_when_keep_covers_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let rotation = Rotation {
            max_bytes: 40,
            keep: 100,
        };
        let mut file = RotatingFile::open(&path, Some(rotation)).unwrap();
        for n in 0..90 {
            file.write_line(&record(n)).unwrap();
        }
        let mut read = Vec::new();
        for n in (1..=100).rev() {
            read.extend(lines(&rotated_path(&path, n)));
        }
        read.extend(lines(&path));
        assert_eq!(read, (0..90).map(record).collect::<Vec<_>>());
    }

    #[test]
    fn existing_file_size_counts_and_oversized_record_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        fs::write(&path, "{\"old\":true}\n").unwrap(); // 13 bytes
        let rotation = Rotation {
            max_bytes: 20,
            keep: 3,
        };
        let mut file = RotatingFile::open(&path, Some(rotation)).unwrap();
        let big = format!("{{\"big\":\"{}\"}}", "y".repeat(50));
        file.write_line(&big).unwrap();
        file.write_line(&record(1)).unwrap();
        assert_eq!(lines(&rotated_path(&path, 2)), vec!["{\"old\":true}"]);
        assert_eq!(lines(&rotated_path(&path, 1)), vec![big]);
        assert_eq!(lines(&path), vec![record(1)]);
    }
}
