//! The builder settings of the response header timeout, the body guard,
//! buffered mode and request body tracking, and their checks.

use std::fmt;
use std::time::Duration;

use crate::builder::{reject_below_timer_resolution, TimeoutMiddlewareBuilder};
use crate::config_error::{ConfigError, Resolved};
use crate::format::{DisplayDuration, DisplayRate};

const DEFAULT_MAX_BUFFERED_LEN: u64 = 8 * 1024 * 1024;
const DEFAULT_THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);
const DEFAULT_THROUGHPUT_GRACE: Duration = Duration::from_secs(5);
/// The shortest throughput window: the guard checks the rate every tenth of
/// the window, and tokio's timer counts whole milliseconds.
const MIN_THROUGHPUT_WINDOW: Duration = Duration::from_millis(10);

/// The settings that protect an exchange once the connection is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodySettings {
    pub(crate) response_header_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) min_throughput: Option<MinThroughput>,
    pub(crate) buffer: bool,
    pub(crate) max_buffered_len: u64,
    pub(crate) track_request_body: bool,
}

impl Default for BodySettings {
    fn default() -> Self {
        BodySettings {
            response_header_timeout: None,
            idle_timeout: None,
            min_throughput: None,
            buffer: false,
            max_buffered_len: DEFAULT_MAX_BUFFERED_LEN,
            track_request_body: true,
        }
    }
}

impl BodySettings {
    /// Checks the settings against each other and against the attempt
    /// timeout.
    pub(crate) fn validate(&self, attempt_timeout: Resolved) -> Result<(), ConfigError> {
        for (setting, timeout) in [
            ("response_header_timeout", self.response_header_timeout),
            ("body_idle_timeout", self.idle_timeout),
        ] {
            if let Some(timeout) = timeout {
                check_within_attempt(setting, timeout, attempt_timeout)?;
            }
        }
        if let Some(min) = self.min_throughput {
            min.validate(attempt_timeout)?;
        }
        if self.max_buffered_len == 0 {
            return Err(ConfigError::new(
                "max_buffered_response_len",
                "max_buffered_response_len is zero; set a positive size in bytes such as 8388608 (8 MiB)"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

fn check_within_attempt(
    setting: &'static str,
    timeout: Duration,
    attempt_timeout: Resolved,
) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::new(
            setting,
            format!("{setting} is zero; set a positive duration such as 10s"),
        ));
    }
    reject_below_timer_resolution(setting, timeout)?;
    if timeout > attempt_timeout.value {
        return Err(ConfigError::new(
            setting,
            format!(
                "{setting} {} is longer than {attempt_timeout}, so it could never fire; \
                 lower {setting} or {}",
                DisplayDuration(timeout),
                attempt_timeout.raise(),
            ),
        ));
    }
    Ok(())
}

/// A minimum rate at which a response body must arrive while the caller
/// reads it; set it with
/// [`min_body_throughput`](TimeoutMiddlewareBuilder::min_body_throughput).
///
/// The rate counts the bytes received over a sliding window of *waiting
/// time*: the time the caller spent polling the body while no data was ready.
/// Time the caller spends away from the body, processing what it read, does
/// not count, so a slow reader never makes the server look slow. The first
/// check comes once the caller has waited for one full window and for the
/// grace period in total. That way a slow start, such as TCP slow start or a
/// server preparing the first byte, is not a failure. From then on, the guard
/// checks the rate every tenth of the window.
///
/// # Default
///
/// | setting | default |
/// |---|---|
/// | [`with_window`](Self::with_window) | 5 s |
/// | [`with_grace_period`](Self::with_grace_period) | 5 s |
///
/// ```
/// use std::time::Duration;
/// use reqwest_timeout::{MinThroughput, TimeoutMiddleware};
///
/// // Fail a download that delivers less than 1 KiB/s over 10 seconds.
/// let middleware = TimeoutMiddleware::builder()
///     .attempt_timeout(Duration::from_secs(300))
///     .total_timeout(Duration::from_secs(600))
///     .min_body_throughput(MinThroughput::new(1024).with_window(Duration::from_secs(10)))
///     .build()?;
/// # Ok::<(), reqwest_timeout::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MinThroughput {
    bytes_per_second: u64,
    window: Duration,
    grace_period: Duration,
}

impl MinThroughput {
    /// Creates a minimum of `bytes_per_second`, with the default window and
    /// grace period.
    pub const fn new(bytes_per_second: u64) -> Self {
        MinThroughput {
            bytes_per_second,
            window: DEFAULT_THROUGHPUT_WINDOW,
            grace_period: DEFAULT_THROUGHPUT_GRACE,
        }
    }

