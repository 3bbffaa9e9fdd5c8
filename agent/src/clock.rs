//! Converts the probes' boot-time nanoseconds to wall-clock RFC 3339 timestamps.
use nix::time::{ClockId, clock_gettime};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Nanoseconds since boot (CLOCK_BOOTTIME, the clock of `bpf_ktime_get_boot_ns`).
pub fn boot_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn realtime_ns() -> i128 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

/// Wall-clock time of a boot-time instant, as RFC 3339 with nanoseconds.
pub fn rfc3339(boot_time_ns: u64) -> String {
    let offset = realtime_ns() - i128::from(boot_ns());
    format_wall(offset + i128::from(boot_time_ns))
}

/// Formats Unix nanoseconds as RFC 3339 (UTC).
pub fn format_wall(unix_ns: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nanoseconds() {
        assert_eq!(
            format_wall(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }

    #[test]
    fn boot_time_maps_to_now() {
        let now = rfc3339(boot_ns());
        let year: i32 = now[..4].parse().unwrap();
        assert!(year >= 2024, "{now}");
    }
}
