//! Buffered mode: the middleware reads the whole body within the attempt, so a body that
//! stalls or breaks off is retried like any other failure, and a body over the maximum is
//! streamed instead.

mod support;

use std::time::{Duration, Instant};

use reqwest_timeout::{
    AttemptOutcome, Attempts, BodyBuffering, Diagnosis, Limit, Phase, StopReason,
    TimeoutMiddlewareBuilder,
};
use support::{
    client_builder, diagnosed, timeouts, with_timeouts, Blackhole, CloseMidBody, Framing, Healthy,
    PartialBody, SlowSteady, StaticResolver, FULL_BODY_LEN, HEALTHY_BODY, PARTIAL_BODY_LEN,
};

const MS: Duration = Duration::from_millis(1);

/// Buffered mode with the given limits and a 200 ms body idle timeout.
fn buffered(attempt: Duration, total: Duration, retries: u32) -> TimeoutMiddlewareBuilder {
    timeouts(attempt, total, retries)
        .buffer_response_body(true)
        .body_idle_timeout(200 * MS)
}

fn attempts(response: &reqwest::Response) -> Attempts {
    response
        .extensions()
        .get::<Attempts>()
        .expect("every response carries Attempts")
        .clone()
}

fn buffering(response: &reqwest::Response) -> Option<BodyBuffering> {
    response.extensions().get::<BodyBuffering>().copied()
}

#[tokio::test]
async fn partial_body_is_retried_until_server_recovers() {
    for framing in Framing::ALL {
        let server = PartialBody::failing(1, framing).await;
        let client = with_timeouts(client_builder(), buffered(2_000 * MS, 5_000 * MS, 2));

        let response = client.get(server.url("/report")).send().await;

        let response = response.unwrap_or_else(|err| panic!("{framing:?}: {err}"));
        let attempts = attempts(&response);
        assert_eq!(attempts.count(), 2, "{framing:?}");
        assert_eq!(
            attempts.history()[0].outcome(),
            AttemptOutcome::Failed {
                phase: Phase::Body,
                diagnosis: Diagnosis::BodyStalled,
                timed_out: true,
            }
        );
        assert_eq!(attempts.stop_reason(), &StopReason::Completed);
        assert_eq!(
            buffering(&response),
            Some(BodyBuffering::Buffered {
                len: FULL_BODY_LEN as u64
            })
        );
        let body = response.bytes().await.expect("a buffered body cannot fail");
        assert_eq!(body.len(), FULL_BODY_LEN);
        assert_eq!(server.requests(), 2);
    }
}

#[tokio::test]
async fn closed_body_is_retried_until_recovery() {
    for framing in Framing::ALL {
        let server = CloseMidBody::failing(2, framing).await;
        let client = with_timeouts(client_builder(), buffered(2_000 * MS, 5_000 * MS, 3));

        let response = client.get(server.url("/report")).send().await;

        let response = response.unwrap_or_else(|err| panic!("{framing:?}: {err}"));
        let attempts = attempts(&response);
        assert_eq!(attempts.count(), 3, "{framing:?}");
        for attempt in &attempts.history()[..2] {
            assert_eq!(
                attempt.outcome(),
                AttemptOutcome::Failed {
                    phase: Phase::Body,
                    diagnosis: Diagnosis::ConnectionClosed,
                    timed_out: false,
                },
                "{framing:?}: {attempt}"
            );
        }
        assert_eq!(response.bytes().await.unwrap().len(), FULL_BODY_LEN);
        assert_eq!(server.requests(), 3);
    }
}

#[tokio::test]
async fn partial_body_fails_after_max_retries() {
    let server = PartialBody::start().await;
    let client = with_timeouts(client_builder(), buffered(2_000 * MS, 5_000 * MS, 2));
    let started = Instant::now();

    let err = client.get(server.url("/report")).send().await.unwrap_err();

    let elapsed = started.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.diagnosis(), Diagnosis::BodyStalled);
    assert_eq!(error.limit(), Some(Limit::BodyIdleTimeout(200 * MS)));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    let progress = error.body_progress().expect("a body failure has progress");
    assert_eq!(progress.bytes(), PARTIAL_BODY_LEN as u64);
    assert_eq!(progress.expected_len(), Some(FULL_BODY_LEN as u64));
    // Three idle timeouts of 200 ms and waits of 50 and 100 ms.
    assert!(elapsed >= 740 * MS, "took {elapsed:?}");
    assert!(elapsed < 2_500 * MS, "took {elapsed:?}");
    assert!(error.to_string().contains("read 10 B of 100 B"), "{error}");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn post_with_partial_body_is_not_resent() {
    let server = PartialBody::start().await;
    let client = with_timeouts(client_builder(), buffered(2_000 * MS, 5_000 * MS, 2));

    let err = client
        .post(server.url("/orders"))
        .body("order")
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.diagnosis(), Diagnosis::BodyStalled);
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn slow_steady_body_is_timeout_too_short() {
    let server = SlowSteady::start().await;
    let client = with_timeouts(client_builder(), buffered(300 * MS, 3_000 * MS, 0));
    let started = Instant::now();

    let err = client.get(server.url("/steady")).send().await.unwrap_err();

    let elapsed = started.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.diagnosis(), Diagnosis::TimeoutTooShort);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(0));
    let progress = error.body_progress().expect("a body failure has progress");
    assert!(progress.bytes() > 0, "{progress}");
    assert!(progress.bytes() < SlowSteady::BODY_LEN as u64, "{progress}");
    assert!(elapsed >= 290 * MS, "took {elapsed:?}");
    assert!(elapsed < 900 * MS, "took {elapsed:?}");
}

