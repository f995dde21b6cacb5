//! The wait between two attempts: exponential backoff with optional jitter.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Exponential backoff settings; [`Backoff::schedule`] starts the waits of
/// one call.
///
/// The wait before the first retry is `initial`, and each later wait doubles,
/// up to `max`. With jitter, `backon` adds a random part of up to the same
/// wait again, and the result is capped at `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, jitter: bool) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            // The middleware counts retries itself.
            .without_max_times();
        let builder = if jitter {
            builder.with_jitter()
        } else {
            builder
        };
        Backoff { builder, max }
    }

    /// Returns the waits of one call, in order.
    pub(crate) fn schedule(&self) -> Schedule {
        Schedule {
            waits: self.builder.build(),
            max: self.max,
        }
    }

    #[cfg(test)]
    fn seeded(mut self, seed: u64) -> Self {
        self.builder = self.builder.with_jitter_seed(seed);
        self
    }
}

/// The waits of one call.
#[derive(Debug)]
pub(crate) struct Schedule {
    waits: backon::ExponentialBackoff,
    max: Duration,
}

impl Schedule {
    /// Returns the wait before the next retry.
    pub(crate) fn next_wait(&mut self) -> Duration {
        // Without a maximum count the iterator never ends, so `max` is only
        // a fallback in case that changes.
        let wait = self.waits.next().unwrap_or(self.max);
        round_to_timer_resolution(wait).min(self.max)
    }
}

/// Rounds a wait of a millisecond or more to whole milliseconds, the
/// resolution of tokio's timer.
///
/// `backon` multiplies in `f32`, so a doubled 100 ms comes out as
/// 200.000003 ms, which tokio would round up to 201 ms.
fn round_to_timer_resolution(wait: Duration) -> Duration {
    const MILLI: u128 = 1_000_000;
    let nanos = wait.as_nanos();
    if nanos < MILLI {
        return wait;
    }
    let millis = (nanos + MILLI / 2) / MILLI;
    u64::try_from(millis).map_or(Duration::MAX, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    fn waits(backoff: Backoff, count: usize) -> Vec<Duration> {
        let mut schedule = backoff.schedule();
        (0..count).map(|_| schedule.next_wait()).collect()
    }

    #[test]
    fn waits_double_without_jitter() {
        let backoff = Backoff::new(100 * MS, 10_000 * MS, false);

        assert_eq!(
            waits(backoff, 5),
            vec![100 * MS, 200 * MS, 400 * MS, 800 * MS, 1_600 * MS]
        );
    }

    #[test]
    fn waits_stop_growing_at_max() {
        let backoff = Backoff::new(100 * MS, 500 * MS, false);

        let waits = waits(backoff, 200);

        assert_eq!(waits[..4], [100 * MS, 200 * MS, 400 * MS, 500 * MS]);
        assert!(waits[4..].iter().all(|wait| *wait == 500 * MS));
    }

    #[test]
    fn float_noise_is_rounded_away() {
        assert_eq!(
            super::round_to_timer_resolution(Duration::from_nanos(200_000_003)),
            200 * MS
        );
        assert_eq!(
            super::round_to_timer_resolution(Duration::from_micros(250)),
            Duration::from_micros(250)
        );
        assert_eq!(
            super::round_to_timer_resolution(Duration::MAX),
            Duration::MAX
        );
    }

    #[test]
    fn huge_max_saturates_without_panic() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::MAX, true);

        let waits = waits(backoff, 200);

        assert!(waits
            .windows(2)
            .all(|pair| pair[0] <= pair[1] || pair[1] > pair[0] / 2));
    }

    #[test]
    fn jittered_waits_stay_within_bounds() {
        let backoff = Backoff::new(100 * MS, 1_000 * MS, true);

        for _ in 0..50 {
            let waits = waits(backoff, 8);
            for (retry, wait) in waits.iter().enumerate() {
                let unjittered = (100 * MS * 2u32.pow(retry as u32)).min(1_000 * MS);
                assert!(
                    *wait >= unjittered,
                    "retry {retry}: {wait:?} below {unjittered:?}"
                );
                assert!(
                    *wait <= (2 * unjittered).min(1_000 * MS),
                    "retry {retry}: {wait:?} above twice {unjittered:?} or the max"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_first_waits() {
        let first_waits: Vec<Duration> = (0..20)
            .map(|seed| waits(Backoff::new(100 * MS, 10_000 * MS, true).seeded(seed), 1)[0])
            .collect();

        let spread = first_waits
            .iter()
            .max()
            .unwrap()
            .saturating_sub(*first_waits.iter().min().unwrap());
        assert!(
            spread > 20 * MS,
            "first waits {first_waits:?} are too close"
        );
    }
}
