//! Connections that close or reset before the response is complete.

mod support;

use std::time::Duration;

use reqwest_timeout::{Attempts, Diagnosis, Phase, StopReason};
use support::{
    client_builder, diagnosed, timeouts, with_timeouts, KeepaliveThenClose, Reset, TruncatedHead,
};

const MS: Duration = Duration::from_millis(1);

fn attempts(response: &reqwest::Response) -> Attempts {
    response
        .extensions()
        .get::<Attempts>()
        .expect("every response carries Attempts")
        .clone()
}

#[tokio::test]
async fn stale_keepalive_connection_is_replaced() {
    let server = KeepaliveThenClose::start().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let first = client.get(server.url("/a")).send().await.unwrap();
    let first_body = first.bytes().await.unwrap();
    let second = client.get(server.url("/b")).send().await.unwrap();

    assert!(!first_body.is_empty());
    assert_eq!(second.status(), 200);
    assert_eq!(attempts(&second).count(), 2);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn stale_keepalive_post_is_not_resent() {
    let server = KeepaliveThenClose::start().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let first = client.get(server.url("/a")).send().await.unwrap();
    first.bytes().await.unwrap();
    let err = client
        .post(server.url("/orders"))
        .body("order")
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert!(error.to_string().contains("not retried"), "{error}");
}

#[tokio::test]
async fn truncated_head_recovers_on_third_attempt() {
    let server = TruncatedHead::failing(2).await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let response = client.get(server.url("/")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(attempts(&response).count(), 3);
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn reset_recovers_on_third_attempt() {
    let server = Reset::failing(2).await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let response = client.get(server.url("/")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(attempts(&response).count(), 3);
}

#[tokio::test]
async fn truncated_head_that_never_recovers_is_connection_closed() {
    let server = TruncatedHead::always().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert!(!error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn reset_that_never_recovers_is_connection_closed() {
    let server = Reset::always().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(error.attempts(), 3);
    assert!(error.to_string().contains("connection-closed"), "{error}");
}
