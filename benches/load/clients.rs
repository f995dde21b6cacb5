//! The clients that the scenarios compare: reqwest alone, the
//! reqwest-middleware chain with no middleware ("bare"), the chain with this
//! crate's middleware, and the chain with reqwest-retry's
//! `RetryTransientMiddleware`.

use std::time::Duration;

use async_trait::async_trait;
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_timeout::{TimeoutMiddleware, TimeoutMiddlewareBuilder};

/// Header that carries a call's number, so that a server can tell which
/// call each request belongs to.
pub const CALL_ID_HEADER: &str = "x-call-id";

/// Returns a reqwest client that ignores proxy variables, so every request
/// goes straight to the loopback servers.
pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client with no proxy and default settings builds")
}

/// Returns the chain with no middleware.
pub fn bare(client: &reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client.clone()).build()
}

/// Returns the chain with this crate's middleware built from `timeouts`.
pub fn with_timeouts(
    client: &reqwest::Client,
    timeouts: TimeoutMiddlewareBuilder,
) -> ClientWithMiddleware {
    let middleware = timeouts
        .build()
        .expect("the harness's middleware settings are valid");
    ClientBuilder::new(client.clone()).with(middleware).build()
}

/// Returns the chain with this crate's middleware at its default settings:
/// 30 s attempt timeout, 90 s total timeout, 3 retries.
pub fn with_default_timeouts(client: &reqwest::Client) -> ClientWithMiddleware {
    with_timeouts(client, TimeoutMiddleware::builder())
}

/// Returns the chain with reqwest-retry's middleware: `retries` retries with
/// exponential backoff between `min_wait` and `max_wait` (reqwest-retry's
/// default full jitter).
pub fn with_retry_crate(
    client: &reqwest::Client,
    retries: u32,
    min_wait: Duration,
    max_wait: Duration,
) -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(min_wait, max_wait)
        .build_with_max_retries(retries);
    ClientBuilder::new(client.clone())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build()
}

/// Returns reqwest-retry's middleware as its docs show it: 3 retries with
/// its default waits.
pub fn with_default_retry_crate(client: &reqwest::Client) -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder().build_with_max_retries(3);
    ClientBuilder::new(client.clone())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build()
}

/// Ends a chain with a `200 OK` and body `ok`, so no request reaches the
/// network.
#[derive(Debug)]
pub struct Canned;

#[async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        _request: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(http::Response::new("ok")))
    }
}

/// Sends a GET and reads the whole body. Returns the status and the body
/// length, or the error text.
pub async fn get(client: &ClientWithMiddleware, url: &str) -> Result<(u16, usize), String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|error| error.to_string())?;
    Ok((status, body.len()))
}
