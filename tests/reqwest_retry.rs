//! `reqwest-retry` stacked around and inside the middleware, with the
//! `reqwest-retry` feature's strategy.
#![cfg(feature = "reqwest-retry")]

mod support;

use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{DefaultRetryableStrategy, RetryTransientMiddleware, RetryableStrategy};
use reqwest_timeout::{Diagnosis, TimeoutAwareStrategy};
use support::{client_builder, diagnosed, timeouts, StallHead, TruncatedHead};

const MS: Duration = Duration::from_millis(1);

fn fast_backoff(retries: u32) -> ExponentialBackoff {
    ExponentialBackoff::builder()
        .retry_bounds(10 * MS, 50 * MS)
        .build_with_max_retries(retries)
}

/// `reqwest-retry` outside, this middleware inside with no retries of its own.
fn retry_outside<S>(strategy: S) -> ClientWithMiddleware
where
    S: RetryableStrategy + Send + Sync + 'static,
{
    let retries = RetryTransientMiddleware::new_with_policy_and_strategy(fast_backoff(2), strategy);
    let timeouts = timeouts(200 * MS, 1_000 * MS, 0).build().unwrap();
    reqwest_middleware::ClientBuilder::new(client_builder().build().unwrap())
        .with(retries)
        .with(timeouts)
        .build()
}

#[tokio::test]
async fn outer_reqwest_retry_retries_our_timeouts_with_strategy() {
    let server = StallHead::start().await;
    let client = retry_outside(TimeoutAwareStrategy::default());

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert!(error.is_retryable());
    assert_eq!(server.wait_for_requests(3, 2_000 * MS).await.len(), 3);
}

#[tokio::test]
async fn outer_reqwest_retry_treats_our_errors_as_fatal_without_strategy() {
    let server = StallHead::start().await;
    let client = retry_outside(DefaultRetryableStrategy);

    let err = client.get(server.url("/")).send().await.unwrap_err();

    assert!(diagnosed(&err).is_timeout());
    tokio::time::sleep(300 * MS).await;
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn inner_reqwest_retry_multiplies_attempts() {
    let server = TruncatedHead::always().await;
    let timeouts = timeouts(1_000 * MS, 3_000 * MS, 1).build().unwrap();
    let retries = RetryTransientMiddleware::new_with_policy(fast_backoff(2));
    let client = reqwest_middleware::ClientBuilder::new(client_builder().build().unwrap())
        .with(timeouts)
        .with(retries)
        .build();

    let err = client.get(server.url("/")).send().await.unwrap_err();

    // Each of the middleware's 2 attempts is 3 attempts of reqwest-retry,
    // which is why the README advises against this order.
    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(error.attempts(), 2);
    assert_eq!(server.connections(), 6);
}

#[tokio::test]
async fn outer_reqwest_retry_does_not_resend_post_after_503() {
    let server = support::Sequence::start(vec![support::response(
        "503 Service Unavailable",
        &[],
        b"busy",
    )])
    .await;
    let client = retry_outside(TimeoutAwareStrategy::default());

    let response = client
        .post(server.url("/orders"))
        .body("order")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    tokio::time::sleep(300 * MS).await;
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn outer_retry_keeps_redirected_post_once() {
    let (server, _closed) = support::Sequence::redirect_to_closed_port("303 See Other").await;
    let client = retry_outside(TimeoutAwareStrategy::default());

    let err = client
        .post(server.url("/pay"))
        .body("amount=10")
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert!(!error.is_retryable(), "{error:#}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn outer_reqwest_retry_retries_get_after_503() {
    let server = support::Sequence::start(vec![support::response(
        "503 Service Unavailable",
        &[],
        b"busy",
    )])
    .await;
    let client = retry_outside(TimeoutAwareStrategy::default());

    let response = client.get(server.url("/items")).send().await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.requests(), 3);
}
