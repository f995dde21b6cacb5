//! Failures to open the connection: nothing listening, packets dropped, and
//! a host with one dead and one live address.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use reqwest_timeout::{Attempts, Diagnosis, Limit, Phase, StopReason, TimeoutMiddleware};
use support::{
    client_builder, closed_port, diagnosed, timeouts, with_configured_client, with_timeouts,
    Blackhole, Healthy, StaticResolver,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn blackhole_connect_times_out_in_connect_phase() {
    let blackhole = Blackhole::start().await;
    let client = with_timeouts(
        client_builder().connect_timeout(300 * MS),
        timeouts(1_000 * MS, 2_000 * MS, 2),
    );
    let start = Instant::now();

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Connect);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut);
    assert!(matches!(
        error.limit(),
        Some(Limit::ClientConnectTimeout(_))
    ));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    for attempt in error.history() {
        assert!(attempt.duration() >= 280 * MS, "{attempt}");
        assert!(attempt.duration() < 900 * MS, "{attempt}");
    }
    assert!(elapsed < 2_500 * MS, "took {elapsed:?}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", blackhole.addr().port())),
        "{message}"
    );
    assert!(!message.contains("refused"), "{message}");
    assert!(!message.contains("stalled"), "{message}");
    assert_eq!(blackhole.connections(), 0);
}

/// Sends a GET to `blackhole` by the name `localhost`, with a client connect
/// timeout of 150 ms and a resolver that takes 50 ms, and returns
/// the error. reqwest's timer around the whole connect then always fires
/// before hyper-util's timer for the address, so the error does not name
/// the TCP connect.
async fn connect_timeout_by_name(
    blackhole: &Blackhole,
    timeouts: reqwest_timeout::TimeoutMiddlewareBuilder,
) -> reqwest_middleware::Error {
    let resolver = StaticResolver::slow(50 * MS, vec![blackhole.addr()]);
    let client = with_timeouts(
        client_builder()
            .dns_resolver(resolver)
            .connect_timeout(150 * MS),
        timeouts,
    );
    let url = format!("http://localhost:{}/", blackhole.addr().port());
    client.get(url).send().await.unwrap_err()
}

#[tokio::test]
async fn stalled_connect_by_name_notes_tcp() {
    let blackhole = Blackhole::start().await;

    let err = connect_timeout_by_name(&blackhole, timeouts(1_000 * MS, 2_000 * MS, 0)).await;

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.phase(), Phase::Dns, "{message}");
    assert!(
        message.contains("or a TCP connect that never completed"),
        "{message}"
    );
}

#[tokio::test]
async fn probe_settles_stalled_connect_by_name() {
    let blackhole = Blackhole::start().await;

    let err = connect_timeout_by_name(
        &blackhole,
        timeouts(1_000 * MS, 2_000 * MS, 0).active_probe(true),
    )
    .await;

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Connect, "{error:#}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut, "{error:#}");
    assert!(!error.to_string().contains("DNS"), "{error}");
}

/// Sends a request to `blackhole` with a known connect timeout of 300 ms and
/// a total timeout of 500 ms. The first attempt ends with the connect
/// timeout, and the second gets only about 150 ms before the deadline, so
/// the middleware's timer ends it before the connect timeout can fire.
async fn cut_short_after_connect_timeout(
    blackhole: &Blackhole,
    method: reqwest::Method,
) -> reqwest_middleware::Error {
    let client = with_configured_client(
        client_builder(),
        timeouts(500 * MS, 500 * MS, 5).connect_timeout(300 * MS),
    );
    client
        .request(method, blackhole.url("/"))
        .body("x")
        .send()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn deadline_cut_after_connect_timeout_stays_connect() {
    let blackhole = Blackhole::start().await;

    let err = cut_short_after_connect_timeout(&blackhole, reqwest::Method::GET).await;

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.attempts(), 2, "{error:#}");
    assert_eq!(error.phase(), Phase::Connect, "{error:#}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut, "{error:#}");
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
    assert!(
        error.evidence()[0].ends_with("while the attempt before it failed with connect-timeout"),
        "{error:#}"
    );
    assert!(!message.contains("server-stalled"), "{message}");
    assert!(!message.contains("configure_client"), "{message}");
    assert_eq!(blackhole.connections(), 0);
}

#[tokio::test]
async fn deadline_cut_post_is_not_resent() {
    let blackhole = Blackhole::start().await;

    let err = cut_short_after_connect_timeout(&blackhole, reqwest::Method::POST).await;

    // When the first attempt's error does not name the address, the check
    // that the POST was not sent makes a bare connect to the blackhole,
    // which uses up the deadline, and the call ends after one attempt. Which
    // of reqwest's and hyper-util's connect timers fires first decides that.
    // Either way an outer retry layer must not send the POST again.
    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut, "{error:#}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(reqwest::Method::POST)
    );
    assert!(!error.is_retryable());
    if error.attempts() == 2 {
        // The last attempt's own timer fired, which proves nothing about
        // the connect.
        assert!(
            error.evidence().iter().any(|line| {
                line.contains(
                "does not prove that the request never reached the server, so it was not sent again"
            )
            }),
            "{error:#}"
        );
    }
}

#[tokio::test]
async fn client_timeout_under_connect_timeout_keeps_note() {
    let blackhole = Blackhole::start().await;
    let client = with_configured_client(
        client_builder().timeout(200 * MS),
        timeouts(1_000 * MS, 2_000 * MS, 0).connect_timeout(600 * MS),
    );

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    // The client's own timeout fired after 200 ms, before the connect
    // timeout of 600 ms could, so a stalled connect stays possible.
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(
        matches!(error.limit(), Some(Limit::ClientTimeout(_))),
        "{error:#}"
    );
    assert!(
        message.contains("the client's connect_timeout is not shorter than this limit"),
        "{message}"
    );
}

#[tokio::test]
async fn probe_stalled_too_rediagnoses_unknown_connect() {
    let blackhole = Blackhole::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(300 * MS, 2_000 * MS, 1).active_probe(true),
    );

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.attempts(), 2, "{error:#}");
    assert_eq!(error.phase(), Phase::Connect, "{error:#}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut, "{error:#}");
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert!(
        error.evidence().iter().any(|line| line
            .starts_with("the probe's connects to the host did not complete within 300ms either")),
        "{error:#}"
    );
    assert!(!message.contains("stall is steady"), "{message}");
    assert!(
        !message.contains("connect that never completed"),
        "{message}"
    );
    assert!(error.probe().is_some(), "{error:#}");
}

#[tokio::test]
async fn probe_rediagnosed_post_says_why_not_resent() {
    let blackhole = Blackhole::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(300 * MS, 2_000 * MS, 1).active_probe(true),
    );

    let err = client
        .post(blackhole.url("/"))
        .body("x")
        .send()
        .await
        .unwrap_err();

    // The probe moves the diagnosis to the connect, but the attempt ended on
    // the middleware's timer, so the POST may have been sent.
    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 1, "{error:#}");
    assert_eq!(error.phase(), Phase::Connect, "{error:#}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(reqwest::Method::POST)
    );
    assert!(!error.is_retryable());
    assert!(
        error.evidence().iter().any(|line| line.contains(
            "does not prove that the request never reached the server, so it was not sent again"
        )),
        "{error:#}"
    );
}

