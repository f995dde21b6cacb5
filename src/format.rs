//! Small display helpers shared by messages and logs.

use std::error::Error as StdError;
use std::fmt;

/// Joins the messages of `error` and its sources with `": "`, because
/// reqwest's own message leaves the causes out.
pub(crate) fn error_chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        // Some wrappers repeat their source's message; print it once.
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Shows a duration the way people write it: `300ms`, `2s`, `1.5s`, `2m30s`.
///
/// Below one second it shows whole milliseconds, or microseconds below one
/// millisecond, or nanoseconds below one microsecond. Up to a minute, it
/// shows seconds with up to three decimals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisplayDuration(pub(crate) std::time::Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration.is_zero() {
            return f.write_str("0ms");
        }
        // Below a second the parts fit in a `u32`, which formats several
        // times faster than the `u128` that `as_millis` returns.
        if duration.as_secs() == 0 {
            let nanos = duration.subsec_nanos();
            return match (nanos / 1_000_000, nanos / 1_000) {
                (0, 0) => write!(f, "{nanos}ns"),
                (0, micros) => write!(f, "{micros}µs"),
                (millis, _) => write!(f, "{millis}ms"),
            };
        }
        let secs = duration.as_secs();
        if secs < 60 {
            let text = format!("{:.3}", duration.as_secs_f64());
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return write!(f, "{text}s");
        }
        let (minutes, seconds) = (secs / 60, secs % 60);
        if minutes < 60 {
            return match seconds {
                0 => write!(f, "{minutes}m"),
                _ => write!(f, "{minutes}m{seconds}s"),
            };
        }
        let (hours, minutes) = (minutes / 60, minutes % 60);
        match minutes {
            0 => write!(f, "{hours}h"),
            _ => write!(f, "{hours}h{minutes}m"),
        }
    }
}

/// Shows a byte count in binary units: `512 B`, `64 KiB`, `1.5 MiB`.
///
/// Counts of 1 KiB and more show up to one decimal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisplayBytes(pub(crate) u64);

impl fmt::Display for DisplayBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_binary(f, self.0 as f64, "")
    }
}

/// Shows a rate in bytes per second in binary units: `12 B/s`, `0.5 B/s`,
/// `3.1 MiB/s`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisplayRate(pub(crate) f64);

impl fmt::Display for DisplayRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_binary(f, self.0, "/s")
    }
}

fn write_binary(f: &mut fmt::Formatter<'_>, value: f64, suffix: &str) -> fmt::Result {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if value < 1024.0 {
        // Below 10 B/s a decimal distinguishes a trickle from a stop. From
        // 9.95 up it would round to "10.0".
        if value < 9.95 && value.fract() != 0.0 {
            return write!(f, "{value:.1} B{suffix}");
        }
        return write!(f, "{value:.0} B{suffix}");
    }
    let mut scaled = value / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    let text = format!("{scaled:.1}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    write!(f, "{text} {}{suffix}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::{DisplayBytes, DisplayDuration, DisplayRate};
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (Duration::ZERO, "0ms"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(250), "250µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(912_345), "15m12s"),
            (Duration::from_secs(150), "2m30s"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::MAX, "5124095576030431h"),
        ];

        for (duration, expected) in cases {
            assert_eq!(DisplayDuration(duration).to_string(), expected);
        }
    }

    #[test]
    fn byte_counts_use_binary_units() {
        let cases = [
            (0, "0 B"),
            (1_023, "1023 B"),
            (1_024, "1 KiB"),
            (65_536, "64 KiB"),
            (1_572_864, "1.5 MiB"),
            (2 * 1024 * 1024, "2 MiB"),
            (u64::MAX, "16384 PiB"),
        ];

        for (bytes, expected) in cases {
            assert_eq!(DisplayBytes(bytes).to_string(), expected);
        }
    }

    #[test]
    fn rates_show_a_decimal_below_ten_bytes() {
        let cases = [
            (0.0, "0 B/s"),
            (0.5, "0.5 B/s"),
            (9.96, "10 B/s"),
            (20.0, "20 B/s"),
            (3_355_443.2, "3.2 MiB/s"),
        ];

        for (rate, expected) in cases {
            assert_eq!(DisplayRate(rate).to_string(), expected);
        }
    }
}
