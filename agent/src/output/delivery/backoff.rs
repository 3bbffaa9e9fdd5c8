//! Retry schedule of the delivery worker (OTLP export and webhooks): exponential backoff with
//! "equal jitter" (half of the exponential delay is fixed, half random), capped, so many agents
//! failing at once do not retry in lockstep.
use std::time::Duration;

/// How long to wait between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The exponential delay after failed attempt `attempt` (0-based), before jitter:
    /// `min(cap, base * 2^attempt)`.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay after failed attempt `attempt` with jitter `unit` in [0, 1]: between half the
    /// ceiling (unit 0) and the ceiling (unit 1).
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        ceiling / 2 + (ceiling / 2).mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_up_to_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let ceilings: Vec<u128> = (0..7).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn jitter_stays_between_half_and_full_ceiling() {
        let b = Backoff::default();
        for attempt in 0..10 {
            let ceiling = b.ceiling(attempt);
            assert_eq!(b.delay(attempt, 0.0), ceiling / 2);
            assert_eq!(b.delay(attempt, 1.0), ceiling);
            let mid = b.delay(attempt, 0.5);
            assert!(mid > ceiling / 2 && mid < ceiling, "{mid:?} vs {ceiling:?}");
            assert_eq!(b.delay(attempt, f64::NAN), ceiling / 2);
            assert_eq!(b.delay(attempt, 7.0), ceiling);
        }
    }
}
