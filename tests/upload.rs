//! Request bodies that the server stops reading or that the caller's stream fails, and the
//! response header timeout, which starts once the request body has been sent.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use reqwest_timeout::{AttemptOutcome, Diagnosis, Limit, Phase, StopReason};
use support::{
    client_builder, diagnosed, ok, response, timeouts, with_timeouts, Healthy, ReceivedBody,
    RecordUpload, Sequence, StallHead, StopReading,
};

const MS: Duration = Duration::from_millis(1);
const UPLOAD_LEN: usize = 32 * 1024 * 1024;

#[tokio::test]
async fn stalled_post_upload_fails_in_send_once() {
    let server = StopReading::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 2));

    let err = client
        .post(server.url("/upload"))
        .body(vec![b'x'; UPLOAD_LEN])
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Send);
    assert_eq!(error.diagnosis(), Diagnosis::UploadStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(500 * MS)));
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    let progress = error
        .body_progress()
        .expect("a tracked upload has progress");
    assert!(progress.bytes() > 0, "{progress}");
    assert!(progress.bytes() < UPLOAD_LEN as u64, "{progress}");
    assert_eq!(progress.expected_len(), Some(UPLOAD_LEN as u64));
    let message = error.to_string();
    assert!(
        message.contains("timed out sending the request after the attempt timeout of 500ms, sent "),
        "{message}"
    );
    assert!(message.contains(" of 32 MiB in "), "{message}");
    assert!(message.contains("upload-stalled"), "{message}");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn stalled_put_upload_is_retried_in_send() {
    let server = StopReading::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 5));
    let started = Instant::now();

    let err = client
        .put(server.url("/upload"))
        .body(vec![b'x'; UPLOAD_LEN])
        .send()
        .await
        .unwrap_err();

    let elapsed = started.elapsed();
    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Send);
    assert!(error.attempts() >= 3, "{error}");
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
    for attempt in error.history() {
        assert_eq!(
            attempt.outcome(),
            AttemptOutcome::Failed {
                phase: Phase::Send,
                diagnosis: Diagnosis::UploadStalled,
                timed_out: true,
            },
            "{attempt}"
        );
    }
    assert!(elapsed <= 2_500 * MS, "took {elapsed:?}");
    assert_eq!(server.connections(), error.attempts() as usize);
}

#[tokio::test]
async fn untracked_upload_stall_looks_like_a_header_stall() {
    let server = StopReading::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(500 * MS, 2_000 * MS, 0).track_request_body(false),
    );

    let err = client
        .post(server.url("/upload"))
        .body(vec![b'x'; UPLOAD_LEN])
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.body_progress(), None);
}

#[tokio::test]
async fn tracked_upload_keeps_its_content_length() {
    let server = Healthy::start().await;
    let client = with_timeouts(client_builder(), timeouts(2_000 * MS, 4_000 * MS, 0));

    // The server finds the end of each body by its Content-Length; a chunked body would
    // break the second request on the same connection.
    for _ in 0..2 {
        let response = client
            .post(server.url("/upload"))
            .body(vec![b'x'; 100 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }

    assert_eq!(server.requests(), 2);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn tracked_upload_is_not_redirected_by_307() {
    let large = vec![b'x'; 100 * 1024];
    let small = b"payload".to_vec();
    let cases = [
        (true, large.clone(), 307, 1),
        (false, large, 200, 2),
        // Bodies under 64 KiB are not tracked, so they stay cloneable.
        (true, small, 200, 2),
    ];
    for (tracked, body, expected_status, expected_requests) in cases {
        let len = body.len();
        let server = Sequence::start(vec![
            response("307 Temporary Redirect", &[("Location", "/moved")], b""),
            ok(b"done"),
        ])
        .await;
        let client = with_timeouts(
            client_builder(),
            timeouts(2_000 * MS, 4_000 * MS, 0).track_request_body(tracked),
        );

        let response = client
            .post(server.url("/upload"))
            .body(body)
            .send()
            .await
            .unwrap();

        // reqwest re-sends a body on a 307 only when it can clone it.
        let case = format!("tracked: {tracked}, {len} bytes");
        assert_eq!(response.status(), expected_status, "{case}");
        assert_eq!(server.requests(), expected_requests, "{case}");
    }
}

#[tokio::test]
async fn header_timeout_ends_attempt_before_attempt_timeout() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(2_000 * MS, 4_000 * MS, 0).response_header_timeout(200 * MS),
    );
    let started = Instant::now();

    let err = client.get(server.url("/slow")).send().await.unwrap_err();

    let elapsed = started.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::ResponseHeaderTimeout(200 * MS)));
    assert!(elapsed >= 190 * MS, "took {elapsed:?}");
    assert!(elapsed < 1_000 * MS, "took {elapsed:?}");
    let message = error.to_string();
    assert!(
        message.contains(
            "timed out waiting for the response headers after the response header timeout of 200ms"
        ),
        "{message}"
    );
    // Without a request body the timeout started with the attempt, connect included.
    assert!(
        message.contains("or a connect that never completed"),
        "{message}"
    );
}

