use std::time::Duration;

use crate::builder::TIMER_RESOLUTION;
use crate::config_error::ConfigError;
use crate::format::DisplayDuration;

/// Settings for one call that replace the middleware's own.
///
/// Attach it to a request with reqwest-middleware's
/// [`with_extension`](reqwest_middleware::RequestBuilder::with_extension).
/// Settings left unset keep the middleware's values. An attempt timeout
/// longer than the call's total timeout, set here or in the middleware, is
/// clipped to the time left before the deadline. That is no error here,
/// unlike in [`TimeoutMiddlewareBuilder::build`](crate::TimeoutMiddlewareBuilder::build),
/// which rejects an attempt timeout set longer than the total timeout.
/// A zero duration, or one below 1 ms (the resolution of tokio's timer),
/// fails the call before anything is sent, with a [`ConfigError`] inside
/// the returned error:
/// `reqwest_middleware::Error::Middleware(error)` with
/// `error.downcast_ref::<ConfigError>()` returning it. The request's own
/// `timeout` is checked the same way. [`Error::find`](crate::Error::find)
/// finds nothing in such an error, because no attempt was made.
///
/// ```no_run
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// use std::time::Duration;
/// use reqwest_timeout::RequestOverrides;
///
/// // A slow report endpoint gets more time; the order is safe to send twice.
/// let response = client
///     .post("http://localhost:8080/reports")
///     .with_extension(
///         RequestOverrides::new()
///             .attempt_timeout(Duration::from_secs(60))
///             .total_timeout(Duration::from_secs(120))
///             .retry_non_idempotent(true),
///     )
///     .send()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOverrides {
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) retry_non_idempotent: Option<bool>,
}

impl RequestOverrides {
    /// Returns overrides that change nothing.
    pub fn new() -> Self {
        RequestOverrides::default()
    }

    /// Replaces the attempt timeout for this call; see
    /// [`TimeoutMiddlewareBuilder::attempt_timeout`](crate::TimeoutMiddlewareBuilder::attempt_timeout).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Replaces the total timeout for this call; see
    /// [`TimeoutMiddlewareBuilder::total_timeout`](crate::TimeoutMiddlewareBuilder::total_timeout).
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// Replaces the maximum number of retries for this call; see
    /// [`TimeoutMiddlewareBuilder::max_retries`](crate::TimeoutMiddlewareBuilder::max_retries).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Allows or forbids sending this call's request again when it is not
    /// idempotent; see
    /// [`TimeoutMiddlewareBuilder::retry_non_idempotent`](crate::TimeoutMiddlewareBuilder::retry_non_idempotent).
    pub fn retry_non_idempotent(mut self, allowed: bool) -> Self {
        self.retry_non_idempotent = Some(allowed);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (setting, value) in [
            ("attempt_timeout", self.attempt_timeout),
            ("total_timeout", self.total_timeout),
        ] {
            let Some(value) = value else {
                continue;
            };
            if value.is_zero() {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "{setting} in RequestOverrides is zero; set a positive duration or leave it unset"
                    ),
                ));
            }
            if value < TIMER_RESOLUTION {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "{setting} in RequestOverrides is {}, below 1ms, the resolution of \
                         tokio's timer; set at least 1ms or leave it unset",
                        DisplayDuration(value)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Checks the timeout set on the request itself with
/// `RequestBuilder::timeout`, which becomes the attempt's limit when it is
/// the shortest.
///
/// # Errors
///
/// A zero timeout, or one below tokio's 1 ms timer resolution.
pub(crate) fn validate_request_timeout(timeout: Option<&Duration>) -> Result<(), ConfigError> {
    let Some(&timeout) = timeout else {
        return Ok(());
    };
    if timeout < TIMER_RESOLUTION {
        return Err(ConfigError::new(
            "timeout",
            format!(
                "the request's timeout is {}, below 1ms, the resolution of tokio's timer; \
                 set at least 1ms with RequestBuilder::timeout or leave it unset",
                DisplayDuration(timeout)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Setter = fn(RequestOverrides, Duration) -> RequestOverrides;

    const SETTERS: [(&str, Setter); 2] = [
        ("attempt_timeout", RequestOverrides::attempt_timeout),
        ("total_timeout", RequestOverrides::total_timeout),
    ];

    #[test]
    fn zero_timeouts_are_rejected() {
        for (name, set) in SETTERS {
            let err = set(RequestOverrides::new(), Duration::ZERO)
                .validate()
                .unwrap_err();

            assert_eq!(err.setting(), name);
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid {name}: {name} in RequestOverrides is zero; \
                     set a positive duration or leave it unset"
                )
            );
        }
    }

    #[test]
    fn sub_millisecond_timeouts_are_rejected() {
        let values = [
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(999), "999µs"),
        ];

        for (name, set) in SETTERS {
            for (value, shown) in values {
                let err = set(RequestOverrides::new(), value).validate().unwrap_err();

                assert_eq!(err.setting(), name);
                assert_eq!(
                    err.to_string(),
                    format!(
                        "invalid {name}: {name} in RequestOverrides is {shown}, below 1ms, \
                         the resolution of tokio's timer; set at least 1ms or leave it unset"
                    )
                );
            }
        }
    }

    #[test]
    fn sub_millisecond_request_timeout_is_rejected() {
        for (value, shown) in [
            (Duration::ZERO, "0ms"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(999), "999µs"),
        ] {
            let err = validate_request_timeout(Some(&value)).unwrap_err();

            assert_eq!(err.setting(), "timeout");
            assert!(
                err.to_string()
                    .contains(&format!("the request's timeout is {shown}, below 1ms")),
                "{err}"
            );
        }
        assert!(validate_request_timeout(Some(&Duration::from_millis(1))).is_ok());
        assert!(validate_request_timeout(None).is_ok());
    }

    #[test]
    fn one_millisecond_timeouts_are_accepted() {
        for (name, set) in SETTERS {
            let overrides = set(RequestOverrides::new(), Duration::from_millis(1));

            assert_eq!(overrides.validate(), Ok(()), "{name}");
        }
    }
}