    /// Sets the length of waiting time over which the rate is measured. It
    /// must be at least 10 milliseconds.
    ///
    /// Default is 5 seconds.
    pub const fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets how long the caller must have waited for body data in total
    /// before the first check. The first check also waits for one full
    /// window, so a grace period shorter than the window changes nothing.
    ///
    /// Default is 5 seconds.
    pub const fn with_grace_period(mut self, grace_period: Duration) -> Self {
        self.grace_period = grace_period;
        self
    }

    /// Returns the minimum rate, in bytes per second.
    pub const fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Returns the window over which the rate is measured.
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// Returns the waiting time before the first check.
    pub const fn grace_period(&self) -> Duration {
        self.grace_period
    }

    /// Returns the waiting time before the first check: the grace period,
    /// and at least one full window, so that the rate never rests on a few
    /// milliseconds of waiting.
    pub(crate) fn first_check(&self) -> Duration {
        self.grace_period.max(self.window)
    }

    fn validate(&self, attempt_timeout: Resolved) -> Result<(), ConfigError> {
        if self.bytes_per_second == 0 {
            return Err(ConfigError::new(
                "min_body_throughput",
                "min_body_throughput of 0 B/s can never fire; \
                 set a positive rate in bytes per second such as 1024"
                    .to_owned(),
            ));
        }
        if self.window < MIN_THROUGHPUT_WINDOW {
            return Err(ConfigError::new(
                "min_body_throughput",
                format!(
                    "min_body_throughput window {} is shorter than {}; \
                     set a window of {} or more, such as 5s",
                    DisplayDuration(self.window),
                    DisplayDuration(MIN_THROUGHPUT_WINDOW),
                    DisplayDuration(MIN_THROUGHPUT_WINDOW),
                ),
            ));
        }
        if self.first_check() >= attempt_timeout.value {
            return Err(ConfigError::new(
                "min_body_throughput",
                format!(
                    "min_body_throughput first checks the rate after {} of waiting (the longer of \
                     its window {} and grace period {}), which is not shorter than \
                     {attempt_timeout}, so it could never fire; shorten them with \
                     MinThroughput::with_window and with_grace_period, or {}",
                    DisplayDuration(self.first_check()),
                    DisplayDuration(self.window),
                    DisplayDuration(self.grace_period),
                    attempt_timeout.raise(),
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for MinThroughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {}",
            DisplayRate(self.bytes_per_second as f64),
            DisplayDuration(self.window)
        )
    }
}

impl TimeoutMiddlewareBuilder {
    /// Sets the time limit for the response headers once the request is
    /// sent.
    ///
    /// For a request whose body is tracked (see
    /// [`track_request_body`](Self::track_request_body)), the response header
    /// timeout starts when the connection has taken the last byte of the
    /// body. The bytes may still sit in a socket buffer at that moment. For a
    /// request without a body, or with an untracked one, a middleware cannot
    /// see when the request was written, so the timeout starts with the
    /// attempt and also covers DNS, connect, TLS and writing the request
    /// head. It ends when the response headers arrive, and applies to each
    /// attempt, within the attempt timeout. When it fires, the attempt fails
    /// in [`Phase::Headers`](crate::Phase::Headers) with
    /// [`Limit::ResponseHeaderTimeout`](crate::Limit::ResponseHeaderTimeout)
    /// and is retried like any other timeout.
    ///
    /// Unlike the attempt timeout, it does not cover the response body, so a
    /// large download can have a long attempt timeout and still give up early
    /// on a server that never responds. It must be at least 1 ms and not
    /// longer than the attempt timeout.
    ///
    /// Default is off.
    pub fn response_header_timeout(mut self, timeout: Duration) -> Self {
        self.body.response_header_timeout = Some(timeout);
        self
    }

    /// Sets how long the response body may go without data while the caller
    /// reads it.
    ///
    /// The body idle timeout starts each time the caller polls the body and
    /// no data is ready, and ends when the next data arrives. Time the caller
    /// spends away from the body does not count. When it fires, reading the
    /// body fails in [`Phase::Body`](crate::Phase::Body) with
    /// [`Diagnosis::BodyStalled`](crate::Diagnosis::BodyStalled) and
    /// [`Limit::BodyIdleTimeout`](crate::Limit::BodyIdleTimeout). It must be
    /// at least 1 ms and not longer than the attempt timeout, which still ends
    /// the whole attempt, body included.
    ///
    /// Default is off.
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body.idle_timeout = Some(timeout);
        self
    }

    /// Sets the minimum rate at which the response body must arrive while
    /// the caller reads it; [`MinThroughput`] describes how the rate is
    /// measured.
    ///
    /// When the rate falls below the minimum, reading the body fails in
    /// [`Phase::Body`](crate::Phase::Body) with
    /// [`Diagnosis::BodyStalled`](crate::Diagnosis::BodyStalled) and
    /// [`Limit::MinBodyThroughput`](crate::Limit::MinBodyThroughput). The
    /// rate is first checked after the longer of the window and the grace
    /// period, 5 s each by default, so `build` rejects a minimum whose first
    /// check does not come before the attempt timeout: it could never fire.
    ///
    /// Default is off.
    pub fn min_body_throughput(mut self, min: MinThroughput) -> Self {
        self.body.min_throughput = Some(min);
        self
    }

    /// Turns buffered mode on or off.
    ///
    /// In buffered mode the middleware reads each response body to the end
    /// within the attempt, before it returns the response. A body that
    /// stalls, breaks off or times out is then retried under the same rules
    /// and deadline as any other failure: a `POST` whose response body failed
    /// is not sent again. The bodies of statuses that are then retried are
    /// read too. A body larger than
    /// [`max_buffered_response_len`](Self::max_buffered_response_len) is streamed
    /// instead, and a failure while reading it is not retried. Each response
    /// records which happened in a [`BodyBuffering`](crate::BodyBuffering) in
    /// its extensions.
    ///
    /// Default is off: the response is returned once its headers arrive, and
    /// the body guard still applies while the caller reads the body.
    pub fn buffer_response_body(mut self, enabled: bool) -> Self {
        self.body.buffer = enabled;
        self
    }

    /// Sets the largest response body, in bytes, that buffered mode reads
    /// into memory.
    ///
    /// A response whose `Content-Length` is larger is streamed without
    /// reading any of it. A body of unknown length that grows past the
    /// maximum is streamed from that point on, the bytes already read first.
    ///
    /// Default is 8 MiB.
    pub fn max_buffered_response_len(mut self, bytes: u64) -> Self {
        self.body.max_buffered_len = bytes;
        self
    }

    /// Turns tracking of the request body on or off.
    ///
    /// With tracking on, the middleware wraps each request body of 64 KiB or
    /// more, and each streamed one, to count the bytes the connection takes
    /// from it. Smaller bodies fit in the connection's buffers, so counting
    /// them would show nothing, and they are left as they are. A failure before the
    /// connection took the whole body is then reported in
    /// [`Phase::Send`](crate::Phase::Send) with the bytes sent (a stalled
    /// upload is [`Diagnosis::UploadStalled`](crate::Diagnosis::UploadStalled)),
    /// and the [response header
    /// timeout](Self::response_header_timeout) starts only once the body has
    /// been taken.
    ///
    /// reqwest 0.13 follows a `307` or `308` redirect only when it can clone
    /// the body to send it again, and it cannot clone a wrapped body. So with
    /// tracking on, such a redirect of a request with a tracked body is
    /// returned to the caller instead of being followed. A middleware added after this
    /// one cannot clone the request either, so its own retries stop. Turn
    /// tracking off if you rely on either. Retries of this middleware are not
    /// affected: it keeps its own copy of the request.
    ///
    /// Default is on.
    pub fn track_request_body(mut self, enabled: bool) -> Self {
        self.body.track_request_body = enabled;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn build(builder: TimeoutMiddlewareBuilder) -> Result<(), ConfigError> {
        builder.build().map(drop)
    }

    #[test]
    fn header_timeout_beyond_default_attempt_advises_total() {
        let err = build(
            TimeoutMiddlewareBuilder::default()
                .total_timeout(5_000 * MS)
                .response_header_timeout(10_000 * MS),
        )
        .unwrap_err();

        assert_eq!(
            err.to_string(),
            "invalid response_header_timeout: response_header_timeout 10s is longer than \
             attempt_timeout 5s (the default for this total_timeout), so it could never fire; \
             lower response_header_timeout or raise total_timeout"
        );
    }

    #[test]
    fn defaults_are_off_except_tracking() {
        let settings = BodySettings::default();

        assert_eq!(settings.response_header_timeout, None);
        assert_eq!(settings.idle_timeout, None);
        assert_eq!(settings.min_throughput, None);
        assert!(!settings.buffer);
        assert_eq!(settings.max_buffered_len, 8 * 1024 * 1024);
        assert!(settings.track_request_body);
    }

    #[test]
    fn throughput_checked_after_the_attempt_timeout_is_rejected() {
        let builder = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(2_000 * MS)
            .min_body_throughput(MinThroughput::new(1_000));

        let err = build(builder).unwrap_err();

        assert_eq!(err.setting(), "min_body_throughput");
        assert_eq!(
            err.to_string(),
            "invalid min_body_throughput: min_body_throughput first checks the rate after 5s of \
             waiting (the longer of its window 5s and grace period 5s), which is not shorter \
             than attempt_timeout 2s, so it could never fire; shorten them with \
             MinThroughput::with_window and with_grace_period, or raise attempt_timeout (at most \
             total_timeout)"
        );
    }

    #[test]
    fn throughput_checked_at_the_attempt_timeout_is_rejected() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(2_000 * MS);
        let builder = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(2_000 * MS)
            .min_body_throughput(min);

        let err = build(builder).unwrap_err();

        assert_eq!(err.setting(), "min_body_throughput");
    }

    #[test]
    fn throughput_checked_within_the_attempt_timeout_builds() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(1_500 * MS);
        let builder = TimeoutMiddlewareBuilder::default()
            .attempt_timeout(2_000 * MS)
            .min_body_throughput(min);

        let built = build(builder);

        assert!(built.is_ok(), "{built:?}");
    }

    #[test]
    fn zero_header_and_idle_timeouts_are_rejected() {
        type Setter = fn(TimeoutMiddlewareBuilder, Duration) -> TimeoutMiddlewareBuilder;
        let setters: [(&str, Setter); 2] = [
            (
                "response_header_timeout",
                TimeoutMiddlewareBuilder::response_header_timeout,
            ),
            (
                "body_idle_timeout",
                TimeoutMiddlewareBuilder::body_idle_timeout,
            ),
        ];

        for (name, set) in setters {
            let err = build(set(TimeoutMiddlewareBuilder::default(), Duration::ZERO)).unwrap_err();

            assert_eq!(err.setting(), name);
            assert!(err.to_string().contains("is zero"), "{err}");
        }
    }

    #[test]
    fn sub_millisecond_header_and_idle_timeouts_are_rejected() {
        type Setter = fn(TimeoutMiddlewareBuilder, Duration) -> TimeoutMiddlewareBuilder;
        let setters: [(&str, Setter); 2] = [
            (
                "response_header_timeout",
                TimeoutMiddlewareBuilder::response_header_timeout,
            ),
            (
                "body_idle_timeout",
                TimeoutMiddlewareBuilder::body_idle_timeout,
            ),
        ];
        let values = [
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(999), "999µs"),
        ];

        for (name, set) in setters {
            for (value, shown) in values {
                let err = build(set(TimeoutMiddlewareBuilder::default(), value)).unwrap_err();

                assert_eq!(err.setting(), name);
                assert_eq!(
                    err.to_string(),
                    format!(
                        "invalid {name}: {name} {shown} is below 1ms, the resolution of \
                         tokio's timer; set at least 1ms"
                    )
                );
            }
        }
    }

