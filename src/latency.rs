//! Recent response times per host and port, shared by the clones of a
//! middleware, so that a timeout can be compared with how long the same
//! server usually takes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How many response times are kept per host and port.
const SAMPLES: usize = 8;

/// How many hosts and ports are tracked before the table starts over, which
/// bounds its memory.
const MAX_HOSTS: usize = 256;

/// The last few times from the start of an attempt to its response headers,
/// per host and port.
#[derive(Debug, Default)]
pub(crate) struct RecentLatency {
    hosts: Mutex<HashMap<(String, Option<u16>), Samples>>,
}

#[derive(Debug, Default)]
struct Samples {
    values: [Duration; SAMPLES],
    len: usize,
    next: usize,
}

impl RecentLatency {
    /// Records how long an attempt to `host` and `port` took to get its
    /// response headers.
    pub(crate) fn record(&self, host: &str, port: Option<u16>, latency: Duration) {
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&(host.to_owned(), port)) {
            hosts.clear();
        }
        let samples = hosts.entry((host.to_owned(), port)).or_default();
        samples.values[samples.next] = latency;
        samples.next = (samples.next + 1) % SAMPLES;
        samples.len = (samples.len + 1).min(SAMPLES);
    }

    /// Returns the slowest of the recent response times from `host` and
    /// `port`, if any was recorded.
    pub(crate) fn slowest(&self, host: &str, port: Option<u16>) -> Option<Duration> {
        let hosts = self.hosts.lock().ok()?;
        let samples = hosts.get(&(host.to_owned(), port))?;
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

        recent.record("a.test", Some(80), 10 * MS);
        recent.record("a.test", Some(80), 30 * MS);
        recent.record("a.test", Some(443), 90 * MS);

        assert_eq!(recent.slowest("a.test", Some(80)), Some(30 * MS));
        assert_eq!(recent.slowest("b.test", Some(80)), None);
    }

    #[test]
    fn old_samples_are_forgotten() {
        let recent = RecentLatency::default();
        recent.record("a.test", None, 500 * MS);

        for _ in 0..SAMPLES {
            recent.record("a.test", None, 5 * MS);
        }

        assert_eq!(recent.slowest("a.test", None), Some(5 * MS));
    }

    #[test]
    fn table_starts_over_when_full() {
        let recent = RecentLatency::default();
        for port in 0..MAX_HOSTS as u16 {
            recent.record("a.test", Some(port), MS);
        }

        recent.record("new.test", None, 2 * MS);

        assert_eq!(recent.slowest("new.test", None), Some(2 * MS));
        assert_eq!(recent.slowest("a.test", Some(0)), None);
    }
}