#[tokio::test]
async fn probe_a_little_shorter_than_attempt_still_counts() {
    let blackhole = Blackhole::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(2_000 * MS, 5_950 * MS, 1).active_probe(true),
    );

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    // Two attempts and a wait of 50 ms leave the probe about 1.9 s, a
    // little less than the attempts' 2 s, with 100 ms to spare either way.
    let error = diagnosed(&err);
    let probe_budget = 5_950 * MS - error.history()[1].started_after() - 2_000 * MS;
    assert!(probe_budget < 2_000 * MS, "{error:#}");
    assert_eq!(error.attempts(), 2, "{error:#}");
    assert_eq!(error.diagnosis(), Diagnosis::ConnectTimedOut, "{error:#}");
    assert_eq!(error.phase(), Phase::Connect, "{error:#}");
}

#[tokio::test]
async fn configured_connect_timeout_is_named_with_its_value() {
    let blackhole = Blackhole::start().await;
    let client = with_configured_client(
        client_builder(),
        timeouts(1_000 * MS, 2_000 * MS, 0).connect_timeout(250 * MS),
    );

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.phase(), Phase::Connect);
    assert_eq!(error.limit(), Some(Limit::ClientConnectTimeout(250 * MS)));
    assert!(
        error
            .to_string()
            .contains("client connect timeout of 250ms"),
        "{error}"
    );
}

#[tokio::test]
async fn refused_connect_is_retried_quickly() {
    let addr = closed_port();
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));
    let start = Instant::now();

    let err = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(!error.is_timeout());
    assert_eq!(error.phase(), Phase::Connect);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused);
    assert_eq!(error.attempts(), 4);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(3));
    assert_eq!(error.limit(), None);
    // Waits of 50, 100 and 200 ms; each refusal takes milliseconds.
    assert!(elapsed < 1_500 * MS, "took {elapsed:?}");
    assert!(message.contains("connect-refused"), "{message}");
    assert!(message.contains("server is running"), "{message}");
}

#[tokio::test]
async fn refused_post_is_resent_because_nothing_was_sent() {
    let addr = closed_port();
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let err = client
        .post(format!("http://{addr}/orders"))
        .body("order")
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused);
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
}

/// Starts a healthy server on a closed port once the second attempt has failed.
struct ListenAfterSecondAttempt {
    addr: std::net::SocketAddr,
    attempts: AtomicU32,
    server: Mutex<Option<Healthy>>,
}

#[async_trait]
impl Middleware for ListenAfterSecondAttempt {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let result = next.run(request, extensions).await;
        if self.attempts.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
            let server = Healthy::start_on(self.addr).await;
            *self.server.lock().unwrap() = Some(server);
        }
        result
    }
}

#[tokio::test]
async fn refused_server_that_comes_up_succeeds() {
    let addr = closed_port();
    let starter = Arc::new(ListenAfterSecondAttempt {
        addr,
        attempts: AtomicU32::new(0),
        server: Mutex::new(None),
    });
    let middleware = timeouts(1_000 * MS, 3_000 * MS, 3).build().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(client_builder().build().unwrap())
        .with(middleware)
        .with_arc(starter.clone())
        .build();

    let response = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();

    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    assert_eq!(response.status(), 200);
    assert_eq!(attempts.count(), 3);
    assert_eq!(starter.attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn dead_ipv6_address_falls_back_to_ipv4() {
    let server = Healthy::start().await;
    let port = server.addr().port();
    let resolver = StaticResolver::resolving_to(vec![
        format!("[::1]:{port}").parse().unwrap(),
        server.addr(),
    ]);
    let client = with_timeouts(
        client_builder().dns_resolver(resolver.clone()),
        TimeoutMiddleware::builder()
            .attempt_timeout(2_000 * MS)
            .total_timeout(4_000 * MS),
    );

    let response = client
        .get(server.url_with_host("svc.test", "/"))
        .send()
        .await
        .unwrap();

    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(attempts.count(), 1);
    assert_eq!(resolver.lookups(), 1);
}
