use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::body::BodySettings;
use crate::config_error::ConfigError;
use crate::format::DisplayDuration;
use crate::middleware::{Config, TimeoutMiddleware};

const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(90);
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Configures a [`TimeoutMiddleware`].
///
/// Setters never fail: [`build`](Self::build) checks the whole configuration
/// once and returns a [`ConfigError`] that names the invalid value.
///
/// # Default
///
/// | setting | default |
/// |---|---|
/// | [`attempt_timeout`](Self::attempt_timeout) | 30 s |
/// | [`total_timeout`](Self::total_timeout) | 90 s |
/// | [`max_retries`](Self::max_retries) | 3 (up to 4 attempts) |
/// | [`initial_backoff`](Self::initial_backoff) | 100 ms |
/// | [`max_backoff`](Self::max_backoff) | 10 s |
/// | [`jitter`](Self::jitter) | on |
/// | [`max_retry_after`](Self::max_retry_after) | 60 s |
/// | [`retry_non_idempotent`](Self::retry_non_idempotent) | off |
/// | [`response_header_timeout`](Self::response_header_timeout) | off |
/// | [`body_idle_timeout`](Self::body_idle_timeout) | off |
/// | [`min_body_throughput`](Self::min_body_throughput) | off |
/// | [`buffer_body`](Self::buffer_body) | off |
/// | [`max_buffered_body_len`](Self::max_buffered_body_len) | 8 MiB |
/// | [`track_request_body`](Self::track_request_body) | on |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use reqwest_timeout::TimeoutMiddleware;
///
/// let middleware = TimeoutMiddleware::builder()
///     .attempt_timeout(Duration::from_secs(2))
///     .total_timeout(Duration::from_secs(10))
///     .max_retries(2)
///     .build()?;
/// # Ok::<(), reqwest_timeout::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutMiddlewareBuilder {
    attempt_timeout: Duration,
    total_timeout: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: bool,
    max_retry_after: Duration,
    retry_non_idempotent: bool,
    /// Set by the setters in `body::settings`.
    pub(crate) body: BodySettings,
}

impl Default for TimeoutMiddlewareBuilder {
    fn default() -> Self {
        TimeoutMiddlewareBuilder {
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            jitter: true,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            retry_non_idempotent: false,
            body: BodySettings::default(),
        }
    }
}

impl TimeoutMiddlewareBuilder {
    /// Sets the time limit of one attempt.
    ///
    /// The attempt timeout starts when the middleware hands an attempt to the
    /// rest of the chain and ends when the response body has been read to the
    /// end, so it covers DNS, connect, TLS, sending the request, waiting for
    /// the headers and reading the body. Near the total deadline an attempt
    /// gets less: the time left. A request's own
    /// [`timeout`](reqwest::RequestBuilder::timeout), when shorter, wins.
    ///
    /// Default is 30 seconds.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Sets the time limit of the whole call.
    ///
    /// The total timeout starts when the call enters the middleware and ends
    /// when the last attempt's response body has been read, so it covers
    /// every attempt and every wait between attempts. No wait runs past it
    /// and no attempt starts after it.
    ///
    /// Default is 90 seconds.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// Sets how many times a failed attempt may be retried.
    ///
    /// This counts retries, not attempts: 3 retries means up to 4 attempts.
    /// `0` disables retries. The total timeout can end the call before the
    /// retries run out.
    ///
    /// Default is 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the wait before the first retry.
    ///
    /// Each later wait doubles, up to [`max_backoff`](Self::max_backoff).
    ///
    /// Default is 100 milliseconds.
    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = wait;
        self
    }

    /// Sets the longest wait between two attempts, before jitter.
    ///
    /// Default is 10 seconds.
    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.max_backoff = wait;
        self
    }

    /// Turns random jitter of the backoff waits on or off.
    ///
    /// With jitter on, each wait gets a random extra of up to the computed
    /// wait again, capped at [`max_backoff`](Self::max_backoff), so that many
    /// clients that failed at the same moment do not retry at the same
    /// moment. Turn it off for a fixed schedule.
    ///
    /// Default is on.
    pub fn jitter(mut self, enabled: bool) -> Self {
        self.jitter = enabled;
        self
    }

    /// Sets the longest `Retry-After` wait the middleware honours.
    ///
    /// A `429` or `503` response whose `Retry-After` asks for a longer wait,
    /// or for a wait past the total deadline, is returned to the caller at
    /// once instead of being retried.
    ///
    /// Default is 60 seconds.
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Allows sending `POST`, `PATCH` and other non-idempotent requests
    /// again after a failure that may have reached the server.
    ///
    /// Turn it on only when the server deduplicates requests. Without it, such
    /// a request is sent again only when the failure proves that the server
    /// never received it (a DNS failure, a refused connection, a connect
    /// timeout) or when it carries an `Idempotency-Key` header.
    ///
    /// Default is off.
    pub fn retry_non_idempotent(mut self, allowed: bool) -> Self {
        self.retry_non_idempotent = allowed;
        self
    }

    /// Checks the configuration and builds the middleware.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] when a duration is zero, when the attempt
    /// timeout is longer than the total timeout, or when the initial backoff
    /// is longer than the maximum backoff. Also returns one when the response
    /// header or body idle timeout is longer than the attempt timeout, or when
    /// another body setting is invalid.
    pub fn build(self) -> Result<TimeoutMiddleware, ConfigError> {
        reject_zero("attempt_timeout", self.attempt_timeout, "30s")?;
        reject_zero("total_timeout", self.total_timeout, "90s")?;
        reject_zero("initial_backoff", self.initial_backoff, "100ms")?;
        reject_zero("max_backoff", self.max_backoff, "10s")?;
        reject_zero("max_retry_after", self.max_retry_after, "60s")?;
        if self.attempt_timeout > self.total_timeout {
            return Err(ConfigError::new(
                "attempt_timeout",
                format!(
                    "attempt_timeout {} is longer than total_timeout {}; \
                     lower attempt_timeout or raise total_timeout",
                    DisplayDuration(self.attempt_timeout),
                    DisplayDuration(self.total_timeout),
                ),
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::new(
                "initial_backoff",
                format!(
                    "initial_backoff {} is longer than max_backoff {}; \
                     lower initial_backoff or raise max_backoff",
                    DisplayDuration(self.initial_backoff),
                    DisplayDuration(self.max_backoff),
                ),
            ));
        }
        self.body.validate(self.attempt_timeout)?;

        let config = Config {
            attempt_timeout: self.attempt_timeout,
            total_timeout: self.total_timeout,
            max_retries: self.max_retries,
            backoff: Backoff::new(self.initial_backoff, self.max_backoff, self.jitter),
            max_retry_after: self.max_retry_after,
            retry_non_idempotent: self.retry_non_idempotent,
            body: self.body,
        };
        Ok(TimeoutMiddleware::from_config(Arc::new(config)))
    }
}

