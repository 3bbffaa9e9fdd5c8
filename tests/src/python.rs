//! The Python test clients (tests/py): a real OTLP decoder and a real OpenTelemetry SDK app.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::WAIT;

/// The venv's python (`cargo xtask test` sets `SEAM_PYTHON`).
pub fn python() -> PathBuf {
    let path = std::env::var_os("SEAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python"));
    assert!(
        path.exists(),
        "python with the test clients not found at {}; run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// A script of tests/py.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// tests/py/otlp_receiver.py, running: what it decoded is in `out`.
pub struct OtlpReceiver {
    child: Child,
    pub port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl OtlpReceiver {
    /// Starts the receiver for `protocol` (`http` or `grpc`), refusing the first `fail_first`
    /// requests with 503 / UNAVAILABLE.
    pub fn start(protocol: &str, fail_first: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port_file = dir.path().join("port");
        let out = dir.path().join("requests.jsonl");
        let child = Command::new(python())
            .arg(script("otlp_receiver.py"))
            .args([
                "--protocol",
                protocol,
                "--fail-first",
                &fail_first.to_string(),
            ])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start otlp_receiver.py");
        let deadline = Instant::now() + WAIT;
        let port = loop {
            if let Ok(text) = fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                break port;
            }
            assert!(Instant::now() < deadline, "otlp_receiver.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    /// Every request decoded so far: `{"signal": "traces"|"logs", "request": {...}}`.
    pub fn requests(&self) -> Vec<Value> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver writes JSON"))
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
