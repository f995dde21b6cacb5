//! Recent response times per host and port, shared by the clones of a
//! middleware, so that a timeout can be compared with how long the same
//! server usually takes.

use std::time::Duration;

use crate::host_table::HostTable;

/// How many response times are kept per host and port.
const SAMPLES: usize = 8;

/// The last few times from the start of an attempt to its response headers,
/// per host and port.
#[derive(Debug, Default)]
pub(crate) struct RecentLatency {
    hosts: HostTable<Samples>,
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
        self.hosts.update(host, port, |samples| {
            samples.values[samples.next] = latency;
            samples.next = (samples.next + 1) % SAMPLES;
            samples.len = (samples.len + 1).min(SAMPLES);
        });
    }

    /// Returns the slowest of the recent response times from `host` and
    /// `port`, if any was recorded.
    pub(crate) fn slowest(&self, host: &str, port: Option<u16>) -> Option<Duration> {
        self.hosts
            .read(host, port, |samples| {
                samples.values[..samples.len].iter().max().copied()
            })
            .flatten()
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
}
