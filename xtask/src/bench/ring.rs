//! The pipeline through the kernel ring: real TCP connections from a tenant cgroup (every one is
//! four probe events), offered at a rate doubled per step (as Falco measures), each step under
//! a fresh agent whose stats file gives events_total and lost_total. Doubling stops at the first
//! loss or when the generator can no longer reach the rate asked.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{json_number, start_agent, stop_agent};
use crate::util;

/// The first rate asked, in events/s (doubled per step).
const FIRST_RATE: f64 = 31_250.0;
/// Steps at most: 31,250 .. 2,000,000 events/s.
const MAX_STEPS: usize = 7;
/// Seconds per step.
const STEP_SECONDS: f64 = 2.0;
/// Probe events per TCP connection (connect, accept, two closes).
const EVENTS_PER_CONNECTION: f64 = 4.0;
/// Below this share of the rate asked, the generator is saturated and doubling stops.
const SATURATED: f64 = 0.7;

pub(crate) const TARGET: f64 = 1_000_000.0;

#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Events/s asked of the generator.
    pub asked: f64,
    /// Events/s the agent saw, plus those lost, over the generator's run.
    pub offered: f64,
    pub events: u64,
    pub lost: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    pub steps: Vec<Step>,
}

impl Ring {
    /// The highest rate offered with no loss.
    pub(crate) fn best_lossless(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| s.lost == 0)
            .map(|s| s.offered)
            .max_by(f64::total_cmp)
    }

    pub(crate) fn first_loss(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.lost > 0)
    }

    pub(crate) fn value(&self) -> String {
        let best = self
            .best_lossless()
            .map_or_else(|| "-".into(), |r| format!("{r:.0} events/s with zero loss"));
        match (self.first_loss(), self.steps.last()) {
            (Some(s), _) => format!(
                "{best}; loss began at {:.0} events/s ({} of {} lost)",
                s.offered,
                s.lost,
                s.events + s.lost
            ),
            (None, Some(last)) => format!(
                "{best}; no loss: the generator saturated at {:.0} events/s (asked {:.0})",
                last.offered, last.asked
            ),
            (None, None) => best,
        }
    }

    pub(crate) fn met(&self) -> bool {
        self.best_lossless().is_some_and(|r| r >= TARGET)
    }

    pub(crate) fn json(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{{\"asked_events_per_sec\": {:.0}, \"offered_events_per_sec\": {:.0}, \
                     \"events\": {}, \"lost\": {}}}",
                    s.asked, s.offered, s.events, s.lost
                )
            })
            .collect();
        format!(
            "{{\"best_lossless_events_per_sec\": {}, \"loss_began_events_per_sec\": {}, \
             \"steps\": [{}]}}",
            self.best_lossless()
                .map_or_else(|| "null".into(), |r| format!("{r:.0}")),
            self.first_loss()
                .map_or_else(|| "null".into(), |s| format!("{:.0}", s.offered)),
            steps.join(", ")
        )
    }
}

pub(crate) fn measure(bin: &Path, tmp: &Path, cgroup: &str) -> Result<Ring> {
    let mut ring = Ring::default();
    let mut asked = FIRST_RATE;
    for _ in 0..MAX_STEPS {
        util::check_interrupted()?;
        let agent = start_agent(bin, tmp)?;
        let mut cmd = Command::new(bin);
        cmd.args(["workload", "--cgroup", cgroup, "bench", "paced", "--rate"])
            .arg(format!("{:.0}", asked / EVENTS_PER_CONNECTION))
            .arg("--seconds")
            .arg(STEP_SECONDS.to_string());
        let out = util::output(&mut cmd, "the paced connection generator failed");
        let stats = stop_agent(agent, tmp);
        let out = out?;
        let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        let elapsed_s = json_number(line, "elapsed_ns")
            .with_context(|| format!("the generator printed no elapsed_ns: {out}"))?
            / 1e9;
        let events = json_number(&stats, "events_total")
            .with_context(|| format!("no events_total in the agent's stats: {stats}"))?
            as u64;
        let lost = json_number(&stats, "lost_total").unwrap_or(0.0) as u64;
        let offered = (events + lost) as f64 / elapsed_s;
        eprintln!(
            "xtask: ring: asked {asked:.0} events/s, offered {offered:.0}, events {events}, \
             lost {lost}"
        );
        ring.steps.push(Step {
            asked,
            offered,
            events,
            lost,
        });
        if lost > 0 || offered < SATURATED * asked {
            break;
        }
        asked *= 2.0;
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, lost: u64) -> Step {
        Step {
            asked: offered,
            offered,
            events: 10,
            lost,
        }
    }

    #[test]
    fn best_lossless_and_where_loss_began() {
        let ring = Ring {
            steps: vec![step(1e5, 0), step(2e6, 0), step(4e6, 3)],
        };
        assert_eq!(ring.best_lossless(), Some(2e6));
        assert_eq!(ring.first_loss().map(|s| s.offered), Some(4e6));
        assert!(ring.met());
        assert!(
            ring.value().contains("loss began at 4000000"),
            "{}",
            ring.value()
        );
        let saturated = Ring {
            steps: vec![step(7e4, 0)],
        };
        assert!(!saturated.met());
        assert!(saturated.value().contains("saturated"));
    }
}
