//! HTTP/2 streams that the server refuses, resets or ends with GOAWAY, and a
//! connection that stops acknowledging pings, against the scripted h2c server in
//! `support::h2`.
//!
//! Most clients here turn reqwest's own retries off (`retry::never`), so that
//! each attempt of the middleware is one request on the server.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{AttemptOutcome, Attempts, Diagnosis, Phase, StopReason};
use support::h2::{code, ok_acts, Act};
use support::{client_builder, diagnosed, diagnosed_body, timeouts, with_timeouts};

const MS: Duration = Duration::from_millis(1);

/// Returns a client that speaks HTTP/2 without TLS and makes no retries of
/// its own.
fn h2_client(retries: u32) -> ClientWithMiddleware {
    with_timeouts(
        client_builder()
            .http2_prior_knowledge()
            .retry(reqwest::retry::never()),
        timeouts(2_000 * MS, 5_000 * MS, retries),
    )
}

/// Returns [`h2_client`] with two retries in buffered mode.
fn h2_buffered_client() -> ClientWithMiddleware {
    with_timeouts(
        client_builder()
            .http2_prior_knowledge()
            .retry(reqwest::retry::never()),
        timeouts(2_000 * MS, 5_000 * MS, 2).buffer_response_body(true),
    )
}

/// Returns the acts of a `200` that announces 1 000 bytes and sends 100,
/// then `end`.
fn cut_short(end: &[Act]) -> Vec<Act> {
    let mut acts = vec![
        Act::Head {
            status: 200,
            content_length: Some(1_000),
            end: false,
        },
        Act::Data {
            len: 100,
            end: false,
        },
    ];
    acts.extend_from_slice(end);
    acts
}

/// Asserts that one line of the error's evidence contains `text`.
fn assert_evidence(diagnosed: &reqwest_timeout::Error, text: &str) {
    assert!(
        diagnosed.evidence().iter().any(|line| line.contains(text)),
        "no evidence line contains {text:?}: {:?}",
        diagnosed.evidence()
    );
}

/// Asserts that buffered mode reads the whole body on a second attempt after
/// `first`, the acts of the first response, broke its body off.
async fn assert_buffered_retry_after(first: Vec<Act>) {
    let server = support::h2::start(
        move |index| match index {
            0 => first.clone(),
            _ => ok_acts(1_000),
        },
        0,
    )
    .await;
    let client = h2_buffered_client();

    let response = client.get(server.url("/")).send().await.unwrap();

    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    assert_eq!(response.bytes().await.unwrap().len(), 1_000);
    assert_eq!(attempts.count(), 2);
    assert_eq!(
        attempts.history()[0].outcome(),
        failed(Phase::Body, Diagnosis::ConnectionClosed)
    );
}

/// Returns the outcome of an attempt that failed in `phase` with `diagnosis`,
/// without a timeout.
fn failed(phase: Phase, diagnosis: Diagnosis) -> AttemptOutcome {
    AttemptOutcome::Failed {
        phase,
        diagnosis,
        timed_out: false,
    }
}

fn refused_then_ok(refusals: usize) -> impl Fn(usize) -> Vec<Act> + Send + Sync + 'static {
    move |index| {
        if index < refusals {
            vec![Act::Reset(code::REFUSED_STREAM)]
        } else {
            ok_acts(2)
        }
    }
}

