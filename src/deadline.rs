//! Deadline arithmetic: how long an attempt may run and whether a wait fits.
//!
//! Everything here takes the current instant as an argument, so it is tested
//! without a clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::limit::Limit;

/// Minimum time a retry must have before the deadline. A shorter attempt
/// could only time out, and its error would hide the earlier ones.
pub(crate) const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(10);

/// The end of a call's total time budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    start: Instant,
    total: Duration,
    /// `None` when `start + total` does not fit in an `Instant`, which
    /// means the call has no deadline in practice.
    end: Option<Instant>,
}

impl Deadline {
    pub(crate) fn new(start: Instant, total: Duration) -> Self {
        Deadline {
            start,
            total,
            end: start.checked_add(total),
        }
    }

    pub(crate) fn total(&self) -> Duration {
        self.total
    }

    /// Returns the time left at `now`, zero once the deadline has passed.
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        match self.end {
            Some(end) => end.saturating_duration_since(now),
            None => Duration::MAX,
        }
    }

    /// Returns when the call started.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// Returns the time since the call started.
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// Returns the limit of an attempt that starts at `now`: the smallest of
    /// the attempt timeout, the time left and the request's own timeout.
    ///
    /// On a tie the attempt timeout is named before the total timeout, and a
    /// request timeout is named only when it is strictly the shortest.
    pub(crate) fn attempt_limit(
        &self,
        now: Instant,
        attempt_timeout: Duration,
        request_timeout: Option<Duration>,
    ) -> AttemptLimit {
        let remaining = self.remaining(now);
        let mut limit = AttemptLimit {
            budget: attempt_timeout,
            fires_as: Limit::AttemptTimeout(attempt_timeout),
        };
        if remaining < limit.budget {
            limit = AttemptLimit {
                budget: remaining,
                fires_as: Limit::TotalTimeout(self.total),
            };
        }
        if let Some(request_timeout) = request_timeout {
            if request_timeout < limit.budget {
                limit = AttemptLimit {
                    budget: request_timeout,
                    fires_as: Limit::RequestTimeout(request_timeout),
                };
            }
        }
        limit
    }

    /// Returns whether a retry that waits `wait` from `now` would still start
    /// before the deadline with at least [`MIN_ATTEMPT_TIME`] left to run.
    pub(crate) fn fits_wait(&self, now: Instant, wait: Duration) -> bool {
        wait.checked_add(MIN_ATTEMPT_TIME)
            .is_some_and(|needed| needed <= self.remaining(now))
    }
}

/// How long one attempt may run, and which limit it reports when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptLimit {
    pub(crate) budget: Duration,
    pub(crate) fires_as: Limit,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn deadline(total: Duration) -> (Deadline, Instant) {
        let start = Instant::now();
        (Deadline::new(start, total), start)
    }

    #[test]
    fn attempt_timeout_applies_when_time_is_left() {
        let (deadline, start) = deadline(2_000 * MS);

        let limit = deadline.attempt_limit(start, 300 * MS, None);

        assert_eq!(limit.budget, 300 * MS);
        assert_eq!(limit.fires_as, Limit::AttemptTimeout(300 * MS));
    }

    #[test]
    fn last_attempt_is_clipped_to_time_left() {
        let (deadline, start) = deadline(2_000 * MS);

        let limit = deadline.attempt_limit(start + 1_900 * MS, 300 * MS, None);

        assert_eq!(limit.budget, 100 * MS);
        assert_eq!(limit.fires_as, Limit::TotalTimeout(2_000 * MS));
    }

    #[test]
    fn shorter_request_timeout_wins() {
        let (deadline, start) = deadline(2_000 * MS);

        let limit = deadline.attempt_limit(start, 300 * MS, Some(120 * MS));

        assert_eq!(limit.budget, 120 * MS);
        assert_eq!(limit.fires_as, Limit::RequestTimeout(120 * MS));
    }

    #[test]
    fn longer_request_timeout_is_ignored() {
        let (deadline, start) = deadline(2_000 * MS);

        let limit = deadline.attempt_limit(start, 300 * MS, Some(5_000 * MS));

        assert_eq!(limit.fires_as, Limit::AttemptTimeout(300 * MS));
    }

    #[test]
    fn tie_between_attempt_and_total_names_attempt() {
        let (deadline, start) = deadline(300 * MS);

        let limit = deadline.attempt_limit(start, 300 * MS, None);

        assert_eq!(limit.fires_as, Limit::AttemptTimeout(300 * MS));
    }

    #[test]
    fn remaining_is_zero_after_deadline() {
        let (deadline, start) = deadline(100 * MS);

        assert_eq!(deadline.remaining(start + 250 * MS), Duration::ZERO);
        assert_eq!(deadline.elapsed(start + 250 * MS), 250 * MS);
    }

    #[test]
    fn wait_must_end_before_deadline() {
        let (deadline, start) = deadline(1_000 * MS);
        let now = start + 700 * MS;

        assert!(deadline.fits_wait(now, 290 * MS));
        assert!(!deadline.fits_wait(now, 291 * MS));
        assert!(!deadline.fits_wait(now, Duration::MAX));
    }

    #[test]
    fn huge_total_timeout_never_overflows() {
        let (deadline, start) = deadline(Duration::MAX);

        let limit = deadline.attempt_limit(start, Duration::MAX, None);

        assert_eq!(deadline.remaining(start), Duration::MAX);
        assert_eq!(limit.budget, Duration::MAX);
        assert!(deadline.fits_wait(start, Duration::from_secs(3_600)));
    }

    #[test]
    fn elapsed_before_start_is_zero() {
        let later = Instant::now() + 10 * MS;
        let deadline = Deadline::new(later, 100 * MS);

        assert_eq!(deadline.elapsed(later - 5 * MS), Duration::ZERO);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn duration() -> impl Strategy<Value = Duration> {
            prop_oneof![
                (0u64..10_000_000).prop_map(Duration::from_micros),
                Just(Duration::MAX),
                any::<u64>().prop_map(Duration::from_secs),
            ]
        }

        proptest! {
            #[test]
            fn attempt_limit_is_the_smallest_and_never_panics(
                total in duration(),
                attempt in duration(),
                request in proptest::option::of(duration()),
                passed in (0u64..100_000_000).prop_map(Duration::from_micros),
            ) {
                let start = Instant::now();
                let deadline = Deadline::new(start, total);
                let now = start + passed;

                let limit = deadline.attempt_limit(now, attempt, request);

                let remaining = deadline.remaining(now);
                prop_assert!(limit.budget <= attempt);
                prop_assert!(limit.budget <= remaining);
                if let Some(request) = request {
                    prop_assert!(limit.budget <= request);
                }
                prop_assert!(
                    limit.budget == attempt
                        || limit.budget == remaining
                        || Some(limit.budget) == request
                );
                prop_assert!(!deadline.fits_wait(now, remaining));
            }
        }
    }
}
