//! Percentiles and medians of measured samples.

use std::fmt;
use std::time::Duration;

/// Percentiles of a set of samples, in the unit the samples were given in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarizes `samples`, sorting them in place. All fields are NaN when
    /// there are no samples.
    pub fn of(samples: &mut [f64]) -> Summary {
        samples.sort_by(f64::total_cmp);
        Summary {
            count: samples.len(),
            min: percentile(samples, 0.0),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            max: percentile(samples, 100.0),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} min={:.3} p50={:.3} p90={:.3} p99={:.3} max={:.3}",
            self.count, self.min, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// Returns the nearest-rank percentile `p` (0 to 100) of sorted samples, or
/// NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Returns the median of `samples`, sorting them in place.
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(samples, 50.0)
}

/// Returns `duration` in milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Returns `duration` in microseconds.
pub fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Returns `later - earlier` in milliseconds, negative when `later` is
/// earlier.
pub fn signed_ms(later: std::time::Instant, earlier: std::time::Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(after) => ms(after),
        None => -ms(earlier - later),
    }
}