#[tokio::test]
async fn header_timeout_is_retried() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 3_000 * MS, 2).response_header_timeout(150 * MS),
    );
    let started = Instant::now();

    let err = client.get(server.url("/slow")).send().await.unwrap_err();

    let elapsed = started.elapsed();
    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    assert_eq!(error.limit(), Some(Limit::ResponseHeaderTimeout(150 * MS)));
    for attempt in error.history() {
        assert_eq!(
            attempt.fired_limit(),
            Some(Limit::ResponseHeaderTimeout(150 * MS)),
            "{attempt}"
        );
        assert_eq!(attempt.limit(), 1_000 * MS, "{attempt}");
        assert!(
            attempt
                .to_string()
                .contains("(limit 1s), ended by the response header timeout of 150ms"),
            "{attempt}"
        );
    }
    // Three timeouts of 150 ms and waits of 50 and 100 ms.
    assert!(elapsed >= 590 * MS, "took {elapsed:?}");
    assert!(elapsed < 2_000 * MS, "took {elapsed:?}");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn header_timeout_after_upload_omits_connect_note() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(2_000 * MS, 4_000 * MS, 2).response_header_timeout(200 * MS),
    );

    let err = client
        .post(server.url("/orders"))
        .body(vec![b'o'; 100 * 1024])
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.limit(), Some(Limit::ResponseHeaderTimeout(200 * MS)));
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert!(
        !error
            .to_string()
            .contains("or a connect that never completed"),
        "{error}"
    );
}

#[tokio::test]
async fn header_timeout_waits_for_the_upload() {
    let server = StopReading::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(600 * MS, 2_000 * MS, 0).response_header_timeout(100 * MS),
    );

    let err = client
        .post(server.url("/upload"))
        .body(vec![b'x'; UPLOAD_LEN])
        .send()
        .await
        .unwrap_err();

    // The upload never finished, so the header timeout never started.
    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Send);
    assert_eq!(error.diagnosis(), Diagnosis::UploadStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(600 * MS)));
}

#[tokio::test]
async fn failing_upload_stream_fails_in_send() {
    let server = StallHead::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 2));

    let err = client
        .put(server.url("/upload"))
        .body(reqwest::Body::wrap(FailAfterFirstChunk::disk_error()))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Send, "{error}");
    assert_eq!(error.diagnosis(), Diagnosis::Other, "{error}");
    assert!(!error.is_timeout(), "{error}");
    assert_eq!(error.attempts(), 1);
    assert!(
        !error.to_string().contains("response body"),
        "the caller's upload is not the response: {error}"
    );
}

/// A request body that yields `first-half|`, then fails with an error of
/// `kind`, as a file read can.
struct FailAfterFirstChunk {
    polls: usize,
    kind: std::io::ErrorKind,
}

impl FailAfterFirstChunk {
    /// Returns a body that fails with "disk read failed", of kind `Other`.
    fn disk_error() -> Self {
        Self::with_kind(std::io::ErrorKind::Other)
    }

    fn with_kind(kind: std::io::ErrorKind) -> Self {
        FailAfterFirstChunk { polls: 0, kind }
    }
}

impl http_body::Body for FailAfterFirstChunk {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.polls += 1;
        Poll::Ready(match self.polls {
            1 => Some(Ok(Frame::data(Bytes::from_static(b"first-half|")))),
            2 => Some(Err(std::io::Error::new(self.kind, "disk read failed"))),
            _ => None,
        })
    }
}

/// Sends a `FailAfterFirstChunk` body with `buffer_request_streams(max_bytes)`. Returns the
/// outcome and the bodies the server received before the connection ended.
async fn send_failing_stream(
    max_bytes: usize,
) -> (
    reqwest_middleware::Result<reqwest::Response>,
    Vec<ReceivedBody>,
) {
    let server = RecordUpload::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 2_000 * MS, 1).buffer_request_streams(max_bytes),
    );

    let outcome = client
        .put(server.url("/upload"))
        .body(reqwest::Body::wrap(FailAfterFirstChunk::disk_error()))
        .send()
        .await;

    // Dropping the client closes a kept-alive connection, so the server records the end
    // of every connection whether or not the upload failed.
    drop(client);
    server.wait_for_closes(1, 2_000 * MS).await;
    (outcome, server.bodies())
}

#[tokio::test]
async fn buffered_failing_stream_fails_the_upload() {
    let (unbuffered, _) = send_failing_stream(0).await;
    let (buffered, bodies) = send_failing_stream(1024).await;

    for body in &bodies {
        assert!(
            !body.complete,
            "the server received the complete body {:?}",
            String::from_utf8_lossy(&body.bytes)
        );
    }
    let err = match buffered {
        Ok(response) => panic!(
            "the upload returned {} although its stream failed; the server received {bodies:?}",
            response.status()
        ),
        Err(err) => err,
    };
    let expected = unbuffered.expect_err("an upload whose stream fails fails unbuffered too");
    let error = diagnosed(&err);
    let expected = diagnosed(&expected);
    assert_eq!(error.phase(), expected.phase(), "{error}");
    assert_eq!(error.diagnosis(), expected.diagnosis(), "{error}");
    assert_eq!(error.attempts(), 1, "{error}");
    assert_eq!(error.stop_reason(), expected.stop_reason(), "{error}");
    let attempt_error = error.history()[0].error().unwrap_or_default();
    assert!(attempt_error.contains("disk read failed"), "{error:#}");
}

#[tokio::test]
async fn timed_out_upload_stream_fails_in_send() {
    let server = StallHead::start().await;
    let client = with_timeouts(client_builder(), timeouts(500 * MS, 2_000 * MS, 2));

    let err = client
        .put(server.url("/upload"))
        .body(reqwest::Body::wrap(FailAfterFirstChunk::with_kind(
            std::io::ErrorKind::TimedOut,
        )))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Send, "{error}");
    assert_eq!(error.diagnosis(), Diagnosis::Other, "{error}");
    assert_eq!(error.limit(), None, "{error}");
    assert_eq!(error.attempts(), 1);
}
