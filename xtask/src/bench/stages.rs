//! The bench's other measurements: the floor (empty programs on Seam's live hooks, held by
//! `seam workload bench floor`) and the user-space pipeline's events/s on one thread
//! (`seam workload bench pipeline` over generated probe records and the shipped rules).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{READY_TIMEOUT, STOP_TIMEOUT, json_number, procs::Proc};
use crate::util;

/// The strings of the array `"key": [...]` in a JSON object (hook names: no escapes inside).
pub fn json_strings(obj: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\"");
    let Some(at) = obj.find(&pat) else {
        return Vec::new();
    };
    let rest = &obj[at + pat.len()..];
    let Some(rest) = rest.trim_start().strip_prefix(':') else {
        return Vec::new();
    };
    let Some(rest) = rest.trim_start().strip_prefix('[') else {
        return Vec::new();
    };
    let body = &rest[..rest.find(']').unwrap_or(rest.len())];
    body.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The hooks the agent had live, from its stats file.
pub fn live_hooks(stats: &str) -> Vec<String> {
    json_strings(stats, "live_hooks")
}

/// Empty programs attached on the given hooks until stopped.
pub struct Floor(Proc);

impl Floor {
    pub fn start(bin: &Path, tmp: &Path, hooks: &[String]) -> Result<Self> {
        let ready = tmp.join("floor-ready");
        let _ = fs::remove_file(&ready);
        let mut cmd = Command::new(bin);
        cmd.args(["workload", "bench", "floor", "--ready-file"])
            .arg(&ready);
        for hook in hooks {
            cmd.arg("--hook").arg(hook);
        }
        let mut floor = Proc::spawn(cmd, "floor", tmp, false)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ready.exists() {
            if let Some(status) = floor.try_wait()? {
                bail!(
                    "the floor exited before attaching ({status}); its stderr:\n{}",
                    floor.stderr()
                );
            }
            util::check_interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "the floor did not attach within {} s",
                    READY_TIMEOUT.as_secs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(Self(floor))
    }

    pub fn stop(self) {
        let stderr = self.0.stderr_path.clone();
        match self.0.stop(STOP_TIMEOUT) {
            Some(status) if status.success() => {}
            other => eprintln!(
                "xtask: warning: the floor exited with {other:?}; its stderr:\n{}",
                super::tail(&stderr)
            ),
        }
    }
}

/// The pipeline's figures: median events/s over `rounds` runs, and what one run printed.
pub struct PipelineRun {
    pub events_per_sec: Vec<f64>,
    pub last: String,
}

/// `seam workload bench pipeline` with the shipped rules, `rounds` times.
pub fn pipeline(bin: &Path, rounds: usize) -> Result<PipelineRun> {
    let rules: PathBuf = util::workspace_root().join("rules/shipped");
    let mut run = PipelineRun {
        events_per_sec: Vec::new(),
        last: String::new(),
    };
    for round in 0..rounds {
        util::check_interrupted()?;
        let mut cmd = Command::new(bin);
        cmd.args(["workload", "bench", "pipeline", "--rules"])
            .arg(&rules);
        let out = util::output(&mut cmd, "the pipeline benchmark failed")?;
        let line = out
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .context("the pipeline benchmark printed no JSON line")?;
        let rate = json_number(line, "events_per_sec")
            .context("the pipeline benchmark printed no events_per_sec")?;
        eprintln!(
            "xtask: round {}/{rounds}: pipeline {rate:>12.0} events/s (one thread)",
            round + 1
        );
        run.events_per_sec.push(rate);
        line.clone_into(&mut run.last);
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_live_hooks() {
        let stats = "{\"a\": 1, \"live_hooks\": [\n \"cgroup/connect4\",\n \"tp_btf/sys_exit\"\n ], \
                     \"b\": [\"x\"]}";
        assert_eq!(live_hooks(stats), ["cgroup/connect4", "tp_btf/sys_exit"]);
        assert!(live_hooks("null").is_empty());
    }
}
