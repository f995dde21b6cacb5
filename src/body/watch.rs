//! The state of one response body under the guard: the bytes received, the
//! waits for data, and the idle and throughput limits. Every method takes the
//! current instant as an argument, so the rules are tested without a clock.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::progress::BodyProgress;
use super::rate::{self, RateWindow};
use super::settings::{BodySettings, MinThroughput};
use crate::format::{DisplayDuration, DisplayRate};
use crate::limit::Limit;

/// Bytes, waits and limits of one response body.
#[derive(Debug)]
pub(crate) struct BodyWatch {
    idle_timeout: Option<Duration>,
    min_throughput: Option<MinThroughput>,
    /// Present when `min_throughput` is set.
    window: Option<RateWindow>,
    /// When the response headers arrived and the guard started.
    started: Instant,
    expected_len: Option<u64>,
    received: u64,
    data_seen: bool,
    /// When the current wait for data began; `None` while the caller is not
    /// waiting.
    waiting_since: Option<Instant>,
    /// The total length of the waits that ended.
    waited: Duration,
    /// The maximum wait that ended with data, not counting the wait before
    /// the first data.
    max_gap: Duration,
}

/// A body limit of the guard that fired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stall {
    /// No data arrived for this long while the caller waited.
    Idle(Duration),
    /// The rate over the window fell below the minimum.
    Throughput {
        min: MinThroughput,
        /// The rate over the window, in bytes per second.
        observed: f64,
    },
}

/// A body that ended before the length that its headers announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndedEarly {
    pub(crate) received: u64,
    pub(crate) expected: u64,
}

impl BodyWatch {
    pub(crate) fn new(
        settings: &BodySettings,
        expected_len: Option<u64>,
        started: Instant,
    ) -> Self {
        BodyWatch {
            idle_timeout: settings.idle_timeout,
            min_throughput: settings.min_throughput,
            window: settings
                .min_throughput
                .map(|min| RateWindow::new(min.window())),
            started,
            expected_len,
            received: 0,
            data_seen: false,
            waiting_since: None,
            waited: Duration::ZERO,
            max_gap: Duration::ZERO,
        }
    }

    /// Returns whether the caller is waiting for data: its last poll found
    /// none ready.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting_since.is_some()
    }

    /// Starts a wait for data at `now`, unless one is running.
    pub(crate) fn start_wait(&mut self, now: Instant) {
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }

    /// Ends the current wait at `now`, when data arrived.
    pub(crate) fn end_wait(&mut self, now: Instant) {
        let Some(since) = self.waiting_since.take() else {
            return;
        };
        let wait = now.saturating_duration_since(since);
        if self.data_seen {
            self.max_gap = self.max_gap.max(wait);
        }
        self.waited = self.waited.saturating_add(wait);
        if let Some(window) = &mut self.window {
            window.advance_to(self.waited);
        }
    }

    /// Counts `bytes` of body data that arrived.
    pub(crate) fn record(&mut self, bytes: u64) {
        self.received = self.received.saturating_add(bytes);
        self.data_seen |= bytes > 0;
        if let Some(window) = &mut self.window {
            window.record(bytes);
        }
    }

    /// Returns how far short of its announced length the body fell, once it
    /// ended: `None` when its length was unknown or all of it arrived.
    pub(crate) fn ended_early(&self) -> Option<EndedEarly> {
        let expected = self.expected_len?;
        (self.received < expected).then_some(EndedEarly {
            received: self.received,
            expected,
        })
    }

    /// Checks the limits at `now`, during a wait, and returns when to check
    /// again (`None` when no limit is set or the next check is beyond what an
    /// `Instant` can hold).
    ///
    /// The returned instant is never later than the moment a limit could
    /// fire, so checking only then misses nothing. Checking earlier is
    /// harmless.
    pub(crate) fn check(&mut self, now: Instant) -> Result<Option<Instant>, Stall> {
        let current_wait = self.current_wait(now);
        if let Some(idle) = self.idle_timeout {
            if self.is_waiting() && current_wait >= idle {
                return Err(Stall::Idle(idle));
            }
        }
        if let (Some(min), Some(window)) = (self.min_throughput, &mut self.window) {
            let clock = self.waited.saturating_add(current_wait);
            window.advance_to(clock);
            if clock >= min.first_check() && window.is_below(min.bytes_per_second()) {
                return Err(Stall::Throughput {
                    min,
                    observed: window.rate().unwrap_or(0.0),
                });
            }
        }
        Ok(self.next_check(now))
    }

    /// Returns when to check the limits next, after `now`: `None` when no
    /// idle or throughput limit is set.
    pub(crate) fn next_check(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |candidate: Option<Instant>| {
            if let Some(candidate) = candidate {
                next = Some(next.map_or(candidate, |next| next.min(candidate)));
            }
        };
        if let Some(idle) = self.idle_timeout {
            // A wait that has not begun begins at `now` at the earliest.
            consider(self.waiting_since.unwrap_or(now).checked_add(idle));
        }
        if let (Some(min), Some(window)) = (self.min_throughput, &self.window) {
            // Waiting time passes no faster than real time, so a check this
            // far ahead in real time comes no later than the one that is due.
            let clock = self.waited.saturating_add(self.current_wait(now));
            let first = min.first_check();
            let until = if clock < first {
                first - clock
            } else {
                window.until_next_slot()
            };
            consider(now.checked_add(until));
        }
        next
    }

    /// Returns whether data was still flowing steadily at `now`; see
    /// [`rate::was_flowing`].
    pub(crate) fn was_flowing(&self, now: Instant) -> bool {
        rate::was_flowing(
            self.data_seen,
            self.current_wait(now),
            self.max_gap,
            now.saturating_duration_since(self.started),
        )
    }

    /// Returns the progress of the body at `now`.
    pub(crate) fn progress(&self, now: Instant) -> BodyProgress {
        BodyProgress::new(
            self.received,
            self.expected_len,
            now.saturating_duration_since(self.started),
        )
    }

    fn current_wait(&self, now: Instant) -> Duration {
        self.waiting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

impl Stall {
    /// Returns the limit that fired.
    pub(crate) fn limit(&self) -> Limit {
        match *self {
            Stall::Idle(timeout) => Limit::BodyIdleTimeout(timeout),
            Stall::Throughput { min, .. } => Limit::MinBodyThroughput(min),
        }
    }
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Stall::Idle(timeout) => write!(
                f,
                "no response body data arrived for {}",
                DisplayDuration(timeout)
            ),
            Stall::Throughput { min, observed } => write!(
                f,
                "the response body arrived at {}, below the minimum of {}",
                DisplayRate(observed),
                min
            ),
        }
    }
}

