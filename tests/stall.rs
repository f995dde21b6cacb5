//! Servers that accept the request and then go silent, and calls that are
//! dropped while they wait.

mod support;

use std::time::{Duration, Instant};

use reqwest_timeout::{Diagnosis, Error, Limit, Phase, StopReason, TimeoutMiddleware};
use support::{
    client_builder, diagnosed, timeouts, with_configured_client, with_timeouts, StallHead,
    StopReading,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn header_stall_is_retried_until_retries_run_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let client = with_timeouts(client_builder(), timeouts(300 * MS, 2_000 * MS, 2));
    let start = Instant::now();

    let err = client
        .get(format!("{}/slow", server.uri()))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    for attempt in error.history() {
        assert!(attempt.duration() >= 290 * MS, "{attempt}");
        assert!(attempt.duration() < 1_000 * MS, "{attempt}");
    }
    assert!(elapsed >= 900 * MS, "took {elapsed:?}");
    assert!(elapsed <= 2_500 * MS, "took {elapsed:?}");
    assert!(message.contains("attempt timeout of 300ms"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn header_stall_ends_by_total_timeout() {
    let server = StallHead::start().await;
    let client = with_timeouts(client_builder(), timeouts(400 * MS, 1_000 * MS, 10));
    let start = Instant::now();

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
    assert!(elapsed <= 1_500 * MS, "took {elapsed:?}");
    assert!(
        error.elapsed() <= 1_500 * MS,
        "error says {:?}",
        error.elapsed()
    );
    let last = error.history().last().unwrap();
    assert!(last.started_after() + last.limit() <= 1_000 * MS, "{last}");
}

#[tokio::test]
async fn dropped_call_closes_its_connection() {
    let server = StallHead::start().await;
    let client = with_timeouts(client_builder(), timeouts(5_000 * MS, 10_000 * MS, 2));

    let call = client.get(server.url("/")).send();
    let cut_short = tokio::time::timeout(300 * MS, call).await;
    let dropped_at = Instant::now();
    let closes = server.wait_for_closes(1, 3_000 * MS).await;

    assert!(
        cut_short.is_err(),
        "the stalled call should still be pending"
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(closes.len(), 1, "the server saw no close");
    let close_delay = closes[0].saturating_duration_since(dropped_at);
    assert!(
        close_delay < 1_000 * MS,
        "closed {close_delay:?} after the drop"
    );
    tokio::time::sleep(600 * MS).await;
    assert_eq!(server.connections(), 1, "no attempt after the drop");
}

#[tokio::test]
async fn stalled_upload_post_is_sent_once() {
    let server = StopReading::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 2));
    let body = vec![b'x'; 32 * 1024 * 1024];

    let err = client
        .post(server.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn stalled_upload_put_is_retried_until_deadline() {
    let server = StopReading::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 5));
    let body = vec![b'x'; 32 * 1024 * 1024];
    let start = Instant::now();

    let err = client
        .put(server.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert!(error.attempts() >= 3, "{error}");
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
    assert!(elapsed <= 2_500 * MS, "took {elapsed:?}");
    assert_eq!(server.connections(), error.attempts() as usize);
}

#[tokio::test]
async fn header_stall_with_known_connect_timeout_names_one_cause() {
    let server = StallHead::start().await;
    let client = with_configured_client(
        client_builder(),
        timeouts(300 * MS, 1_000 * MS, 0).connect_timeout(100 * MS),
    );

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert!(
        !message.contains("connect that never completed"),
        "{message}"
    );
}

#[tokio::test]
async fn post_stalled_until_deadline_is_not_retryable() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        TimeoutMiddleware::builder().total_timeout(400 * MS),
    );

    let err = client
        .post(server.url("/orders"))
        .body("x")
        .send()
        .await
        .unwrap_err();

    // The attempt timeout defaults to the total here, so the attempt runs
    // until the deadline. The server received the POST all the same.
    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert!(!error.is_retryable());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn stall_under_connect_timeout_names_both() {
    let server = StallHead::start().await;
    let client = with_configured_client(
        client_builder(),
        timeouts(300 * MS, 1_000 * MS, 0).connect_timeout(100 * MS),
    );

    // The request's own timeout is the limit, and it is below the connect
    // timeout, so a connect that never completed would end the same way.
    let err = client
        .get(server.url("/"))
        .timeout(80 * MS)
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::RequestTimeout(80 * MS)));
    assert!(
        message.contains(
            "or a connect that never completed: the client's connect_timeout is not shorter than \
             this limit, so it could not fire first"
        ),
        "{message}"
    );
    assert!(!message.contains("see configure_client"), "{message}");
}

#[tokio::test]
async fn client_read_timeout_firing_first_is_named() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder().read_timeout(200 * MS),
        timeouts(2_000 * MS, 3_000 * MS, 0),
    );

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_client_timeout_of_200ms(error);
    assert!(message.contains("client's own timeout"), "{message}");
}

#[tokio::test]
async fn client_timeout_shorter_than_attempt_still_applies() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder().timeout(200 * MS),
        timeouts(2_000 * MS, 3_000 * MS, 0),
    );

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_client_timeout_of_200ms(error);
}

/// Checks that the client's own timeout of 200 ms ended a header stall.
fn assert_client_timeout_of_200ms(error: &Error) {
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    let Some(Limit::ClientTimeout(fired_after)) = error.limit() else {
        panic!("expected the client's timeout, got {:?}", error.limit());
    };
    assert!(fired_after >= 190 * MS, "fired after {fired_after:?}");
    assert!(fired_after < 1_500 * MS, "fired after {fired_after:?}");
}

fn streamed_body() -> reqwest::Body {
    reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        b"streamed upload",
    )))
}

#[tokio::test]
async fn stalled_one_shot_body_is_not_resent() {
    let server = StallHead::start().await;
    let client = with_timeouts(client_builder(), timeouts(300 * MS, 2_000 * MS, 2));

    let err = client
        .put(server.url("/upload"))
        .body(streamed_body())
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::OneShotBody);
    assert!(
        message.contains("the body is a one-shot stream"),
        "{message}"
    );
    assert!(
        message.contains("use a body that can be cloned"),
        "{message}"
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn buffered_small_stream_is_resent() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(300 * MS, 2_000 * MS, 1).buffer_request_streams(1024),
    );

    let err = client
        .put(server.url("/upload"))
        .body(streamed_body())
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(1));
    assert_eq!(server.requests(), 2);
}

/// A request body that sends one chunk, then never ends, like a caller's
/// stream that stalls.
struct StalledStream {
    sent: bool,
}

impl http_body::Body for StalledStream {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.sent {
            return std::task::Poll::Pending;
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"hello ",
        )))))
    }
}

#[tokio::test]
async fn stalled_stream_buffering_leaves_time_to_send() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 1_000 * MS, 2).buffer_request_streams(1024),
    );
    let start = Instant::now();

    let err = client
        .put(server.url("/upload"))
        .body(reqwest::Body::wrap(StalledStream { sent: false }))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let first = &error.history()[0];
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::OneShotBody);
    assert!(first.started_after() >= 450 * MS, "{first}");
    assert!(first.started_after() < 900 * MS, "{first}");
    assert!(first.limit() >= 100 * MS, "{first}");
    assert!(elapsed < 1_500 * MS, "took {elapsed:?}");
    assert_eq!(server.connections(), 1);
}
