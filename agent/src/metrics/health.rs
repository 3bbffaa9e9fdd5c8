//! Liveness and readiness. Liveness: the ring buffer reader and the pipeline both beat a
//! heartbeat (every drain interval and every tick); the agent is healthy while both beat within
//! [`MAX_SILENCE`]. Readiness: set once the probes are live and the first cgroup scan is done.
use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Longest silence of a heartbeat before `/healthz` fails.
pub(crate) const MAX_SILENCE: Duration = Duration::from_secs(5);

/// Which part beats a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// The ring buffer reader (every drain).
    Reader,
    /// The pipeline (every tick).
    Pipeline,
}

impl std::fmt::Display for Beat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Reader => "ring buffer reader",
            Self::Pipeline => "pipeline",
        })
    }
}

/// Why the agent is not healthy (the body of a failing `/healthz`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unhealthy {
    /// A part never beat: the agent is still starting, or the part failed to start.
    #[error("{0} has not started; if this lasts, the agent's log says why")]
    NotStarted(Beat),
    /// A part stopped beating: it is stuck or died.
    #[error("{beat} silent for {silent_ms} ms; the agent's log says why (restart the agent)")]
    Silent { beat: Beat, silent_ms: u64 },
}

/// Heartbeats and the ready flag.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    /// Milliseconds since `started` of the reader's last drain (0: never).
    reader_ms: AtomicU64,
    /// Milliseconds since `started` of the pipeline's last tick (0: never).
    pipeline_ms: AtomicU64,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            reader_ms: AtomicU64::new(0),
            pipeline_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }
}

impl Health {
    fn now_ms(&self) -> u64 {
        // +1 so a beat in the first millisecond is not "never".
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// The ring buffer reader drained (or tried to).
    pub(crate) fn reader_beat(&self) {
        self.reader_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The pipeline handled a tick.
    pub(crate) fn pipeline_beat(&self) {
        self.pipeline_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Ok while both heartbeats are recent; otherwise which one is silent and for how long.
    pub(crate) fn check(&self) -> Result<(), Unhealthy> {
        self.check_at(self.now_ms(), MAX_SILENCE)
    }

    fn check_at(&self, now_ms: u64, max: Duration) -> Result<(), Unhealthy> {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        for (beat, last) in [
            (Beat::Reader, &self.reader_ms),
            (Beat::Pipeline, &self.pipeline_ms),
        ] {
            let last = last.load(Ordering::Relaxed);
            if last == 0 {
                return Err(Unhealthy::NotStarted(beat));
            }
            let silent_ms = now_ms.saturating_sub(last);
            if silent_ms > max_ms {
                return Err(Unhealthy::Silent { beat, silent_ms });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_both_beat() {
        let health = Health::default();
        assert_eq!(health.check(), Err(Unhealthy::NotStarted(Beat::Reader)));
        health.reader_beat();
        assert_eq!(health.check(), Err(Unhealthy::NotStarted(Beat::Pipeline)));
        health.pipeline_beat();
        assert_eq!(health.check(), Ok(()));
        let later = health.now_ms() + 6_000;
        let error = health.check_at(later, MAX_SILENCE).unwrap_err();
        assert!(
            matches!(error, Unhealthy::Silent { beat: Beat::Reader, silent_ms } if silent_ms >= 6_000),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("ring buffer reader silent for "),
            "{error}"
        );
        assert!(!health.is_ready());
        health.set_ready();
        assert!(health.is_ready());
    }
}
