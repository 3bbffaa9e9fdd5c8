//! Fixtures for the sealed-history tests: a store with its master key ([`crate::store::Fixture`])
//! and rules directories beside it, `seam run --store` arguments, and `seam replay | report |
//! validate` run against it; a headless Chromium screenshot check for the HTML report.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::store::{Fixture, text};

/// A store and rules directories for one test.
pub struct History {
    pub fixture: Fixture,
}

impl History {
    pub fn new() -> Self {
        Self {
            fixture: Fixture::new(),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.fixture.store()
    }

    /// `seam run` arguments that keep history in this store.
    pub fn run_args(&self) -> Vec<String> {
        vec![
            "--store".into(),
            self.store().display().to_string(),
            "--master-key-file".into(),
            self.fixture.master().display().to_string(),
            "--store-fsync".into(),
            "never".into(),
            "--aggregate-window".into(),
            "0".into(),
        ]
    }

    /// Writes `rules` (TOML) to a rules directory named `name`; returns it.
    pub fn rules_dir(&self, name: &str, rules: &str) -> PathBuf {
        let dir = self.fixture.dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("rules.toml"), rules).unwrap();
        dir
    }

    /// `seam <command> --store S --master-key-file K --rules R ARGS`.
    pub fn read_cmd(&self, command: &str, rules: &Path, args: &[&str]) -> Output {
        self.fixture
            .cmd()
            .arg(command)
            .arg("--store")
            .arg(self.store())
            .arg("--master-key-file")
            .arg(self.fixture.master())
            .arg("--rules")
            .arg(rules)
            .args(args)
            .output()
            .unwrap()
    }

    /// `seam replay` (must succeed): the breach scope.
    pub fn replay(&self, rules: &Path, args: &[&str]) -> Value {
        let out = self.read_cmd("replay", rules, args);
        assert!(out.status.success(), "replay: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// Headless Chromium (`SEAM_CHROMIUM`, else `chromium` on PATH; `cargo xtask test` installs
/// Debian's package).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("SEAM_CHROMIUM") {
        return PathBuf::from(path);
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join("chromium");
        if path.exists() {
            return path;
        }
    }
    panic!("chromium not found: `cargo xtask test` installs Debian's chromium package")
}

/// Opens `page` in headless Chromium (offline, fresh profile) and returns its screenshot.
pub fn screenshot(page: &Path, out_dir: &Path) -> PathBuf {
    let shot = out_dir.join("report.png");
    let profile = out_dir.join("chromium-profile");
    let out: Output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--window-size=1200,1600",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && shot.exists(),
        "chromium: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    shot
}

/// Decodes a PNG; returns (width, height, distinct colours seen).
pub fn png_colours(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let pixel = info.color_type.samples() * usize::from(info.bit_depth as u8).div_ceil(8);
    let colours: std::collections::HashSet<&[u8]> = bytes.chunks(pixel.max(1)).collect();
    (info.width, info.height, colours.len())
}