#[tokio::test]
async fn oversize_content_length_is_streamed() {
    let server = SlowSteady::start().await;
    let client = with_timeouts(
        client_builder(),
        buffered(3_000 * MS, 6_000 * MS, 2).max_buffered_response_len(1024 * 1024),
    );
    let started = Instant::now();

    let response = client.get(server.url("/large")).send().await.unwrap();

    // The response came back with its headers, before the 640 ms the body takes.
    let returned_after = started.elapsed();
    assert!(
        returned_after < 500 * MS,
        "returned after {returned_after:?}"
    );
    assert_eq!(
        buffering(&response),
        Some(BodyBuffering::Streamed {
            max_len: 1024 * 1024,
            content_length: Some(SlowSteady::BODY_LEN as u64),
        })
    );
    assert_eq!(attempts(&response).count(), 1);
    let body = response.bytes().await.expect("the streamed body completes");
    assert_eq!(body.len(), SlowSteady::BODY_LEN);
}

#[tokio::test]
async fn chunked_body_over_max_is_streamed() {
    let server = SlowSteady::start_with(Framing::Chunked).await;
    let client = with_timeouts(
        client_builder(),
        buffered(3_000 * MS, 6_000 * MS, 2).max_buffered_response_len(256 * 1024),
    );

    let response = client.get(server.url("/large")).send().await.unwrap();

    assert_eq!(
        buffering(&response),
        Some(BodyBuffering::Streamed {
            max_len: 256 * 1024,
            content_length: None,
        })
    );
    let body = response.bytes().await.expect("the streamed body completes");
    assert_eq!(body.len(), SlowSteady::BODY_LEN);
    assert!(body.iter().all(|&byte| byte == b'x'));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn buffered_response_keeps_url_and_address() {
    let server = Healthy::start().await;
    let client = with_timeouts(client_builder(), buffered(2_000 * MS, 4_000 * MS, 2));
    let url = server.url("/health");

    let response = client.get(&url).send().await.unwrap();

    assert_eq!(response.url().as_str(), url);
    assert_eq!(response.remote_addr(), Some(server.addr()));
    assert_eq!(response.content_length(), Some(HEALTHY_BODY.len() as u64));
    assert_eq!(
        buffering(&response),
        Some(BodyBuffering::Buffered {
            len: HEALTHY_BODY.len() as u64
        })
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), HEALTHY_BODY);
}

#[tokio::test]
async fn head_response_is_marked_buffered_and_empty() {
    let server = Healthy::start().await;
    let client = with_timeouts(client_builder(), buffered(2_000 * MS, 4_000 * MS, 2));

    let response = client.head(server.url("/health")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        buffering(&response),
        Some(BodyBuffering::Buffered { len: 0 })
    );
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn huge_content_length_reserves_no_memory_up_front() {
    // A hostile server announces 500 GB and sends 3 bytes. Reserving the
    // announced length up front would abort the process.
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 500000000000\r\n\r\nabc".to_vec();
    let server = support::Sequence::start(vec![head]).await;
    let client = with_timeouts(
        client_builder(),
        buffered(1_000 * MS, 2_000 * MS, 0).max_buffered_response_len(u64::MAX),
    );

    let err = client.get(server.url("/huge")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let progress = error.body_progress().expect("a body failure has progress");
    assert_eq!(error.phase(), Phase::Body);
    assert_eq!(error.diagnosis(), Diagnosis::BodyStalled);
    assert_eq!(progress.bytes(), 3);
    assert_eq!(progress.expected_len(), Some(500_000_000_000));
}

#[tokio::test]
async fn attempt_duration_leaves_out_the_first_hop_check() {
    // The slow resolver keeps reqwest's connect timer ahead of hyper-util's,
    // so the error names no address and the middleware checks the first hop
    // with bare connects, which take up to the connect timeout again.
    let blackhole = Blackhole::start().await;
    let resolver = StaticResolver::slow(50 * MS, vec![blackhole.addr()]);
    let client = with_timeouts(
        client_builder()
            .dns_resolver(resolver)
            .connect_timeout(150 * MS),
        timeouts(1_000 * MS, 3_000 * MS, 0).buffer_response_body(true),
    );
    let url = format!("http://localhost:{}/", blackhole.addr().port());

    let error = client.post(url).body("x").send().await.unwrap_err();

    let diagnosed = diagnosed(&error);
    assert_eq!(diagnosed.stop_reason(), &StopReason::MaxRetries(0));
    let attempt = &diagnosed.history()[0];
    assert!(
        attempt.duration() + 100 * MS <= diagnosed.elapsed(),
        "the attempt's {:?} includes the check that ran after it, in a call of {:?}",
        attempt.duration(),
        diagnosed.elapsed()
    );
}