impl StdError for Stall {}

impl fmt::Display for EndedEarly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the response body ended after {} of the {} bytes that its length announced",
            self.received, self.expected
        )
    }
}

impl StdError for EndedEarly {}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn watch(idle: Option<Duration>, min: Option<MinThroughput>) -> (BodyWatch, Instant) {
        let settings = BodySettings {
            idle_timeout: idle,
            min_throughput: min,
            ..BodySettings::default()
        };
        let start = Instant::now();
        (BodyWatch::new(&settings, Some(100), start), start)
    }

    #[test]
    fn no_limits_means_no_timer() {
        let (watch, start) = watch(None, None);

        assert_eq!(watch.next_check(start), None);
    }

    #[test]
    fn idle_fires_after_a_full_wait() {
        let (mut watch, start) = watch(Some(500 * MS), None);
        watch.start_wait(start + 100 * MS);

        let early = watch.check(start + 599 * MS);
        let due = watch.check(start + 600 * MS);

        assert_eq!(early, Ok(Some(start + 600 * MS)));
        assert_eq!(due, Err(Stall::Idle(500 * MS)));
        assert_eq!(due.unwrap_err().limit(), Limit::BodyIdleTimeout(500 * MS));
    }

    #[test]
    fn data_restarts_the_idle_timeout() {
        let (mut watch, start) = watch(Some(500 * MS), None);
        watch.start_wait(start);
        watch.end_wait(start + 400 * MS);
        watch.record(10);
        watch.start_wait(start + 450 * MS);

        let check = watch.check(start + 900 * MS);

        assert_eq!(check, Ok(Some(start + 950 * MS)));
    }

    #[test]
    fn time_away_from_the_body_is_not_idle() {
        let (mut watch, start) = watch(Some(500 * MS), None);

        // The caller read data and then spent two seconds elsewhere.
        let check = watch.check(start + 2_000 * MS);

        assert_eq!(check, Ok(Some(start + 2_500 * MS)));
    }

    #[test]
    fn next_check_comes_with_the_earliest_limit() {
        let min = MinThroughput::new(100)
            .with_window(200 * MS)
            .with_grace_period(200 * MS);
        let (watch, start) = watch(Some(500 * MS), Some(min));

        assert_eq!(watch.next_check(start), Some(start + 200 * MS));
    }

    #[test]
    fn throughput_is_not_checked_during_grace() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(2_000 * MS);
        let (mut watch, start) = watch(None, Some(min));
        watch.start_wait(start);

        let check = watch.check(start + 1_500 * MS);

        assert_eq!(check, Ok(Some(start + 2_000 * MS)));
    }

    #[test]
    fn slow_body_fails_after_grace() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(1_000 * MS);
        let (mut watch, start) = watch(None, Some(min));
        // 20 bytes every 50 ms: 400 B/s.
        for step in 0..20 {
            watch.start_wait(start + step * 50 * MS);
            watch.end_wait(start + (step + 1) * 50 * MS);
            watch.record(20);
        }
        watch.start_wait(start + 1_000 * MS);

        let check = watch.check(start + 1_000 * MS);

        let Err(Stall::Throughput { observed, .. }) = check else {
            panic!("expected a throughput stall, got {check:?}");
        };
        // Slots 1 to 10 hold 380 bytes over 900 ms of waiting.
        assert!((observed - 422.2).abs() < 0.1, "{observed}");
    }

    #[test]
    fn first_throughput_check_waits_for_a_full_window() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(Duration::ZERO);
        let (mut watch, start) = watch(None, Some(min));
        watch.start_wait(start);

        // Nothing arrived yet, but 100 ms are too short to judge a rate.
        let check = watch.check(start + 100 * MS);

        assert_eq!(check, Ok(Some(start + 1_000 * MS)));
    }

    #[test]
    fn fast_body_passes_and_is_checked_each_slot() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(Duration::ZERO);
        let (mut watch, start) = watch(None, Some(min));
        watch.start_wait(start);
        watch.end_wait(start + 1_150 * MS);
        watch.record(2_000);
        watch.start_wait(start + 1_150 * MS);

        let check = watch.check(start + 1_160 * MS);

        // Waiting clock at 1160 ms; the next slot boundary is at 1200 ms.
        assert_eq!(check, Ok(Some(start + 1_200 * MS)));
    }

    #[test]
    fn caller_away_does_not_lower_the_rate() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(Duration::ZERO);
        let (mut watch, start) = watch(None, Some(min));
        watch.start_wait(start);
        watch.end_wait(start + 1_000 * MS);
        watch.record(2_000);
        // The caller is away for ten seconds, then waits 50 ms: 2000 bytes
        // in 1050 ms of waiting, although 11 s passed.
        watch.start_wait(start + 11_000 * MS);

        let check = watch.check(start + 11_050 * MS);

        assert_eq!(check, Ok(Some(start + 11_100 * MS)));
    }

    #[test]
    fn wait_before_first_data_is_not_a_gap() {
        let (mut watch, start) = watch(None, None);
        watch.start_wait(start);
        watch.end_wait(start + 400 * MS);
        watch.record(10);

        // A 50 ms wait is more than an eighth of the 400 ms so far, and the
        // only earlier gap, before the first data, does not count.
        watch.start_wait(start + 400 * MS);

        assert!(!watch.was_flowing(start + 460 * MS));
    }

    #[test]
    fn steady_gaps_count_as_flowing() {
        let (mut watch, start) = watch(None, None);
        for step in 0..10 {
            watch.start_wait(start + step * 20 * MS);
            watch.end_wait(start + (step + 1) * 20 * MS);
            watch.record(64);
        }
        watch.start_wait(start + 200 * MS);

        assert!(watch.was_flowing(start + 215 * MS));
        assert!(!watch.was_flowing(start + 400 * MS));
    }

    #[test]
    fn body_short_of_its_length_ended_early() {
        let settings = BodySettings::default();
        let mut short = BodyWatch::new(&settings, Some(1000), Instant::now());
        let mut complete = BodyWatch::new(&settings, Some(100), Instant::now());
        let mut unknown = BodyWatch::new(&settings, None, Instant::now());

        for watch in [&mut short, &mut complete, &mut unknown] {
            watch.record(100);
        }

        assert_eq!(
            short.ended_early(),
            Some(EndedEarly {
                received: 100,
                expected: 1000
            })
        );
        assert_eq!(complete.ended_early(), None);
        assert_eq!(unknown.ended_early(), None);
        assert_eq!(
            short.ended_early().unwrap().to_string(),
            "the response body ended after 100 of the 1000 bytes that its length announced"
        );
    }

    #[test]
    fn progress_counts_bytes_since_the_headers() {
        let (mut watch, start) = watch(None, None);
        watch.record(30);
        watch.record(12);

        let progress = watch.progress(start + 250 * MS);

        assert_eq!(progress.bytes(), 42);
        assert_eq!(progress.expected_len(), Some(100));
        assert_eq!(progress.elapsed(), 250 * MS);
    }

    #[test]
    fn stall_messages_name_the_limit() {
        let idle = Stall::Idle(500 * MS);
        let slow = Stall::Throughput {
            min: MinThroughput::new(1_024).with_window(2_000 * MS),
            observed: 12.0,
        };

        assert_eq!(idle.to_string(), "no response body data arrived for 500ms");
        assert_eq!(
            slow.to_string(),
            "the response body arrived at 12 B/s, below the minimum of 1 KiB/s over 2s"
        );
    }
}
