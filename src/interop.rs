//! Interoperation with `reqwest-retry`, behind the `reqwest-retry` feature.

use reqwest::Response;
use reqwest_retry::{DefaultRetryableStrategy, RetryError, Retryable, RetryableStrategy};

use crate::attempt::{Attempts, StopReason};
use crate::error::Error;

/// A [`RetryableStrategy`] for `reqwest-retry`'s `RetryTransientMiddleware`
/// that recognises this crate's errors. Available with the `reqwest-retry`
/// feature.
///
/// `reqwest-retry` receives this middleware's failures as opaque
/// `reqwest_middleware::Error::Middleware` errors and treats them as fatal.
/// With this strategy, an outer `RetryTransientMiddleware` retries them when
/// [`Error::is_retryable`] reports that a later call may succeed. A response
/// whose [`Attempts`] show that this middleware stopped on purpose (the
/// request is not idempotent, its body is a one-shot stream, the retry budget
/// is spent, or `Retry-After` asked for too long a wait) is not retried
/// either. Everything else goes to the wrapped strategy,
/// [`DefaultRetryableStrategy`] unless another is given.
///
/// The outer layer's retries are calls of their own for this middleware:
/// each gets a new total timeout, and the outer layer does not consult the
/// retry budget.
///
/// ```
/// use std::time::Duration;
/// use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
/// use reqwest_timeout::{TimeoutAwareStrategy, TimeoutMiddleware};
///
/// let timeouts = TimeoutMiddleware::builder()
///     .attempt_timeout(Duration::from_secs(2))
///     .total_timeout(Duration::from_secs(5))
///     .max_retries(0)
///     .build()?;
/// let retries = RetryTransientMiddleware::new_with_policy_and_strategy(
///     ExponentialBackoff::builder().build_with_max_retries(3),
///     TimeoutAwareStrategy::default(),
/// );
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(retries)
///     .with(timeouts)
///     .build();
/// # Ok::<(), reqwest_timeout::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutAwareStrategy<S = DefaultRetryableStrategy> {
    fallback: S,
}

impl Default for TimeoutAwareStrategy {
    fn default() -> Self {
        TimeoutAwareStrategy::new(DefaultRetryableStrategy)
    }
}

impl<S> TimeoutAwareStrategy<S> {
    /// Returns a strategy that decides this crate's errors itself and passes
    /// everything else to `fallback`.
    pub fn new(fallback: S) -> Self {
        TimeoutAwareStrategy { fallback }
    }
}

impl<S: RetryableStrategy> RetryableStrategy for TimeoutAwareStrategy<S> {
    fn handle(&self, result: &Result<Response, reqwest_middleware::Error>) -> Option<Retryable> {
        match result {
            Err(error) => {
                if let Some(diagnosed) = Error::find(error) {
                    return Some(if diagnosed.is_retryable() {
                        Retryable::Transient
                    } else {
                        Retryable::Fatal
                    });
                }
            }
            Ok(response) => {
                // A status that this middleware chose not to retry, because
                // the request may not be sent again or the host's budget is
                // spent, must not be retried by the outer layer either.
                let stop = response
                    .extensions()
                    .get::<Attempts>()
                    .map(Attempts::stop_reason);
                if matches!(
                    stop,
                    Some(
                        StopReason::NotIdempotent(_)
                            | StopReason::OneShotBody
                            | StopReason::Budget
                            | StopReason::RetryAfterTooLong(_)
                    )
                ) {
                    return Some(Retryable::Fatal);
                }
            }
        }
        self.fallback.handle(result)
    }
}

/// Finds the middleware's error inside `reqwest-retry`'s error, whose
/// transparent variant hides it from a walk of the sources.
pub(crate) fn find_in_retry_error(wrapped: &anyhow::Error) -> Option<&Error> {
    match wrapped.downcast_ref::<RetryError>()? {
        RetryError::WithRetries { err, .. } | RetryError::Error(err) => Error::find(err),
    }
}