#[tokio::test]
async fn refused_stream_is_retried_until_the_server_accepts() {
    let server = support::h2::start(refused_then_ok(2), 0).await;
    let client = h2_client(3);

    let response = client.get(server.url("/")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count(), 3);
    assert_eq!(
        attempts.history()[0].outcome(),
        failed(Phase::Headers, Diagnosis::StreamRefused)
    );
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn refused_stream_ends_with_its_own_diagnosis() {
    let server = support::h2::start(refused_then_ok(usize::MAX), 0).await;
    let client = h2_client(1);

    let error = client.get(server.url("/")).send().await.unwrap_err();

    let diagnosed = diagnosed(&error);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::StreamRefused);
    assert_eq!(diagnosed.phase(), Phase::Headers);
    assert_eq!(diagnosed.stop_reason(), &StopReason::MaxRetries(1));
    assert!(diagnosed.is_retryable());
    assert_evidence(diagnosed, "REFUSED_STREAM");
    assert!(
        diagnosed.to_string().contains("stream-refused"),
        "{diagnosed}"
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn refused_post_is_not_sent_again() {
    let server = support::h2::start(refused_then_ok(usize::MAX), 0).await;
    let client = h2_client(3);

    let error = client
        .post(server.url("/payments"))
        .body("amount=10")
        .send()
        .await
        .unwrap_err();

    // RFC 9113 says a refused stream was not processed, but a redirect
    // followed within the attempt may have sent the POST elsewhere first.
    let diagnosed = diagnosed(&error);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::StreamRefused);
    assert_eq!(
        diagnosed.stop_reason(),
        &StopReason::NotIdempotent(Method::POST)
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn go_away_error_retried_on_new_connection() {
    let server = support::h2::start(
        |index| match index {
            0 => vec![
                Act::GoAway {
                    offset: -2,
                    code: code::PROTOCOL_ERROR,
                },
                Act::Close,
            ],
            _ => ok_acts(2),
        },
        0,
    )
    .await;
    let client = h2_client(2);

    let response = client.get(server.url("/")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count(), 2);
    assert_eq!(
        attempts.history()[0].outcome(),
        failed(Phase::Headers, Diagnosis::ConnectionClosed)
    );
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn graceful_go_away_names_the_shutdown() {
    let server = support::h2::start(
        |_| {
            vec![Act::GoAway {
                offset: -2,
                code: code::NO_ERROR,
            }]
        },
        0,
    )
    .await;
    let client = h2_client(0);

    let error = client.get(server.url("/")).send().await.unwrap_err();

    let diagnosed = diagnosed(&error);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(diagnosed.phase(), Phase::Headers);
    assert_eq!(diagnosed.stop_reason(), &StopReason::MaxRetries(0));
    assert_evidence(diagnosed, "GOAWAY with NO_ERROR");
}

#[tokio::test]
async fn stream_reset_mid_body_is_connection_closed() {
    let server = support::h2::start(
        |_| cut_short(&[Act::Pause(50 * MS), Act::Reset(code::CANCEL)]),
        0,
    )
    .await;
    let client = h2_client(2);
    let response = client.get(server.url("/")).send().await.unwrap();

    let error = response.bytes().await.unwrap_err();

    let diagnosed = diagnosed_body(&error);
    assert_eq!(diagnosed.phase(), Phase::Body);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::ConnectionClosed);
    assert_eq!(
        diagnosed.body_progress().map(|progress| progress.bytes()),
        Some(100)
    );
    assert_evidence(
        diagnosed,
        "reset the HTTP/2 stream (RST_STREAM) with CANCEL",
    );
}

#[tokio::test]
async fn stream_reset_mid_body_retried_when_buffered() {
    assert_buffered_retry_after(cut_short(&[Act::Reset(code::CANCEL)])).await;
}

#[tokio::test]
async fn closed_mid_body_found_in_h2_error() {
    let server = support::h2::start(|_| cut_short(&[Act::Pause(50 * MS), Act::Close]), 0).await;
    let client = h2_client(2);
    let response = client.get(server.url("/")).send().await.unwrap();

    let error = response.bytes().await.unwrap_err();

    let diagnosed = diagnosed_body(&error);
    assert_eq!(diagnosed.phase(), Phase::Body);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::ConnectionClosed);
}

#[tokio::test]
async fn no_error_reset_reports_short_body() {
    let server = support::h2::start(|_| cut_short(&[Act::Reset(code::NO_ERROR)]), 0).await;
    let client = h2_client(2);
    let response = client.get(server.url("/")).send().await.unwrap();

    let error = response.bytes().await.unwrap_err();

    let diagnosed = diagnosed_body(&error);
    assert_eq!(diagnosed.phase(), Phase::Body);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::ConnectionClosed);
    let source = std::error::Error::source(diagnosed).map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some("the response body ended after 100 of the 1000 bytes that its length announced")
    );
}

#[tokio::test]
async fn unacknowledged_pings_are_connection_closed() {
    // The first connection goes silent; the retry opens a second one.
    let server = support::h2::start(|_| ok_acts(2), 1).await;
    let client = with_timeouts(
        client_builder()
            .http2_prior_knowledge()
            .retry(reqwest::retry::never())
            .http2_keep_alive_interval(100 * MS)
            .http2_keep_alive_timeout(100 * MS),
        timeouts(3_000 * MS, 8_000 * MS, 0),
    );

    let error = client.get(server.url("/")).send().await.unwrap_err();

    // reqwest's `is_timeout()` is true here, but no request timeout fired.
    let diagnosed = diagnosed(&error);
    assert_eq!(diagnosed.phase(), Phase::Headers);
    assert_eq!(diagnosed.diagnosis(), Diagnosis::ConnectionClosed);
    assert!(!diagnosed.is_timeout());
    assert_eq!(diagnosed.limit(), None);
    assert_evidence(diagnosed, "keep-alive pings");
    assert!(
        diagnosed.elapsed() < 2_500 * MS,
        "the keep-alive timeout ended the attempt, not the attempt timeout: {:?}",
        diagnosed.elapsed()
    );
}

#[tokio::test]
async fn retry_after_dead_connection_succeeds() {
    let server = support::h2::start(|_| ok_acts(2), 1).await;
    let client = with_timeouts(
        client_builder()
            .http2_prior_knowledge()
            .retry(reqwest::retry::never())
            .http2_keep_alive_interval(100 * MS)
            .http2_keep_alive_timeout(100 * MS),
        timeouts(3_000 * MS, 8_000 * MS, 2),
    );

    let response = client.get(server.url("/")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count(), 2);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn not_modified_length_is_not_checked() {
    // RFC 9110 lets a 304 repeat the length of the resource, and hyper then
    // reports that length as the body's over HTTP/2.
    let server = support::h2::start(
        |_| {
            vec![Act::Head {
                status: 304,
                content_length: Some(100),
                end: true,
            }]
        },
        0,
    )
    .await;
    let streamed = h2_client(2);
    let buffered = h2_buffered_client();

    let streamed_response = streamed.get(server.url("/")).send().await.unwrap();
    let buffered_response = buffered.get(server.url("/")).send().await.unwrap();

    assert_eq!(streamed_response.status(), StatusCode::NOT_MODIFIED);
    assert!(streamed_response.bytes().await.unwrap().is_empty());
    assert_eq!(buffered_response.status(), StatusCode::NOT_MODIFIED);
    assert!(buffered_response.bytes().await.unwrap().is_empty());
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn short_body_retried_when_buffered() {
    // h2 resets a stream whose data ends before its Content-Length, as
    // hyper fails such a body over HTTP/1.
    let first = vec![
        Act::Head {
            status: 200,
            content_length: Some(1_000),
            end: false,
        },
        Act::Data {
            len: 100,
            end: true,
        },
    ];

    assert_buffered_retry_after(first).await;
}
