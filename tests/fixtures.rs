//! Smoke tests showing that each fixture in `tests/support` behaves as documented,
//! checked with a bare `reqwest::Client` and no middleware.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Short timeout given to clients in these tests.
const SHORT: Duration = Duration::from_millis(300);
/// Generous bound on how long a call with a [`SHORT`] timeout may take.
const SHORT_BOUND: Duration = Duration::from_secs(2);

fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("failed to build a reqwest client")
}

fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    client_builder()
        .timeout(timeout)
        .build()
        .expect("failed to build a reqwest client with a timeout")
}

#[tokio::test]
async fn closed_port_refuses_connect() {
    let addr = closed_port();
    let started = Instant::now();

    let error = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect_err("a closed port should refuse the connection");

    assert!(
        error.is_connect(),
        "expected a connect error, got {error:?}"
    );
    assert!(!error.is_timeout(), "a refusal is not a timeout: {error:?}");
    assert!(
        started.elapsed() < SHORT_BOUND,
        "refusal took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn closed_port_serves_after_start_on() {
    let addr = closed_port();
    let client = client();
    let url = format!("http://{addr}/");
    client
        .get(&url)
        .send()
        .await
        .expect_err("nothing listens on the port yet");

    let server = Healthy::start_on(addr).await;
    let response = client
        .get(&url)
        .send()
        .await
        .expect("the healthy server should answer");

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("body should arrive").as_ref(),
        HEALTHY_BODY
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn blackhole_connect_times_out() {
    let blackhole = Blackhole::start().await;
    assert!(
        blackhole.filler_count() >= 1,
        "the accept queue needs at least one filler"
    );
    let client = client_builder()
        .connect_timeout(SHORT)
        .build()
        .expect("failed to build a reqwest client with a connect timeout");
    let started = Instant::now();

    let error = client
        .get(blackhole.url("/"))
        .send()
        .await
        .expect_err("a blackholed connect should time out");
    let elapsed = started.elapsed();

    assert!(
        error.is_connect(),
        "expected a connect error, got {error:?}"
    );
    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    assert!(
        elapsed >= SHORT,
        "the connect gave up early, after {elapsed:?}"
    );
    assert!(elapsed < SHORT_BOUND, "the connect took {elapsed:?}");
    assert_eq!(blackhole.connections(), 0);
}

#[tokio::test]
async fn stall_head_times_out_and_sees_close() {
    let server = StallHead::start().await;

    let error = client_with_timeout(SHORT)
        .get(server.url("/stall"))
        .send()
        .await
        .expect_err("a server that never answers should time out");
    let failed_at = Instant::now();

    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    assert_eq!(server.requests(), 1);
    let closes = server.wait_for_closes(1, SHORT_BOUND).await;
    let close_delay = closes[0].saturating_duration_since(failed_at);
    assert!(
        close_delay < Duration::from_secs(1),
        "the client closed {close_delay:?} after the error"
    );
}

#[tokio::test]
async fn partial_body_stalls_after_ten_bytes() {
    let server = PartialBody::start().await;
    let response = client_with_timeout(SHORT)
        .get(server.url("/partial"))
        .send()
        .await
        .expect("the response head is complete");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.content_length(),
        Some(PartialBody::CONTENT_LENGTH as u64)
    );

    let error = response
        .bytes()
        .await
        .expect_err("the body never completes");

    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
}

#[tokio::test]
async fn chunked_partial_body_stalls_after_ten_bytes() {
    let server = PartialBody::start_with(Framing::Chunked).await;
    let response = client_with_timeout(SHORT)
        .get(server.url("/partial"))
        .send()
        .await
        .expect("the response head is complete");
    assert_eq!(response.content_length(), None);

    let error = response
        .bytes()
        .await
        .expect_err("the body never completes");

    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
}

#[tokio::test]
async fn partial_body_recovers_with_full_body() {
    let server = PartialBody::failing(1, Framing::Chunked).await;
    let client = client_with_timeout(SHORT);
    let first = client.get(server.url("/")).send().await.unwrap();
    let _ = first.bytes().await.expect_err("the first body stalls");

    let body = client
        .get(server.url("/"))
        .send()
        .await
        .expect("the recovered server should answer")
        .bytes()
        .await
        .expect("the recovered body should complete");

    assert_eq!(body.len(), FULL_BODY_LEN);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn close_mid_body_breaks_the_body() {
    for framing in Framing::ALL {
        let server = CloseMidBody::always(framing).await;
        let response = client()
            .get(server.url("/close"))
            .send()
            .await
            .expect("the response head is complete");

        let error = response.bytes().await.expect_err("the body is cut short");

        assert!(!error.is_timeout(), "{framing:?}: {error:?}");
        assert!(
            error.is_decode() || error.is_body(),
            "{framing:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn reset_mid_body_breaks_the_body() {
    for framing in Framing::ALL {
        let server = ResetMidBody::always(framing).await;
        let response = client()
            .get(server.url("/reset"))
            .send()
            .await
            .expect("the response head is complete");

        let error = response.bytes().await.expect_err("the body is cut short");

        assert!(!error.is_timeout(), "{framing:?}: {error:?}");
        assert!(
            error.is_decode() || error.is_body(),
            "{framing:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn chunked_slow_steady_delivers_whole_body() {
    let server = SlowSteady::start_with(Framing::Chunked).await;

    let response = client()
        .get(server.url("/steady"))
        .send()
        .await
        .expect("the slow server should answer");
    let length = response.content_length();
    let body = response
        .bytes()
        .await
        .expect("the slow body should complete");

    assert_eq!(length, None);
    assert_eq!(body.len(), SlowSteady::BODY_LEN);
}

#[tokio::test]
async fn chunked_drip_delivers_body_slowly() {
    let server = Drip::start_with(3, Duration::from_millis(20), Framing::Chunked).await;

    let body = client()
        .get(server.url("/drip"))
        .send()
        .await
        .expect("the drip server should answer")
        .bytes()
        .await
        .expect("the dripped body should complete");

    assert_eq!(body.as_ref(), b"xxx");
}

#[tokio::test]
async fn drip_delivers_body_slowly() {
    let interval = Duration::from_millis(20);
    let server = Drip::start(5, interval).await;
    let started = Instant::now();

    let body = client()
        .get(server.url("/drip"))
        .send()
        .await
        .expect("the drip server should answer")
        .bytes()
        .await
        .expect("the dripped body should complete");

    assert_eq!(body.as_ref(), b"xxxxx");
    assert!(
        started.elapsed() >= interval * 5,
        "the body arrived after only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_steady_delivers_whole_body() {
    let server = SlowSteady::start().await;
    let started = Instant::now();

    let body = client()
        .get(server.url("/steady"))
        .send()
        .await
        .expect("the slow server should answer")
        .bytes()
        .await
        .expect("the slow body should complete");
    let elapsed = started.elapsed();

    assert_eq!(body.len(), SlowSteady::BODY_LEN);
    assert!(
        elapsed >= Duration::from_millis(640),
        "the body arrived after only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "the body took {elapsed:?}"
    );
}

#[tokio::test]
async fn truncated_head_fails_twice_then_recovers() {
    let server = TruncatedHead::failing(2).await;
    let client = client();

    for attempt in 1..=2 {
        let error = client
            .get(server.url("/"))
            .send()
            .await
            .expect_err("the truncated head should fail the request");
        assert!(
            !error.is_timeout(),
            "attempt {attempt}: a truncated head is not a timeout: {error:?}"
        );
    }
    let response = client
        .get(server.url("/"))
        .send()
        .await
        .expect("the third connection is served");

    assert_eq!(response.status(), 200);
    assert_eq!(server.connections(), 3);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn reset_fails_once_then_recovers() {
    let server = Reset::failing(1).await;
    let client = client();

    let error = client
        .get(server.url("/"))
        .send()
        .await
        .expect_err("the reset should fail the request");
    assert!(!error.is_timeout(), "a reset is not a timeout: {error:?}");
    let response = client
        .get(server.url("/"))
        .send()
        .await
        .expect("the second connection is served");

    assert_eq!(response.status(), 200);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn accept_close_counts_connections() {
    let server = AcceptClose::always().await;

    let error = client()
        .get(server.url("/"))
        .send()
        .await
        .expect_err("a closed connection should fail the request");

    assert!(
        !error.is_timeout(),
        "an immediate close is not a timeout: {error:?}"
    );
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn tls_silent_handshake_times_out() {
    let server = TlsSilent::start().await;
    let client = client_builder()
        .connect_timeout(SHORT)
        .build()
        .expect("failed to build a reqwest client with a connect timeout");
    let started = Instant::now();

    let error = client
        .get(server.https_url("/"))
        .send()
        .await
        .expect_err("a silent TLS server should time out the handshake");

    assert!(
        error.is_connect(),
        "expected a connect error, got {error:?}"
    );
    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    assert!(
        started.elapsed() < SHORT_BOUND,
        "the handshake took {:?}",
        started.elapsed()
    );
    assert!(
        server.received_bytes() > 0,
        "the ClientHello should have arrived"
    );
}

#[tokio::test]
async fn plain_on_tls_fails_handshake() {
    let server = PlainOnTls::start().await;

    let error = client()
        .get(server.https_url("/"))
        .send()
        .await
        .expect_err("a plain-text answer should fail the TLS handshake");

    assert!(
        error.is_connect(),
        "expected a connect error, got {error:?}"
    );
    assert!(
        !error.is_timeout(),
        "a handshake failure is not a timeout: {error:?}"
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn keepalive_then_close_drops_second_request() {
    let server = KeepaliveThenClose::start().await;
    let client = client();

    let first = client
        .get(server.url("/one"))
        .send()
        .await
        .expect("the first request is served");
    assert_eq!(
        first
            .bytes()
            .await
            .expect("the first body should arrive")
            .as_ref(),
        b"ok"
    );
    let error = client
        .get(server.url("/two"))
        .send()
        .await
        .expect_err("the reused connection closes without a response");

    assert!(
        !error.is_timeout(),
        "a closed connection is not a timeout: {error:?}"
    );
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn sequence_serves_503_then_200() {
    let server = Sequence::start(vec![
        response("503 Service Unavailable", &[("Retry-After", "1")], b"busy"),
        ok(b"done"),
    ])
    .await;
    let client = client();

    let first = client
        .get(server.url("/"))
        .send()
        .await
        .expect("the first response arrives");
    assert_eq!(first.status(), 503);
    assert_eq!(
        first
            .headers()
            .get("retry-after")
            .map(|value| value.as_bytes()),
        Some(b"1".as_slice())
    );
    for _ in 0..2 {
        let response = client
            .get(server.url("/"))
            .send()
            .await
            .expect("later responses arrive");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .bytes()
                .await
                .expect("the body should arrive")
                .as_ref(),
            b"done"
        );
    }

    assert_eq!(server.request_times().len(), 3);
}

#[tokio::test]
async fn stop_reading_stalls_upload() {
    let server = StopReading::start().await;
    let body = vec![0u8; 32 * 1024 * 1024];

    let error = client_with_timeout(Duration::from_millis(500))
        .post(server.url("/upload"))
        .body(body)
        .send()
        .await
        .expect_err("an upload the server stops reading should time out");

    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn resolver_resolving_to_counts_lookups() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::resolving_to(vec![server.addr()]);
    let client = client_builder()
        .dns_resolver(resolver.clone())
        .build()
        .expect("failed to build a reqwest client with a resolver");

    let response = client
        .get(server.url_with_host("fixture.test", "/"))
        .send()
        .await
        .expect("the name resolves to the healthy server");

    assert_eq!(response.status(), 200);
    assert_eq!(resolver.lookups(), 1);
    assert_eq!(resolver.names(), vec!["fixture.test".to_owned()]);
}

#[tokio::test]
async fn resolver_slow_delays_request() {
    let server = Healthy::start().await;
    let delay = Duration::from_millis(200);
    let resolver = StaticResolver::slow(delay, vec![server.addr()]);
    let client = client_builder()
        .dns_resolver(resolver.clone())
        .build()
        .expect("failed to build a reqwest client with a resolver");
    let started = Instant::now();

    client
        .get(server.url_with_host("slow.test", "/"))
        .send()
        .await
        .expect("the slow lookup still resolves");

    assert!(
        started.elapsed() >= delay,
        "the request finished after only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn resolver_not_found_is_dns_error() {
    let resolver = StaticResolver::not_found();
    let client = client_builder()
        .dns_resolver(resolver.clone())
        .build()
        .expect("failed to build a reqwest client with a resolver");

    let error = client
        .get("http://missing.test:8080/")
        .send()
        .await
        .expect_err("the lookup fails");

    assert!(
        error.is_connect(),
        "expected a connect error, got {error:?}"
    );
    assert!(error.is_dns(), "expected a DNS error, got {error:?}");
    assert!(
        !error.is_timeout(),
        "a missing name is not a timeout: {error:?}"
    );
    assert_eq!(resolver.lookups(), 1);
}

#[tokio::test]
async fn resolver_fails_twice_then_resolves() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::failing_then_resolving(2, server.addr());
    let client = client_builder()
        .dns_resolver(resolver.clone())
        .build()
        .expect("failed to build a reqwest client with a resolver");
    let url = server.url_with_host("flaky.test", "/");

    for attempt in 1..=2 {
        let error = client
            .get(&url)
            .send()
            .await
            .expect_err("the lookup fails transiently");
        assert!(
            error.is_dns(),
            "attempt {attempt}: expected a DNS error, got {error:?}"
        );
        assert!(
            !error.is_timeout(),
            "attempt {attempt}: the default error kind is not a timeout: {error:?}"
        );
    }
    let response = client
        .get(&url)
        .send()
        .await
        .expect("the third lookup resolves");

    assert_eq!(response.status(), 200);
    assert_eq!(resolver.lookups(), 3);
}

#[tokio::test]
async fn resolver_timed_out_kind_reads_as_timeout() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::failing_with_kind_then_resolving(
        1,
        std::io::ErrorKind::TimedOut,
        server.addr(),
    );
    let client = client_builder()
        .dns_resolver(resolver.clone())
        .build()
        .expect("failed to build a reqwest client with a resolver");

    let error = client
        .get(server.url_with_host("timeout.test", "/"))
        .send()
        .await
        .expect_err("the first lookup fails");

    assert!(error.is_dns(), "expected a DNS error, got {error:?}");
    assert!(
        error.is_timeout(),
        "reqwest reads a TimedOut I/O error as a timeout: {error:?}"
    );
}
