//! What became of each test binary in a `cargo test --no-fail-fast` run, read from cargo's and
//! libtest's merged output: its `test result:` line, or that it aborted (no result line, e.g.
//! a crash or a signal) or never built. An aborted or unbuilt binary counts as one failed test,
//! never as silently zero.

/// Passed and failed tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// How a test binary ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Still running (no result line yet).
    Running,
    /// Its `test result:` line says every test passed.
    Passed,
    /// Its `test result:` line counts failed tests.
    Failed,
    /// It ended without a `test result:` line; the text says how, where cargo said.
    Aborted(String),
    /// It did not compile (cargo's `could not compile` line).
    NotBuilt(String),
}

/// One test binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub name: String,
    pub tally: Tally,
    pub fate: Fate,
}

impl Binary {
    /// Its tests, plus one failed test when it aborted or did not build.
    pub fn counted(&self) -> Tally {
        let mut tally = self.tally;
        if matches!(self.fate, Fate::Aborted(_) | Fate::NotBuilt(_)) {
            tally.failed += 1;
        }
        tally
    }
}

/// Every binary of one `cargo test` run, in the order they ran.
#[derive(Debug, Default)]
pub struct Run {
    pub binaries: Vec<Binary>,
    current: Option<usize>,
}

impl Run {
    /// Takes one line of the merged output.
    pub fn line(&mut self, raw: &str) {
        let plain = strip_ansi(raw);
        let line = plain.trim();
        if let Some(rest) = line.strip_prefix("Running ") {
            self.start(binary_name(rest));
        } else if let Some(krate) = line.strip_prefix("Doc-tests ") {
            self.start(format!("doc-tests {krate}"));
        } else if let Some(tally) = parse_result_line(line) {
            if let Some(b) = self.current.and_then(|i| self.binaries.get_mut(i)) {
                b.tally = tally;
                b.fate = if tally.failed > 0 || line.contains("FAILED") {
                    Fate::Failed
                } else {
                    Fate::Passed
                };
            }
        } else if let Some(rest) = line.strip_prefix("process didn't exit successfully:") {
            if let Some(b) = self.current.and_then(|i| self.binaries.get_mut(i))
                && b.fate == Fate::Running
            {
                // "`/path/to/bin --args` (signal: 6, SIGABRT: process abort signal)"
                let how = rest.rsplit_once('`').map_or(rest, |(_, how)| how).trim();
                b.fate = Fate::Aborted(how.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("error: could not compile ") {
            let what = rest.split(" due to").next().unwrap_or(rest);
            self.binaries.push(Binary {
                name: what.replace('`', ""),
                tally: Tally::default(),
                fate: Fate::NotBuilt(line.to_owned()),
            });
            self.current = None;
        }
    }

    fn start(&mut self, name: String) {
        self.binaries.push(Binary {
            name,
            tally: Tally::default(),
            fate: Fate::Running,
        });
        self.current = Some(self.binaries.len() - 1);
    }

    /// Closes the run once cargo exited: a binary without a result line aborted; a failed
    /// cargo that named no failing binary counts as one failure of its own.
    pub fn finish(&mut self, cargo_ok: bool, cargo_status: &str) {
        for b in &mut self.binaries {
            if b.fate == Fate::Running {
                b.fate = Fate::Aborted("ended without a `test result:` line".into());
            }
        }
        let blamed = self.binaries.iter().any(|b| b.fate != Fate::Passed);
        if !cargo_ok && !blamed {
            self.binaries.push(Binary {
                name: "cargo test".into(),
                tally: Tally::default(),
                fate: Fate::Aborted(format!(
                    "cargo exited ({cargo_status}) without a failing test binary; see its \
                     errors above"
                )),
            });
        }
        self.current = None;
    }

    /// Every binary's counted tests.
    pub fn tally(&self) -> Tally {
        let mut total = Tally::default();
        for b in &self.binaries {
            total.add(b.counted());
        }
        total
    }
}

/// `unittests src/main.rs (target/release/deps/seam-0123abcd)` ->
/// `seam (unittests src/main.rs)`; `tests/files.rs (.../files-89ab)` -> `files (tests/files.rs)`.
fn binary_name(running: &str) -> String {
    let Some((source, path)) = running.rsplit_once(" (") else {
        return running.to_owned();
    };
    let file = path
        .trim_end_matches(')')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    let stem = file.rsplit_once('-').map_or(file, |(stem, _hash)| stem);
    format!("{stem} ({source})")
}

/// Parses libtest's `test result: ok. 5 passed; 1 failed; 0 ignored; ...` (ANSI colours allowed).
pub fn parse_result_line(line: &str) -> Option<Tally> {
    let plain = strip_ansi(line);
    let rest = plain.trim().strip_prefix("test result:")?;
    let mut tally = Tally::default();
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(count)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        match what {
            "passed" => tally.passed += count,
            "failed" => tally.failed += count,
            _ => {}
        }
    }
    Some(tally)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip `ESC [ ... final-byte`.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
