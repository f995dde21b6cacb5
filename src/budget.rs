//! The retry budget: retries may add only a share of the load on a host.

use std::time::Duration;

use tokio::time::Instant;

use crate::config_error::ConfigError;
use crate::host_table::HostTable;

const DEFAULT_RATIO: f64 = 0.2;
const DEFAULT_MIN_PER_SECOND: u32 = 10;

/// The budget holds at most this many seconds of the floor, and at least
/// this many retries.
const CAPACITY_SECONDS: f64 = 10.0;

/// Limits retries to a share of the calls to each host and port, so that
/// during an outage the retries of many calls do not multiply the load.
///
/// Each call adds `ratio` of a retry to its host's budget, and the budget
/// also refills by `min_per_second` retries each second, so that a host with
/// few calls can still retry. Each retry spends one. A retry that finds the
/// budget empty is not made, and the call ends with
/// [`StopReason::Budget`](crate::StopReason::Budget). The budget of a host
/// starts with one second of the floor and holds at most ten seconds of it,
/// or ten retries, whichever is more. All clones of a middleware share one
/// budget per host and port.
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
    /// plus `min_per_second` retries each second.
    ///
    /// [`TimeoutMiddlewareBuilder::build`](crate::TimeoutMiddlewareBuilder::build)
    /// rejects a ratio that is negative, above 10 or not a number.
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
                    "retry_budget ratio {} is not between 0 and 10; use the share of calls that retries may add, such as 0.2",
                    self.ratio
                ),
            ));
        }
        Ok(())
    }

    fn capacity(&self) -> f64 {
        (f64::from(self.min_per_second) * CAPACITY_SECONDS).max(CAPACITY_SECONDS)
    }
}

/// The budgets of all hosts of one middleware.
#[derive(Debug)]
pub(crate) struct Budgets {
    config: RetryBudget,
    hosts: HostTable<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// `None` until the first call, when the bucket gets its starting tokens.
    state: Option<(f64, Instant)>,
}

impl Budgets {
    pub(crate) fn new(config: RetryBudget) -> Self {
        Budgets {
            config,
            hosts: HostTable::default(),
        }
    }

    /// Adds a call's share of a retry to the budget of `host` and `port`.
    pub(crate) fn deposit(&self, host: &str, port: Option<u16>, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let config = self.config;
        self.hosts.update(host, port, |bucket| {
            let tokens = bucket.refill(&config, now);
            bucket.state = Some(((tokens + config.ratio).min(config.capacity()), now));
        });
    }

    /// Spends one retry from the budget of `host` and `port`; returns
    /// `false`, spending nothing, when less than one is left.
    pub(crate) fn try_withdraw(&self, host: &str, port: Option<u16>, now: Instant) -> bool {
        if !self.config.enabled {
            return true;
        }
        let config = self.config;
        self.hosts
            .update(host, port, |bucket| {
                let tokens = bucket.refill(&config, now);
                let allowed = tokens >= 1.0;
                let left = if allowed { tokens - 1.0 } else { tokens };
                bucket.state = Some((left, now));
                allowed
            })
            .unwrap_or(true)
    }
}

impl Bucket {
    /// Returns the tokens at `now`: the floor's refill since the last update,
    /// capped, or one second of the floor for a new bucket.
    fn refill(&self, config: &RetryBudget, now: Instant) -> f64 {
        let floor = f64::from(config.min_per_second);
        match self.state {
            None => floor,
            Some((tokens, updated)) => {
                let elapsed = now.saturating_duration_since(updated);
                (tokens + floor * seconds(elapsed)).min(config.capacity())
            }
        }
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "api.test";

    fn spend_all(budgets: &Budgets, now: Instant) -> u32 {
        let mut spent = 0;
        while budgets.try_withdraw(HOST, None, now) {
            spent += 1;
            assert!(spent < 10_000, "the budget never ran out");
        }
        spent
    }

    #[test]
    fn new_host_starts_with_one_second_of_floor() {
        let budgets = Budgets::new(RetryBudget::new(0.2, 10));
        let now = Instant::now();
        budgets.deposit(HOST, None, now);

        assert_eq!(spend_all(&budgets, now), 10);
    }

    #[test]
    fn calls_add_their_share() {
        let budgets = Budgets::new(RetryBudget::new(0.2, 0));
        let now = Instant::now();

        for _ in 0..100 {
            budgets.deposit(HOST, None, now);
        }

        assert_eq!(
            spend_all(&budgets, now),
            10,
            "100 calls at 0.2, capped at 10"
        );
    }

    #[test]
    fn share_limits_retries_under_load() {
        let budgets = Budgets::new(RetryBudget::new(0.2, 0));
        let now = Instant::now();
        let mut retries = 0;

        for _ in 0..1_000 {
            budgets.deposit(HOST, None, now);
            for _ in 0..3 {
                if budgets.try_withdraw(HOST, None, now) {
                    retries += 1;
                }
            }
        }

        assert!(retries <= 200, "{retries} retries for 1000 calls");
        assert!(retries >= 190, "{retries} retries for 1000 calls");
    }

    #[test]
    fn floor_refills_over_time() {
        let budgets = Budgets::new(RetryBudget::new(0.0, 10));
        let start = Instant::now();
        budgets.deposit(HOST, None, start);
        spend_all(&budgets, start);

        let later = start + Duration::from_millis(500);

        assert_eq!(spend_all(&budgets, later), 5);
    }

    #[test]
    fn floor_refill_is_capped() {
        let budgets = Budgets::new(RetryBudget::new(0.0, 10));
        let start = Instant::now();
        budgets.deposit(HOST, None, start);

        let much_later = start + Duration::from_secs(3_600);

        assert_eq!(spend_all(&budgets, much_later), 100);
    }

    #[test]
    fn hosts_have_separate_budgets() {
        let budgets = Budgets::new(RetryBudget::new(0.0, 1));
        let now = Instant::now();
        budgets.deposit(HOST, None, now);
        budgets.deposit("other.test", None, now);
        spend_all(&budgets, now);

        assert!(budgets.try_withdraw("other.test", None, now));
    }

    #[test]
    fn unlimited_budget_always_allows() {
        let budgets = Budgets::new(RetryBudget::unlimited());
        let now = Instant::now();

        assert!((0..1_000).all(|_| budgets.try_withdraw(HOST, None, now)));
    }

    #[test]
    fn invalid_ratios_are_rejected() {
        for ratio in [-0.1, 10.5, f64::NAN, f64::INFINITY] {
            let err = RetryBudget::new(ratio, 10).validate().unwrap_err();

            assert_eq!(err.setting(), "retry_budget");
            assert!(err.to_string().contains("such as 0.2"), "{err}");
        }
    }
}
