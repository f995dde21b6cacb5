use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::body::BodySettings;
use crate::budget::{Budgets, RetryBudget};
use crate::config_error::{ConfigError, Resolved, ValueSource};
use crate::deadline::MIN_ATTEMPT_TIME;
use crate::format::DisplayDuration;
use crate::host_table::HostTable;
use crate::middleware::{Config, TimeoutMiddleware};

const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(90);
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const MAX_DERIVED_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures a [`TimeoutMiddleware`].
///
/// Setters never fail: [`build`](Self::build) checks the whole configuration
/// once and returns a [`ConfigError`] that names the invalid value.
///
/// # Default
///
/// | setting | default |
/// |---|---|
/// | [`attempt_timeout`](Self::attempt_timeout) | 30 s, or the total timeout when that is shorter |
/// | [`total_timeout`](Self::total_timeout) | 90 s |
/// | [`max_retries`](Self::max_retries) | 3 (up to 4 attempts) |
/// | [`initial_backoff`](Self::initial_backoff) | 100 ms, or a tenth of a total timeout under 1 s |
/// | [`max_backoff`](Self::max_backoff) | 10 s |
/// | [`jitter`](Self::jitter) | on |
/// | [`max_retry_after`](Self::max_retry_after) | 60 s |
/// | [`retry_non_idempotent`](Self::retry_non_idempotent) | off |
/// | [`active_probe`](Self::active_probe) | off |
/// | [`buffer_request_streams`](Self::buffer_request_streams) | 0 (off) |
/// | [`retry_budget`](Self::retry_budget) | 20 % of the calls, or at least 10 retries per second, per host |
/// | [`connect_timeout`](Self::connect_timeout) | a third of the attempt timeout, from 1 ms to 10 s, and unknown to the middleware until [`configure_client`](TimeoutMiddleware::configure_client) applies it |
/// | [`response_header_timeout`](Self::response_header_timeout) | off |
/// | [`body_idle_timeout`](Self::body_idle_timeout) | off |
/// | [`min_body_throughput`](Self::min_body_throughput) | off |
/// | [`buffer_response_body`](Self::buffer_response_body) | off |
/// | [`max_buffered_response_len`](Self::max_buffered_response_len) | 8 MiB |
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
    /// `None` until set, so that `build` can lower the default to a shorter
    /// total timeout.
    attempt_timeout: Option<Duration>,
    total_timeout: Duration,
    max_retries: u32,
    /// `None` until set, so that `build` can lower the default to a short
    /// total timeout.
    initial_backoff: Option<Duration>,
    max_backoff: Duration,
    jitter: bool,
    max_retry_after: Duration,
    retry_non_idempotent: bool,
    connect_timeout: Option<Duration>,
    active_probe: bool,
    retry_budget: RetryBudget,
    buffer_request_streams: usize,
    /// Set by the setters in `body::settings`.
    pub(crate) body: BodySettings,
}

impl Default for TimeoutMiddlewareBuilder {
    fn default() -> Self {
        TimeoutMiddlewareBuilder {
            attempt_timeout: None,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff: None,
            max_backoff: DEFAULT_MAX_BACKOFF,
            jitter: true,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            retry_non_idempotent: false,
            connect_timeout: None,
            active_probe: false,
            retry_budget: RetryBudget::default(),
            buffer_request_streams: 0,
            body: BodySettings::default(),
        }
    }
}

