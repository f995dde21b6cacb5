//! The retry budget: retries may add only a share of the load on a host.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config_error::ConfigError;

const DEFAULT_RATIO: f64 = 0.2;
const DEFAULT_MIN_PER_SECOND: u32 = 10;

/// The share earned by calls is capped at this many seconds of the floor,
/// and at least this many retries.
const CAPACITY_SECONDS: f64 = 10.0;

/// Limits retries to a share of the calls to each host and port, so that
/// during an outage the retries of many calls do not multiply the load.
///
/// Each call adds `ratio` of a retry to its host's budget, and each retry
/// spends one, so that retries add at most that share to the calls. So that
/// a host with few calls can still retry, the budget allows at least
/// `min_per_second` retries each second: the floor is a minimum, not an
/// addition to the share. A retry that finds the budget empty is not made,
/// and the call ends with
/// [`StopReason::Budget`](crate::StopReason::Budget). The share saved up by
/// calls is capped at ten seconds of the floor, or ten retries, whichever is
/// more. All clones of a middleware share one budget per host and port.
///
/// A middleware keeps the budgets of 1 024 hosts and ports, or of twice as
/// many as calls in flight used at once when that is more. When it meets
/// more, it removes the ones that no call in flight is using, and their
/// budgets start anew.
///
/// # Default
///
/// A ratio of 0.2 (retries add at most 20 % to the calls) and a floor of 10
/// retries per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    enabled: bool,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(DEFAULT_RATIO, DEFAULT_MIN_PER_SECOND)
    }
}

