//! Recent response times of one host and port, so that a timeout can be
//! compared with how long the same server usually takes.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How many response times are kept per host and port.
const SAMPLES: usize = 8;

/// The last few times from the start of an attempt to its response headers,
/// for one host and port.
#[derive(Debug, Default)]
pub(crate) struct RecentLatency {
    samples: Mutex<Samples>,
}

#[derive(Debug, Default)]
struct Samples {
    values: [Duration; SAMPLES],
    len: usize,
    next: usize,
}

impl RecentLatency {
    /// Records how long an attempt took to get its response headers.
    pub(crate) fn record(&self, latency: Duration) {
        // Samples stay valid whatever panicked while holding the lock.
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let next = samples.next;
        samples.values[next] = latency;
        samples.next = (next + 1) % SAMPLES;
        samples.len = (samples.len + 1).min(SAMPLES);
    }

    /// Returns the slowest of the recent response times, if any was
    /// recorded.
    pub(crate) fn slowest(&self) -> Option<Duration> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.values[..samples.len].iter().max().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn slowest_of_recent_samples_is_returned() {
        let recent = RecentLatency::default();

        recent.record(10 * MS);
        recent.record(30 * MS);
        recent.record(20 * MS);

        assert_eq!(recent.slowest(), Some(30 * MS));
    }

    #[test]
    fn no_samples_give_no_latency() {
        let recent = RecentLatency::default();

        assert_eq!(recent.slowest(), None);
    }

    #[test]
    fn old_samples_are_forgotten() {
        let recent = RecentLatency::default();
        recent.record(500 * MS);

        for _ in 0..SAMPLES {
            recent.record(5 * MS);
        }

        assert_eq!(recent.slowest(), Some(5 * MS));
    }
}