impl TimeoutMiddlewareBuilder {
    /// Sets the time limit of one attempt.
    ///
    /// The attempt timeout starts when the middleware hands an attempt to the
    /// rest of the chain and ends when the response body has been read to the
    /// end. It covers DNS, connect, TLS, sending the request, waiting for the
    /// headers and reading the body. Near the total deadline an attempt
    /// gets less: the time left. A request's own
    /// [`timeout`](reqwest::RequestBuilder::timeout), when shorter, wins.
    ///
    /// A value set here that is longer than the
    /// [`total_timeout`](Self::total_timeout) makes [`build`](Self::build)
    /// fail. An attempt timeout in [`RequestOverrides`](crate::RequestOverrides)
    /// is never rejected for that. Its attempt gets the time left before the
    /// deadline instead.
    ///
    /// Default is 30 seconds, or the total timeout when that is shorter.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets the time limit of the whole call.
    ///
    /// The total timeout starts when the call enters the middleware and ends
    /// when the last attempt's response body has been read, so it covers
    /// every attempt and every wait between attempts. No wait runs past it
    /// and no attempt starts after it.
    ///
    /// A total timeout shorter than 30 seconds also becomes the default
    /// [`attempt_timeout`](Self::attempt_timeout), which lowers the default
    /// [`connect_timeout`](Self::connect_timeout) with it. An attempt that
    /// runs into the attempt timeout then uses up the whole deadline, so
    /// only failures that end sooner are retried, such as a refused
    /// connection, a `503`, or a connect timeout of a client built through
    /// [`TimeoutMiddleware::configure_client`]. Set an attempt timeout below
    /// the total timeout to leave time for retrying the other timeouts too. An attempt timeout set explicitly must not be longer
    /// than the total timeout.
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
    /// A retry starts only when at least 10 ms are left after its wait.
    /// [`build`](Self::build) therefore rejects a zero wait, and one that
    /// leaves less than 10 ms of the [`total_timeout`](Self::total_timeout),
    /// because no backoff wait could then be followed by an attempt. Only
    /// the retries that a `Retry-After` header times could start. A total
    /// timeout in
    /// [`RequestOverrides`](crate::RequestOverrides) is not part of that
    /// check.
    ///
    /// Default is 100 milliseconds, or a tenth of the total timeout when
    /// that is shorter, so that a short `total_timeout` alone still leaves
    /// room for retries.
    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = Some(wait);
        self
    }

    /// Sets the longest wait between two attempts, before jitter.
    ///
    /// [`build`](Self::build) rejects a zero wait, and one shorter than the
    /// [`initial_backoff`](Self::initial_backoff).
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
    /// A `429`, `503` or `413` response whose `Retry-After` requests a
    /// longer wait, or a wait past the total deadline, is returned to the
    /// caller at once instead of being retried. A shorter `Retry-After`
    /// sets the least wait: the middleware waits for the longer of it and
    /// the backoff, so that a value of zero or a date in the past does not
    /// send the retries at once. When the backoff would end too close to the
    /// deadline, the middleware waits for the server's value alone, and
    /// returns the response when that value is zero.
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

    /// Sets the connect timeout that
    /// [`TimeoutMiddleware::configure_client`] applies to a
    /// `reqwest::ClientBuilder`, and lets the middleware count on the client
    /// having it.
    ///
    /// The middleware cannot change the client it wraps, so the value takes
    /// effect only on a client built through `configure_client`, or one
    /// given the same value with [`reqwest::ClientBuilder::connect_timeout`].
    /// The connect timeout starts when the client begins to open a
    /// connection (DNS included) and ends when the connection, TLS included,
    /// is established. Knowing it lets errors tell a stalled connect from a
    /// stalled server. It must be shorter than the attempt timeout.
    ///
    /// Default is a third of the attempt timeout, at most 10 seconds, which
    /// the middleware counts on only once `configure_client` has applied it.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets the retry budget, which limits retries to a share of the calls to
    /// each host; [`RetryBudget::unlimited`] turns it off.
    ///
    /// Default is [`RetryBudget::default`]: retries add at most 20 % to the
    /// calls, or at least 10 retries per second.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.retry_budget = budget;
        self
    }

    /// Reads streamed request bodies of up to `max_bytes` into memory
    /// before the first attempt, so that such a request can be sent again.
    ///
    /// A request whose body is a stream cannot be cloned, so it is sent once
    /// and a failure ends the call with
    /// [`StopReason::OneShotBody`](crate::StopReason::OneShotBody). With this
    /// setting, a stream that ends within `max_bytes` becomes a plain body.
    /// A longer stream, one with trailers, or one that does not end within
    /// half the attempt timeout, is sent once as before, with nothing lost.
    /// A stream that fails while it is read is sent up to its error, so the
    /// request fails as it would without this setting. Reading the stream
    /// counts against the total timeout.
    ///
    /// Default is 0, which turns buffering off.
    pub fn buffer_request_streams(mut self, max_bytes: usize) -> Self {
        self.buffer_request_streams = max_bytes;
        self
    }

    /// Turns the active probe on or off.
    ///
    /// The probe runs when a call fails while resolving the host, connecting
    /// or in the TLS handshake, or when its error cannot rule out a stalled
    /// connect. It resolves the request's host and tries a bare TCP connect
    /// to each of its addresses on the request's port, sending nothing. The
    /// result, such as `127.0.0.1:8080 refused; [::1]:8080 timed out`, goes
    /// into the error. The probe runs within the time left before the total
    /// deadline, at most one attempt timeout. It targets the request's own
    /// host and port, or the address that failed when that is a redirect's
    /// target or a proxy. Its lookup uses the system resolver.
    ///
    /// With the probe off, a failed connect still leads to a smaller check
    /// for a `POST` or `PATCH` that may be sent again only if nothing reached
    /// the server. The middleware then resolves the request's host with the
    /// system resolver. After a connect timeout that names no address, it
    /// also tries a bare TCP connect to that host. A failed connect that
    /// names its address leads to the same lookup for any method, to tell
    /// whether a redirect sent the request elsewhere.
    ///
    /// Default is off.
    pub fn active_probe(mut self, enabled: bool) -> Self {
        self.active_probe = enabled;
        self
    }

    /// Checks the configuration and builds the middleware.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] when a duration is zero, a timeout is below
    /// 1 ms (the resolution of tokio's timer), or the retry budget's ratio is
    /// not between 0 and 10 or allows no retry at all (a ratio of 0 with a
    /// floor of 0). It also returns one when an attempt timeout set
    /// explicitly is longer than the total timeout, or the connect timeout is
    /// not shorter than the attempt timeout. An initial backoff that is set
    /// must leave at least 10 ms of the total timeout, and it must not be
    /// longer than the maximum backoff. The response header and body idle timeouts must not be
    /// longer than the attempt timeout, the minimum body throughput must
    /// first check the rate within it, and the other body settings must be
    /// valid.
    pub fn build(self) -> Result<TimeoutMiddleware, ConfigError> {
        // The total timeout comes first, because an attempt timeout left at
        // its default takes the total timeout's value when that is shorter.
        reject_zero("total_timeout", self.total_timeout, "90s")?;
        reject_below_timer_resolution("total_timeout", self.total_timeout)?;
        let attempt = resolve(
            "attempt_timeout",
            self.attempt_timeout,
            DEFAULT_ATTEMPT_TIMEOUT,
            self.total_timeout,
        );
        let attempt_timeout = attempt.value;
        reject_zero("attempt_timeout", attempt_timeout, "30s")?;
        reject_below_timer_resolution("attempt_timeout", attempt_timeout)?;
        // Left unset, the wait is at most a tenth of a short total timeout,
        // so that `total_timeout` alone builds.
        let backoff = resolve(
            "initial_backoff",
            self.initial_backoff,
            DEFAULT_INITIAL_BACKOFF,
            self.total_timeout / 10,
        );
        let initial_backoff = backoff.value;
        reject_zero("initial_backoff", initial_backoff, "100ms")?;
        reject_zero("max_backoff", self.max_backoff, "10s")?;
        reject_zero("max_retry_after", self.max_retry_after, "60s")?;
        if attempt_timeout > self.total_timeout {
            return Err(ConfigError::new(
                "attempt_timeout",
                format!(
                    "attempt_timeout {} is longer than total_timeout {}; \
                     lower attempt_timeout or raise total_timeout",
                    DisplayDuration(attempt_timeout),
                    DisplayDuration(self.total_timeout),
                ),
            ));
        }
        // A retry starts only when at least `MIN_ATTEMPT_TIME` is left after
        // its wait, so a longer wait could never be followed by an attempt.
        let backoff_never_fits = self
            .initial_backoff
            .is_some_and(|wait| wait.saturating_add(MIN_ATTEMPT_TIME) > self.total_timeout);
        if backoff_never_fits {
            return Err(ConfigError::new(
                "initial_backoff",
                format!(
                    "initial_backoff {} leaves less than {} of total_timeout {} for the \
                     attempt after it, so every backoff wait would end too close to the \
                     deadline; lower initial_backoff or raise total_timeout",
                    DisplayDuration(initial_backoff),
                    DisplayDuration(MIN_ATTEMPT_TIME),
                    DisplayDuration(self.total_timeout),
                ),
            ));
        }
        if initial_backoff > self.max_backoff {
            return Err(ConfigError::new(
                "initial_backoff",
                format!(
                    "{backoff} is longer than max_backoff {}; \
                     lower initial_backoff or raise max_backoff",
                    DisplayDuration(self.max_backoff),
                ),
            ));
        }
        self.body.validate(attempt)?;

        self.retry_budget.validate()?;
        if let Some(connect_timeout) = self.connect_timeout {
            reject_zero("connect_timeout", connect_timeout, "1s")?;
            reject_below_timer_resolution("connect_timeout", connect_timeout)?;
            if connect_timeout >= attempt_timeout {
                return Err(ConfigError::new(
                    "connect_timeout",
                    format!(
                        "connect_timeout {} is not shorter than {attempt}, so a stalled \
                         connect would end with the attempt timeout; lower connect_timeout",
                        DisplayDuration(connect_timeout),
                    ),
                ));
            }
        }
        // Never below tokio's 1 ms resolution, which an attempt timeout of
        // under 3 ms would give.
        let derived_connect_timeout = (attempt_timeout / 3)
            .min(MAX_DERIVED_CONNECT_TIMEOUT)
            .max(TIMER_RESOLUTION);

        let config = Config {
            attempt_timeout,
            total_timeout: self.total_timeout,
            max_retries: self.max_retries,
            backoff: Backoff::new(initial_backoff, self.max_backoff, self.jitter),
            max_retry_after: self.max_retry_after,
            retry_non_idempotent: self.retry_non_idempotent,
            connect_timeout: self.connect_timeout.unwrap_or(derived_connect_timeout),
            connect_timeout_known: AtomicBool::new(self.connect_timeout.is_some()),
            active_probe: self.active_probe,
            hosts: HostTable::default(),
            budgets: Budgets::new(self.retry_budget),
            buffer_request_streams: self.buffer_request_streams,
            body: self.body,
        };
        Ok(TimeoutMiddleware::from_config(Arc::new(config)))
    }
}

