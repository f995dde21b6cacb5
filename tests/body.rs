//! Response bodies that stall, trickle or break off after the headers arrived, read by the
//! caller after the middleware returned the response. Each case runs with a `Content-Length`
//! body and with a chunked one.

mod support;

use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest_timeout::{
    AttemptOutcome, Attempts, Diagnosis, Error, Limit, MinThroughput, Phase, StopReason,
    TimeoutMiddlewareBuilder,
};
use support::{
    client_builder, diagnosed_body, timeouts, with_timeouts, CapturedLogs, CloseMidBody, Drip,
    Framing, Healthy, PartialBody, ResetMidBody, SlowSteady, FULL_BODY_LEN, HEALTHY_BODY,
    PARTIAL_BODY_LEN,
};

const MS: Duration = Duration::from_millis(1);

/// Sends a GET through the middleware built from `timeouts`, then reads the body, which must
/// fail. Returns the error and how long reading the body took.
async fn body_error(timeouts: TimeoutMiddlewareBuilder, url: String) -> (reqwest::Error, Duration) {
    let client = with_timeouts(client_builder(), timeouts);
    let response = client
        .get(url)
        .send()
        .await
        .expect("the response headers arrive");
    let started = Instant::now();
    let error = response
        .bytes()
        .await
        .expect_err("reading the body should fail");
    (error, started.elapsed())
}

/// Returns the `Content-Length` that the partial-body fixtures announce under `framing`.
fn announced(framing: Framing) -> Option<u64> {
    match framing {
        Framing::ContentLength => Some(FULL_BODY_LEN as u64),
        Framing::Chunked => None,
    }
}

/// Checks what every failure of a streamed body has in common: one attempt, whose record
/// shows the body failure, and no retry because the response was already returned.
fn assert_streamed_body_failure(error: &Error, diagnosis: Diagnosis, framing: Framing) {
    assert_eq!(error.phase(), Phase::Body, "{framing:?}: {error}");
    assert_eq!(error.diagnosis(), diagnosis, "{framing:?}: {error}");
    assert_eq!(error.attempts(), 1, "{framing:?}: {error}");
    assert_eq!(error.stop_reason(), &StopReason::Streaming, "{framing:?}");
    assert_eq!(
        error.history()[0].outcome(),
        AttemptOutcome::Failed {
            phase: Phase::Body,
            diagnosis,
            timed_out: error.is_timeout(),
        },
        "{framing:?}"
    );
    assert!(
        error.history()[0].error().is_some(),
        "{framing:?}: the attempt record keeps the body error's text"
    );
    let message = error.to_string();
    assert!(message.contains(diagnosis.code()), "{message}");
    assert!(
        message.contains("not retried: the body failed after the response was returned"),
        "{message}"
    );
}

#[tokio::test]
async fn partial_body_fails_on_idle_timeout() {
    for framing in Framing::ALL {
        let server = PartialBody::start_with(framing).await;
        let settings = timeouts(2_000 * MS, 4_000 * MS, 2).body_idle_timeout(300 * MS);

        let (err, elapsed) = body_error(settings, server.url("/partial")).await;

        let error = diagnosed_body(&err);
        assert!(err.is_timeout(), "{framing:?}: {err:?}");
        assert!(error.is_timeout());
        assert_streamed_body_failure(error, Diagnosis::BodyStalled, framing);
        assert_eq!(error.limit(), Some(Limit::BodyIdleTimeout(300 * MS)));
        let last = error.history().last().expect("one attempt at least");
        assert_eq!(last.fired_limit(), Some(Limit::BodyIdleTimeout(300 * MS)));
        let progress = error.body_progress().expect("a body failure has progress");
        assert_eq!(progress.bytes(), PARTIAL_BODY_LEN as u64, "{framing:?}");
        assert_eq!(progress.expected_len(), announced(framing));
        assert!(elapsed >= 290 * MS, "{framing:?}: failed after {elapsed:?}");
        assert!(
            elapsed < 1_000 * MS,
            "{framing:?}: failed after {elapsed:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("after the body idle timeout of 300ms"),
            "{message}"
        );
        assert!(message.contains("read 10 B"), "{message}");
        if framing == Framing::ContentLength {
            assert!(message.contains("read 10 B of 100 B in "), "{message}");
        }
        assert_eq!(server.requests(), 1);
    }
}