impl RetryBudget {
    /// Returns a budget that allows `ratio` retries per call, such as 0.2,
    /// or at least `min_per_second` retries each second, whichever is more.
    ///
    /// [`TimeoutMiddlewareBuilder::build`](crate::TimeoutMiddlewareBuilder::build)
    /// rejects a ratio that is negative, above 10 or not a number, and a
    /// budget with a ratio of 0 and a floor of 0, which allows no retry.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        RetryBudget {
            ratio,
            min_per_second,
            enabled: true,
        }
    }

    /// Returns a budget that never stops a retry.
    pub fn unlimited() -> Self {
        RetryBudget {
            enabled: false,
            ..RetryBudget::default()
        }
    }

    /// Returns the retries allowed per call.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Returns the retries allowed each second whatever the calls.
    pub fn min_per_second(&self) -> u32 {
        self.min_per_second
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self.ratio.is_finite() || !(0.0..=10.0).contains(&self.ratio) {
            return Err(ConfigError::new(
                "retry_budget",
                format!(
                    "retry_budget ratio {:?} is not between 0 and 10; use the share of calls that retries may add, such as 0.2",
                    self.ratio
                ),
            ));
        }
        if self.enabled && self.ratio == 0.0 && self.min_per_second == 0 {
            return Err(ConfigError::new(
                "retry_budget",
                "retry_budget with ratio 0 and min_per_second 0 allows no retry at all; \
                 use max_retries(0) to turn retries off, or allow a ratio such as 0.2"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn capacity(&self) -> f64 {
        (f64::from(self.min_per_second) * CAPACITY_SECONDS).max(CAPACITY_SECONDS)
    }
}

/// The retry budget of one middleware, applied to the bucket of each host
/// and port.
#[derive(Debug)]
pub(crate) struct Budgets {
    config: RetryBudget,
}

/// The retries that one host and port may still make.
#[derive(Debug, Default)]
pub(crate) struct HostBudget {
    bucket: Mutex<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Retries earned by calls, at `ratio` per call.
    earned: f64,
    /// Retries of the floor, accrued at `min_per_second` and held for at
    /// most one second. Each call's share of a retry first pays off this
    /// part, so the floor is a minimum, not an addition to the share.
    floor: f64,
    /// `None` until the first call, when the floor starts with one second.
    updated: Option<Instant>,
}

impl Budgets {
    pub(crate) fn new(config: RetryBudget) -> Self {
        Budgets { config }
    }

    /// Adds a call's share of a retry to the budget of its host.
    pub(crate) fn deposit(&self, host: &HostBudget, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let config = self.config;
        let mut bucket = host.lock();
        bucket.accrue_floor(&config, now);
        bucket.earned = (bucket.earned + config.ratio).min(config.capacity());
        bucket.floor = (bucket.floor - config.ratio).max(0.0);
    }

    /// Spends one retry from the budget of a host. Returns `false`, spending
    /// nothing, when less than one is left.
    pub(crate) fn try_withdraw(&self, host: &HostBudget, now: Instant) -> bool {
        if !self.config.enabled {
            return true;
        }
        let config = self.config;
        let mut bucket = host.lock();
        bucket.accrue_floor(&config, now);
        if bucket.earned + bucket.floor < 1.0 {
            return false;
        }
        let from_earned = bucket.earned.min(1.0);
        bucket.earned -= from_earned;
        bucket.floor -= 1.0 - from_earned;
        true
    }
}

impl HostBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A bucket is two numbers and a time, valid whatever panicked while
        // holding the lock.
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Bucket {
    /// Adds the floor's retries since the last update, up to one second's
    /// worth; a new bucket starts with one second's worth.
    fn accrue_floor(&mut self, config: &RetryBudget, now: Instant) {
        let per_second = f64::from(config.min_per_second);
        self.floor = match self.updated {
            None => per_second,
            Some(updated) => {
                let elapsed = now.saturating_duration_since(updated);
                (self.floor + per_second * seconds(elapsed)).min(per_second)
            }
        };
        self.updated = Some(now);
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend_all(budgets: &Budgets, host: &HostBudget, now: Instant) -> u32 {
        let mut spent = 0;
        while budgets.try_withdraw(host, now) {
            spent += 1;
            assert!(spent < 10_000, "the budget never ran out");
        }
        spent
    }

    #[test]
    fn new_host_starts_with_one_second_of_floor() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.2, 10));
        let now = Instant::now();
        budgets.deposit(&host, now);

        assert_eq!(spend_all(&budgets, &host, now), 10);
    }

    #[test]
    fn calls_add_their_share() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.2, 0));
        let now = Instant::now();

        for _ in 0..100 {
            budgets.deposit(&host, now);
        }

        assert_eq!(
            spend_all(&budgets, &host, now),
            10,
            "100 calls at 0.2, capped at 10"
        );
    }

    #[test]
    fn share_limits_retries_under_load() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.2, 0));
        let now = Instant::now();
        let mut retries = 0;

        for _ in 0..1_000 {
            budgets.deposit(&host, now);
            for _ in 0..3 {
                if budgets.try_withdraw(&host, now) {
                    retries += 1;
                }
            }
        }

        assert!(retries <= 200, "{retries} retries for 1000 calls");
        assert!(retries >= 190, "{retries} retries for 1000 calls");
    }

    #[test]
    fn floor_refills_over_time() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.0, 10));
        let start = Instant::now();
        budgets.deposit(&host, start);
        spend_all(&budgets, &host, start);

        let later = start + Duration::from_millis(500);

        assert_eq!(spend_all(&budgets, &host, later), 5);
    }

    #[test]
    fn floor_holds_one_second() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.0, 10));
        let start = Instant::now();
        budgets.deposit(&host, start);

        let much_later = start + Duration::from_secs(3_600);

        assert_eq!(spend_all(&budgets, &host, much_later), 10);
    }

    #[test]
    fn floor_is_minimum_not_addition() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.2, 10));
        let start = Instant::now();
        let mut retries = 0;

        // 1000 calls a second for 10 seconds, each wanting 3 retries.
        for millisecond in 0..10_000u64 {
            let now = start + Duration::from_millis(millisecond);
            budgets.deposit(&host, now);
            for _ in 0..3 {
                if budgets.try_withdraw(&host, now) {
                    retries += 1;
                }
            }
        }

        // The share alone allows 2000; the first second's floor adds at most 10.
        assert!(retries <= 2_010, "{retries} retries for 10000 calls");
        assert!(retries >= 1_990, "{retries} retries for 10000 calls");
    }

    #[test]
    fn floor_allows_retries_of_rare_calls() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::new(0.2, 10));
        let start = Instant::now();
        let mut retries = 0;

        // One call a second for 10 seconds, each wanting 3 retries.
        for second in 0..10u64 {
            let now = start + Duration::from_secs(second);
            budgets.deposit(&host, now);
            for _ in 0..3 {
                if budgets.try_withdraw(&host, now) {
                    retries += 1;
                }
            }
        }

        assert_eq!(retries, 30);
    }

    #[test]
    fn unlimited_budget_always_allows() {
        let host = HostBudget::default();
        let budgets = Budgets::new(RetryBudget::unlimited());
        let now = Instant::now();

        assert!((0..1_000).all(|_| budgets.try_withdraw(&host, now)));
    }

    #[test]
    fn invalid_ratios_are_rejected() {
        for ratio in [-0.1, 10.5, f64::NAN, f64::INFINITY] {
            let err = RetryBudget::new(ratio, 10).validate().unwrap_err();

            assert_eq!(err.setting(), "retry_budget");
            assert!(err.to_string().contains("such as 0.2"), "{err}");
        }
    }

    #[test]
    fn huge_ratio_is_shown_in_short_form() {
        let err = RetryBudget::new(1e308, 10).validate().unwrap_err();

        assert!(
            err.to_string().contains("retry_budget ratio 1e308 is not"),
            "{err}"
        );
    }

    #[test]
    fn budget_without_any_retry_is_rejected() {
        let err = RetryBudget::new(0.0, 0).validate().unwrap_err();

        assert_eq!(err.setting(), "retry_budget");
        assert!(err.to_string().contains("use max_retries(0)"), "{err}");
    }

    #[test]
    fn zero_ratio_with_a_floor_is_valid() {
        let valid = RetryBudget::new(0.0, 1).validate();

        assert!(valid.is_ok(), "{valid:?}");
    }
}