/// The resolution of tokio's timer, which counts whole milliseconds: no
/// shorter timeout can be kept.
pub(crate) const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Rejects a timeout below 1 ms. tokio's timer counts whole milliseconds, so
/// a shorter timeout cannot be kept, and a connect timeout derived as a third
/// of such an attempt timeout could be zero.
pub(crate) fn reject_below_timer_resolution(
    setting: &'static str,
    value: Duration,
) -> Result<(), ConfigError> {
    if value < TIMER_RESOLUTION {
        return Err(ConfigError::new(
            setting,
            format!(
                "{setting} {} is below 1ms, the resolution of tokio's timer; set at least 1ms",
                DisplayDuration(value)
            ),
        ));
    }
    Ok(())
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

/// Returns the value of a setting whose default is lowered to `ceiling`,
/// which follows the total timeout, when that is shorter, and where the
/// value came from.
fn resolve(
    name: &'static str,
    set: Option<Duration>,
    default: Duration,
    ceiling: Duration,
) -> Resolved {
    let (value, source) = match set {
        Some(value) => (value, ValueSource::Set),
        None if ceiling < default => (ceiling, ValueSource::FollowsTotal),
        None => (default, ValueSource::Default),
    };
    Resolved {
        name,
        value,
        source,
    }
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
    fn short_total_lowers_default_attempt() {
        let short = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let long = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(120))
            .build()
            .unwrap();

        assert_eq!(short.attempt_timeout(), Duration::from_secs(10));
        assert_eq!(long.attempt_timeout(), DEFAULT_ATTEMPT_TIMEOUT);
    }

    #[test]
    fn short_total_lowers_derived_connect_timeout() {
        let middleware = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(6))
            .build()
            .unwrap();

        assert_eq!(middleware.connect_timeout(), Duration::from_secs(2));
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
    fn initial_backoff_beyond_total_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .initial_backoff(Duration::from_secs(200))
            .max_backoff(Duration::from_secs(300))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "initial_backoff");
        assert_eq!(
            err.to_string(),
            "invalid initial_backoff: initial_backoff 3m20s leaves less than 10ms of \
             total_timeout 1m30s for the attempt after it, so every backoff wait would end \
             too close to the deadline; lower initial_backoff or raise total_timeout"
        );
    }

    #[test]
    fn default_backoff_above_max_is_named_as_default() {
        let err = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(5))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "initial_backoff");
        assert!(
            err.to_string()
                .contains("initial_backoff 10ms (the default for this total_timeout) is longer"),
            "{err}"
        );
    }

    #[test]
    fn unlowered_default_is_named_as_default() {
        let err = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(100))
            .connect_timeout(Duration::from_secs(40))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "connect_timeout");
        assert!(
            err.to_string()
                .contains("not shorter than attempt_timeout 30s (the default), so"),
            "{err}"
        );
    }

    #[test]
    fn initial_backoff_without_room_to_retry_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(10))
            .initial_backoff(Duration::from_millis(9_995))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "initial_backoff");
        assert!(err.to_string().contains("total_timeout 10s"), "{err}");
    }

    #[test]
    fn initial_backoff_with_room_to_retry_builds() {
        let built = TimeoutMiddlewareBuilder::default()
            .total_timeout(Duration::from_secs(10))
            .initial_backoff(Duration::from_millis(9_990))
            .build();

        assert!(built.is_ok(), "{built:?}");
    }

    #[test]
    fn derived_connect_timeout_is_at_least_one_millisecond() {
        let middleware = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_millis(1))
            .build()
            .unwrap();

        assert_eq!(middleware.connect_timeout(), Duration::from_millis(1));
    }

    #[test]
    fn connect_timeout_not_below_attempt_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "connect_timeout");
        assert!(
            err.to_string()
                .contains("not shorter than attempt_timeout 2s"),
            "{err}"
        );
    }

    #[test]
    fn zero_connect_timeout_is_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .connect_timeout(Duration::ZERO)
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "connect_timeout");
    }

    #[test]
    fn connect_timeout_defaults_to_third_of_attempt() {
        let short = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let long = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_secs(90))
            .total_timeout(Duration::from_secs(90))
            .build()
            .unwrap();

        assert_eq!(short.connect_timeout(), Duration::from_secs(1));
        assert_eq!(long.connect_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn sub_millisecond_timeouts_are_rejected() {
        let err = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(Duration::from_nanos(1))
            .build()
            .unwrap_err();

        assert_eq!(err.setting(), "attempt_timeout");
        assert!(err.to_string().contains("below 1ms"), "{err}");
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