#[tokio::test]
async fn partial_body_hits_attempt_limit() {
    for framing in Framing::ALL {
        let server = PartialBody::start_with(framing).await;

        let (err, elapsed) =
            body_error(timeouts(400 * MS, 4_000 * MS, 2), server.url("/partial")).await;

        let error = diagnosed_body(&err);
        assert!(err.is_timeout(), "{framing:?}: {err:?}");
        assert_streamed_body_failure(error, Diagnosis::BodyStalled, framing);
        assert_eq!(error.limit(), Some(Limit::AttemptTimeout(400 * MS)));
        assert_eq!(
            error.body_progress().map(|progress| progress.bytes()),
            Some(PARTIAL_BODY_LEN as u64)
        );
        assert!(
            elapsed < 1_200 * MS,
            "{framing:?}: failed after {elapsed:?}"
        );
        assert!(
            error
                .to_string()
                .contains("after the attempt timeout of 400ms"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn slow_reader_hits_attempt_limit() {
    // One byte per millisecond for 10 s, read every 50 ms: each read finds
    // data waiting, so the caller never waits for the body.
    let server = Drip::start(10_000, MS).await;
    let client = with_timeouts(client_builder(), timeouts(300 * MS, 3_000 * MS, 0));
    let mut response = client.get(server.url("/drip")).send().await.unwrap();
    let started = Instant::now();

    let err = loop {
        tokio::time::sleep(50 * MS).await;
        match response.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the body ended after {:?}", started.elapsed()),
            Err(err) => break err,
        }
    };

    let elapsed = started.elapsed();
    let error = diagnosed_body(&err);
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert!(elapsed < 2_000 * MS, "failed after {elapsed:?}");
}

#[tokio::test]
async fn client_timeout_while_caller_away_is_too_short() {
    let server = Healthy::start().await;
    let client = with_timeouts(
        client_builder().timeout(300 * MS),
        timeouts(2_000 * MS, 3_000 * MS, 0),
    );
    let response = client.get(server.url("/")).send().await.unwrap();

    // The whole body has arrived, but the caller reads it only after the
    // client's timeout.
    tokio::time::sleep(700 * MS).await;
    let err = response.bytes().await.unwrap_err();

    let error = diagnosed_body(&err);
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.diagnosis(), Diagnosis::TimeoutTooShort, "{error}");
    assert!(
        matches!(error.limit(), Some(Limit::ClientTimeout(_))),
        "{:?}",
        error.limit()
    );
    assert!(
        error
            .evidence()
            .iter()
            .any(|line| line.contains("not reading the body")),
        "{:?}",
        error.evidence()
    );
}

#[tokio::test]
async fn drip_fails_min_throughput() {
    for framing in Framing::ALL {
        // One byte every 50 ms is 20 B/s: never idle for 300 ms, far below 1 KiB/s.
        let server = Drip::start_with(100, 50 * MS, framing).await;
        let min = MinThroughput::new(1_024)
            .with_window(200 * MS)
            .with_grace_period(200 * MS);
        let settings = timeouts(3_000 * MS, 6_000 * MS, 2)
            .body_idle_timeout(300 * MS)
            .min_body_throughput(min);

        let (err, elapsed) = body_error(settings, server.url("/drip")).await;

        let error = diagnosed_body(&err);
        assert!(err.is_timeout(), "{framing:?}: {err:?}");
        assert_streamed_body_failure(error, Diagnosis::BodyStalled, framing);
        assert_eq!(error.limit(), Some(Limit::MinBodyThroughput(min)));
        let progress = error.body_progress().expect("a body failure has progress");
        assert!(progress.bytes() >= 1, "{framing:?}: {progress}");
        assert!(progress.bytes() < 40, "{framing:?}: {progress}");
        assert!(progress.bytes_per_second() < 1_024.0, "{progress}");
        assert!(elapsed >= 190 * MS, "{framing:?}: failed after {elapsed:?}");
        assert!(
            elapsed < 1_500 * MS,
            "{framing:?}: failed after {elapsed:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("after the minimum body throughput of 1 KiB/s over 200ms"),
            "{message}"
        );
        assert!(message.contains(" B/s)"), "{message}");
    }
}

#[tokio::test]
async fn drip_at_attempt_limit_is_flowing() {
    for framing in Framing::ALL {
        // Frequent bytes keep the gaps short even when a loaded machine
        // delays a few of them, so the flow stays recognisable.
        let server = Drip::start_with(100, 25 * MS, framing).await;
        let settings = timeouts(600 * MS, 3_000 * MS, 2).body_idle_timeout(300 * MS);

        let (err, elapsed) = body_error(settings, server.url("/drip")).await;

        // The drip never paused for long, so the limit, not the server, ended it.
        let error = diagnosed_body(&err);
        assert!(err.is_timeout(), "{framing:?}: {err:?}");
        assert_streamed_body_failure(error, Diagnosis::TimeoutTooShort, framing);
        assert_eq!(error.limit(), Some(Limit::AttemptTimeout(600 * MS)));
        let progress = error.body_progress().expect("a body failure has progress");
        assert!(progress.bytes() >= 3, "{framing:?}: {progress}");
        assert!(progress.bytes() <= 25, "{framing:?}: {progress}");
        assert!(
            elapsed < 1_800 * MS,
            "{framing:?}: failed after {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn slow_steady_body_is_timeout_too_short() {
    for framing in Framing::ALL {
        let server = SlowSteady::start_with(framing).await;

        let (err, elapsed) =
            body_error(timeouts(300 * MS, 3_000 * MS, 2), server.url("/steady")).await;

        let error = diagnosed_body(&err);
        assert!(err.is_timeout(), "{framing:?}: {err:?}");
        assert_streamed_body_failure(error, Diagnosis::TimeoutTooShort, framing);
        assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
        let progress = error.body_progress().expect("a body failure has progress");
        assert!(progress.bytes() > 0, "{framing:?}: {progress}");
        assert!(
            progress.bytes() < SlowSteady::BODY_LEN as u64,
            "{framing:?}: {progress}"
        );
        assert!(progress.bytes_per_second() > 0.0, "{progress}");
        assert!(elapsed < 900 * MS, "{framing:?}: failed after {elapsed:?}");
        let message = error.to_string();
        assert!(
            message.contains("after the attempt timeout of 300ms"),
            "{message}"
        );
        assert!(message.contains(&format!("read {progress}")), "{message}");
        assert!(message.contains("/s)"), "{message}");
        if framing == Framing::ContentLength {
            assert!(message.contains(" of 2 MiB in "), "{message}");
        }
        assert!(
            message.contains("raise the attempt or total timeout"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn slow_steady_body_completes_in_time() {
    for framing in Framing::ALL {
        let server = SlowSteady::start_with(framing).await;
        let client = with_timeouts(client_builder(), timeouts(2_000 * MS, 4_000 * MS, 2));

        let response = client.get(server.url("/steady")).send().await.unwrap();
        let attempts = response.extensions().get::<Attempts>().cloned();
        let body = response.bytes().await;

        let body = body.unwrap_or_else(|err| panic!("{framing:?}: {err:?}"));
        assert_eq!(body.len(), SlowSteady::BODY_LEN, "{framing:?}");
        assert_eq!(attempts.map(|attempts| attempts.count()), Some(1));
        assert_eq!(server.requests(), 1);
    }
}

#[tokio::test]
async fn close_mid_body_is_connection_closed() {
    for framing in Framing::ALL {
        let server = CloseMidBody::always(framing).await;

        let (err, _elapsed) =
            body_error(timeouts(2_000 * MS, 4_000 * MS, 2), server.url("/close")).await;

        let error = diagnosed_body(&err);
        assert!(!err.is_timeout(), "{framing:?}: {err:?}");
        assert!(!error.is_timeout());
        assert_streamed_body_failure(error, Diagnosis::ConnectionClosed, framing);
        assert_eq!(error.limit(), None);
        let progress = error.body_progress().expect("a body failure has progress");
        assert_eq!(progress.bytes(), PARTIAL_BODY_LEN as u64, "{framing:?}");
        assert_eq!(progress.expected_len(), announced(framing));
        let message = error.to_string();
        assert!(
            message.contains("failed reading the response body, read 10 B"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn post_body_reset_is_not_retryable() {
    let server = ResetMidBody::always(Framing::ContentLength).await;
    let client = with_timeouts(client_builder(), timeouts(2_000 * MS, 4_000 * MS, 2));
    let response = client
        .post(server.url("/orders"))
        .body("order")
        .send()
        .await
        .expect("the response headers arrive");

    let err = response.bytes().await.unwrap_err();

    let error = diagnosed_body(&err);
    assert_eq!(error.phase(), Phase::Body, "{error}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed, "{error}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert!(!error.is_retryable(), "{error}");
    assert!(
        !error.to_string().contains("buffer_response_body"),
        "{error}"
    );
}

#[tokio::test]
async fn post_body_reset_with_idempotency_key_is_retryable() {
    let server = ResetMidBody::always(Framing::ContentLength).await;
    let client = with_timeouts(client_builder(), timeouts(2_000 * MS, 4_000 * MS, 2));
    let response = client
        .post(server.url("/orders"))
        .header("Idempotency-Key", "order-7")
        .body("order")
        .send()
        .await
        .expect("the response headers arrive");

    let err = response.bytes().await.unwrap_err();

    let error = diagnosed_body(&err);
    assert_eq!(error.stop_reason(), &StopReason::Streaming);
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn reset_mid_body_is_connection_closed() {
    for framing in Framing::ALL {
        let server = ResetMidBody::always(framing).await;

        let (err, _elapsed) =
            body_error(timeouts(2_000 * MS, 4_000 * MS, 2), server.url("/reset")).await;

        let error = diagnosed_body(&err);
        assert!(!err.is_timeout(), "{framing:?}: {err:?}");
        assert_streamed_body_failure(error, Diagnosis::ConnectionClosed, framing);
        assert_eq!(error.limit(), None);
        let progress = error.body_progress().expect("a body failure has progress");
        // A reset may discard bytes the client had received but not read.
        assert!(
            progress.bytes() <= PARTIAL_BODY_LEN as u64,
            "{framing:?}: {progress}"
        );
        assert_eq!(progress.expected_len(), announced(framing));
    }
}

#[tokio::test]
async fn client_read_timeout_mid_body_is_diagnosed() {
    let server = PartialBody::start().await;
    let client = with_timeouts(
        client_builder().read_timeout(300 * MS),
        timeouts(3_000 * MS, 6_000 * MS, 2),
    );
    let response = client.get(server.url("/partial")).send().await.unwrap();

    let err = response.bytes().await.unwrap_err();

    // The client's own read timeout fired, long before the attempt limit.
    let error = diagnosed_body(&err);
    assert!(err.is_timeout(), "{err:?}");
    assert_streamed_body_failure(error, Diagnosis::BodyStalled, Framing::ContentLength);
    let Some(Limit::ClientTimeout(fired_after)) = error.limit() else {
        panic!("expected the client's own timeout, got {:?}", error.limit());
    };
    assert!(fired_after >= 290 * MS, "fired after {fired_after:?}");
    assert!(fired_after < 2_000 * MS, "fired after {fired_after:?}");
    assert_eq!(
        error.body_progress().map(|progress| progress.bytes()),
        Some(PARTIAL_BODY_LEN as u64)
    );
}

#[tokio::test]
async fn time_away_from_body_is_not_idle() {
    let server = Drip::start(4, 20 * MS).await;
    let client = with_timeouts(
        client_builder(),
        timeouts(3_000 * MS, 6_000 * MS, 2).body_idle_timeout(200 * MS),
    );
    let mut response = client.get(server.url("/drip")).send().await.unwrap();

    let mut received = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("the body arrives in time") {
        received.extend_from_slice(&chunk);
        // The caller spends longer on each chunk than the idle timeout.
        tokio::time::sleep(300 * MS).await;
    }

    assert_eq!(received, b"xxxx");
}

#[tokio::test]
async fn guarded_response_keeps_url_and_address() {
    let server = Healthy::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(2_000 * MS, 4_000 * MS, 2).body_idle_timeout(500 * MS),
    );
    let url = server.url("/health?page=2");

    let response = client.get(&url).send().await.unwrap();

    assert_eq!(response.url().as_str(), url);
    assert_eq!(response.remote_addr(), Some(server.addr()));
    assert_eq!(response.content_length(), Some(HEALTHY_BODY.len() as u64));
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.extensions().get::<Attempts>().map(Attempts::count),
        Some(1)
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), HEALTHY_BODY);
}

#[tokio::test]
async fn body_failure_log_hides_secrets() {
    const CANARY: &str = "c4nary-s3cret";
    let server = PartialBody::start().await;
    let (captured, _guard) = CapturedLogs::install();
    let url = format!(
        "http://alice:{CANARY}@{}/v1/items?token={CANARY}",
        server.addr()
    );

    let (err, _elapsed) = body_error(
        timeouts(2_000 * MS, 4_000 * MS, 2).body_idle_timeout(200 * MS),
        url,
    )
    .await;

    let error = diagnosed_body(&err);
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    let logs = captured.text();
    assert!(!text.contains(CANARY), "{text}");
    assert!(!logs.contains(CANARY), "{logs}");
    assert!(
        text.starts_with(&format!("GET http://{}/v1/items: ", server.addr())),
        "{text}"
    );
    assert!(
        logs.contains("response body failed after the response was returned"),
        "{logs}"
    );
    assert!(logs.contains("reason=\"body-stalled\""), "{logs}");
    assert!(logs.contains("bytes=10"), "{logs}");
}

/// A layer below the middleware that reads the whole response body itself,
/// as a logging or caching layer does, and fails when the body fails.
struct ReadsBody;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ReadsBody {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(request, extensions).await?;
        response.bytes().await?;
        Err(reqwest_middleware::Error::middleware(
            std::io::Error::other("the body ended, so this layer has nothing to return"),
        ))
    }
}

#[tokio::test]
async fn body_read_below_the_middleware_fails_in_body() {
    let server = CloseMidBody::always(Framing::ContentLength).await;
    let client = client_builder().build().unwrap();
    let middleware = timeouts(1_000 * MS, 2_000 * MS, 0).build().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .with(ReadsBody)
        .build();

    let err = client.get(server.url("/close")).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.phase(), Phase::Body, "{error}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionClosed, "{error}");
}
