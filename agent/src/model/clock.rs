//! Time: the probes stamp events with boot-time nanoseconds (`bpf_ktime_get_boot_ns`, which
//! keeps counting through suspend and never steps); records carry wall-clock Unix nanoseconds
//! ([`UnixNanos`], RFC 3339 with nanoseconds in JSON). [`WallClock`] converts one to the other
//! with an offset re-read on every pipeline tick, so a stepped wall clock (NTP, an operator)
//! shows in records from the next tick on, and never reorders events within a span.
use std::fmt;

use nix::time::{ClockId, clock_gettime};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct UnixNanos(pub i64);

impl UnixNanos {
    /// Now, from the wall clock.
    pub(crate) fn now() -> Self {
        Self(i64::try_from(realtime_ns()).unwrap_or(i64::MAX))
    }

    /// From unsigned nanoseconds since the epoch (saturating).
    pub(crate) fn from_u64(ns: u64) -> Self {
        Self(i64::try_from(ns).unwrap_or(i64::MAX))
    }

    /// Nanoseconds since the epoch as `u64` (OTLP's `fixed64`); 0 before the epoch.
    pub(crate) fn as_u64(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// RFC 3339 with nanoseconds, UTC.
    pub(crate) fn rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }

    /// `ns` nanoseconds later (saturating). Durations come from the monotonic clock, so a
    /// span's end is its start plus how long it lasted, whatever the wall clock did meanwhile.
    pub(crate) fn plus_ns(self, ns: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(ns).unwrap_or(i64::MAX)))
    }

    /// Parses RFC 3339 (any offset).
    pub(crate) fn parse_rfc3339(text: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos()).ok().map(Self)
    }
}

impl fmt::Debug for UnixNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for UnixNanos {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for UnixNanos {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Self::parse_rfc3339(&text)
                .ok_or_else(|| D::Error::custom(format!("{text:?} is not an RFC 3339 time")))
        } else {
            i64::deserialize(deserializer).map(Self)
        }
    }
}

/// Nanoseconds since boot (CLOCK_BOOTTIME, the clock of `bpf_ktime_get_boot_ns`).
pub(crate) fn boot_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn realtime_ns() -> i128 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

/// Converts boot-time instants to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WallClock {
    /// Unix ns minus boot ns, as of the last [`WallClock::refresh`].
    offset_ns: i128,
}

impl Default for WallClock {
    fn default() -> Self {
        Self::now()
    }
}

impl WallClock {
    /// The offset as of now.
    pub(crate) fn now() -> Self {
        Self {
            offset_ns: realtime_ns() - i128::from(boot_ns()),
        }
    }

    /// A fixed offset (tests, replays).
    #[cfg(test)]
    pub(crate) fn fixed(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// Re-reads the offset (the wall clock may have been stepped).
    pub(crate) fn refresh(&mut self) {
        *self = Self::now();
    }

    /// The wall-clock time of a boot-time instant.
    pub(crate) fn unix(&self, boot_ns: u64) -> UnixNanos {
        let ns = self.offset_ns + i128::from(boot_ns);
        UnixNanos(i64::try_from(ns).unwrap_or(if ns < 0 { 0 } else { i64::MAX }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_with_nanoseconds() {
        let t = UnixNanos(1_700_000_000_123_456_789);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(UnixNanos::parse_rfc3339(&t.rfc3339()), Some(t));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123456789Z\"");
        assert_eq!(serde_json::from_str::<UnixNanos>(&json).unwrap(), t);
    }

    #[test]
    fn boot_time_maps_to_now() {
        let now = WallClock::now().unix(boot_ns());
        let drift = (now.0 - UnixNanos::now().0).abs();
        assert!(drift < 1_000_000_000, "{now}");
        assert_eq!(WallClock::fixed(10).unix(5), UnixNanos(15));
    }

    #[test]
    fn plus_saturates() {
        assert_eq!(UnixNanos(5).plus_ns(10), UnixNanos(15));
        assert_eq!(
            UnixNanos(i64::MAX - 1).plus_ns(u64::MAX),
            UnixNanos(i64::MAX)
        );
    }
}
