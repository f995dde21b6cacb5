//! Clients wrapped in the middleware, and access to its diagnosed error.

use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{Error, TimeoutMiddlewareBuilder};

/// Wraps a client built from `client` in the middleware built from `timeouts`.
pub fn with_timeouts(
    client: reqwest::ClientBuilder,
    timeouts: TimeoutMiddlewareBuilder,
) -> ClientWithMiddleware {
    let client = client
        .build()
        .expect("the test client configuration is valid");
    let middleware = timeouts
        .build()
        .expect("the test middleware configuration is valid");
    reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .build()
}

/// Builds the middleware from `timeouts`, sets its connect timeout on
/// `client` with `configure_client`, and wraps the client in it.
pub fn with_configured_client(
    client: reqwest::ClientBuilder,
    timeouts: TimeoutMiddlewareBuilder,
) -> ClientWithMiddleware {
    let middleware = timeouts
        .build()
        .expect("the test middleware configuration is valid");
    let client = middleware
        .configure_client(client)
        .build()
        .expect("the test client configuration is valid");
    reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .build()
}

/// Returns a middleware builder with the given attempt timeout, total timeout
/// and retries, and a short fixed backoff (50 ms, then 100 ms, ...).
pub fn timeouts(attempt: Duration, total: Duration, retries: u32) -> TimeoutMiddlewareBuilder {
    reqwest_timeout::TimeoutMiddleware::builder()
        .attempt_timeout(attempt)
        .total_timeout(total)
        .max_retries(retries)
        .initial_backoff(Duration::from_millis(50))
        .jitter(false)
}

/// Returns the middleware's error inside `error`, failing the test if there is none.
pub fn diagnosed(error: &reqwest_middleware::Error) -> &Error {
    Error::find(error).unwrap_or_else(|| panic!("no reqwest_timeout::Error in {error:?}"))
}

/// Returns the middleware's error inside `error`, from reading a response body, failing the
/// test if there is none.
pub fn diagnosed_body(error: &reqwest::Error) -> &Error {
    Error::find(error).unwrap_or_else(|| panic!("no reqwest_timeout::Error in {error:?}"))
}