    #[test]
    fn one_millisecond_header_and_idle_timeouts_build() {
        let built = build(
            TimeoutMiddlewareBuilder::default()
                .response_header_timeout(MS)
                .body_idle_timeout(MS),
        );

        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[test]
    fn header_timeout_longer_than_attempt_is_rejected() {
        let err = build(
            TimeoutMiddlewareBuilder::default()
                .attempt_timeout(2_000 * MS)
                .response_header_timeout(3_000 * MS),
        )
        .unwrap_err();

        assert_eq!(err.setting(), "response_header_timeout");
        assert_eq!(
            err.to_string(),
            "invalid response_header_timeout: response_header_timeout 3s is longer than \
             attempt_timeout 2s, so it could never fire; lower response_header_timeout \
             or raise attempt_timeout (at most total_timeout)"
        );
    }

    #[test]
    fn idle_timeout_longer_than_attempt_is_rejected() {
        let err =
            build(TimeoutMiddlewareBuilder::default().body_idle_timeout(60_000 * MS)).unwrap_err();

        assert_eq!(err.setting(), "body_idle_timeout");
        assert!(err.to_string().contains("body_idle_timeout 1m"), "{err}");
        assert!(err.to_string().contains("attempt_timeout 30s"), "{err}");
    }

    #[test]
    fn timeouts_equal_to_attempt_are_accepted() {
        let built = build(
            TimeoutMiddlewareBuilder::default()
                .attempt_timeout(2_000 * MS)
                .response_header_timeout(2_000 * MS)
                .body_idle_timeout(2_000 * MS),
        );

        assert!(built.is_ok(), "{built:?}");
    }

    #[test]
    fn zero_min_throughput_is_rejected() {
        let err =
            build(TimeoutMiddlewareBuilder::default().min_body_throughput(MinThroughput::new(0)))
                .unwrap_err();

        assert_eq!(err.setting(), "min_body_throughput");
        assert!(err.to_string().contains("0 B/s can never fire"), "{err}");
    }

    #[test]
    fn tiny_throughput_window_is_rejected() {
        let min = MinThroughput::new(1024).with_window(5 * MS);

        let err = build(TimeoutMiddlewareBuilder::default().min_body_throughput(min)).unwrap_err();

        assert_eq!(err.setting(), "min_body_throughput");
        assert!(
            err.to_string().contains("window 5ms is shorter than 10ms"),
            "{err}"
        );
    }

    #[test]
    fn zero_grace_period_is_accepted() {
        let min = MinThroughput::new(1).with_grace_period(Duration::ZERO);

        let built = build(TimeoutMiddlewareBuilder::default().min_body_throughput(min));

        assert!(built.is_ok(), "{built:?}");
    }

    #[test]
    fn zero_max_buffered_len_is_rejected() {
        let err =
            build(TimeoutMiddlewareBuilder::default().max_buffered_response_len(0)).unwrap_err();

        assert_eq!(err.setting(), "max_buffered_response_len");
        assert!(err.to_string().contains("8388608"), "{err}");
    }

    #[test]
    fn min_throughput_reads_like_a_rate() {
        let min = MinThroughput::new(1024).with_window(2_000 * MS);

        assert_eq!(min.to_string(), "1 KiB/s over 2s");
        assert_eq!(min.bytes_per_second(), 1024);
        assert_eq!(min.window(), 2_000 * MS);
        assert_eq!(min.grace_period(), 5_000 * MS);
    }
}
