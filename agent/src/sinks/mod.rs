//! Sinks: where feed records go (last stage). JSON lines on stdout and, optionally, a file.
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

/// Why a sink could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The feed file could not be opened for appending.
    #[error("cannot open feed file {path}: {source}; check the directory exists and is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes every record as one JSON line to stdout and to the feed file, flushing per record so
/// readers (tests, log shippers) see it at once.
pub struct JsonLinesSink {
    stdout: bool,
    file: Option<BufWriter<File>>,
    /// Records that could not be written (reported in stats, never silently dropped).
    pub write_errors: u64,
}

impl JsonLinesSink {
    pub fn new(stdout: bool, feed_file: Option<&Path>) -> Result<Self, SinkError> {
        let file = feed_file
            .map(|path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(BufWriter::new)
                    .map_err(|source| SinkError::Open {
                        path: path.to_owned(),
                        source,
                    })
            })
            .transpose()?;
        Ok(Self {
            stdout,
            file,
            write_errors: 0,
        })
    }

    pub fn emit<T: Serialize>(&mut self, record: &T) {
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(error) => {
                self.write_errors += 1;
                tracing::error!(%error, "cannot serialize a feed record");
                return;
            }
        };
        if self.stdout {
            let mut out = io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                self.write_errors += 1;
            }
        }
        if let Some(file) = &mut self.file
            && writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .is_err()
        {
            self.write_errors += 1;
            tracing::error!("cannot write to the feed file");
        }
    }
}