fn reject_zero(setting: &'static str, value: Duration, example: &str) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(
            setting,
            format!("{setting} is zero; set a positive duration such as {example}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        let built = TimeoutMiddlewareBuilder::default().build();

        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[test]
    fn zero_attempt_timeout_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::ZERO)
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "attempt_timeout");
        assert_eq!(
            err.to_string(),
            "invalid attempt_timeout: attempt_timeout is zero; set a positive duration such as 30s"
        );
    }

    #[test]
    fn every_zero_duration_is_rejected() {
        type Setter = fn(TimeoutMiddlewareBuilder, Duration) -> TimeoutMiddlewareBuilder;
        let setters: [(&str, Setter); 5] = [
            ("attempt_timeout", TimeoutMiddlewareBuilder::attempt_timeout),
            ("total_timeout", TimeoutMiddlewareBuilder::total_timeout),
            ("initial_backoff", TimeoutMiddlewareBuilder::initial_backoff),
            ("max_backoff", TimeoutMiddlewareBuilder::max_backoff),
            ("max_retry_after", TimeoutMiddlewareBuilder::max_retry_after),
        ];

        for (name, set) in setters {
            let err = set(TimeoutMiddlewareBuilder::default(), Duration::ZERO)
                .build()
                .unwrap_err();

            assert_eq!(err.setting(), name);
            assert!(err.to_string().contains("is zero"), "{err}");
        }
    }

    #[test]
    fn attempt_longer_than_total_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_secs(60))
            .total_timeout(Duration::from_secs(30))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "attempt_timeout");
        assert!(err.to_string().contains("attempt_timeout 1m"), "{err}");
        assert!(err.to_string().contains("30s"), "{err}");
        assert!(err.to_string().contains("raise total_timeout"), "{err}");
    }

    #[test]
    fn initial_backoff_longer_than_max_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .initial_backoff(Duration::from_secs(5))
            .max_backoff(Duration::from_secs(1))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "initial_backoff");
        assert!(err.to_string().contains("5s"), "{err}");
        assert!(err.to_string().contains("max_backoff 1s"), "{err}");
    }

    #[test]
    fn huge_durations_build_without_panic() {
        let built = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::MAX)
            .total_timeout(Duration::MAX)
            .max_backoff(Duration::MAX)
            .max_retry_after(Duration::MAX)
            .max_retries(u32::MAX)
            .build();

        assert!(built.is_ok());
    }
}
