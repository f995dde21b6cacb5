//! Failures after a redirect. reqwest follows redirects within one attempt,
//! and its error names the request's URL, so a refused connect on a later
//! hop looks like one on the first, though the first server has received
//! the request.

mod support;

use std::time::Duration;

use http::Method;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{Diagnosis, Phase, StopReason};
use support::{bind_loopback, with_configured_client, RequestReader, Server};
use support::{
    client_builder, closed_port, diagnosed, response, timeouts, with_timeouts, Blackhole, Sequence,
    StaticResolver,
};
use tokio::io::AsyncWriteExt;

const MS: Duration = Duration::from_millis(1);

/// Sends a `POST` with a small body to `url`, which must fail.
async fn post_payment(client: &ClientWithMiddleware, url: &str) -> reqwest_middleware::Error {
    client
        .post(url)
        .body("amount=10")
        .send()
        .await
        .expect_err("the POST should fail")
}

#[tokio::test]
async fn post_after_303_is_sent_once() {
    let (server, closed) = Sequence::redirect_to_closed_port("303 See Other").await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let err = post_payment(&client, &server.url("/pay")).await;

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(server.requests(), 1, "the POST was sent again: {message}");
    assert_eq!(error.attempts(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(Method::POST)
    );
    assert!(!error.is_retryable(), "{message}");
    assert_eq!(error.phase(), Phase::Connect);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused);
    assert!(message.contains(&closed.to_string()), "{message}");
    assert!(
        message.contains("a redirect sent the request there"),
        "{message}"
    );
}

#[tokio::test]
async fn post_after_307_is_sent_once() {
    let (server, closed) = Sequence::redirect_to_closed_port("307 Temporary Redirect").await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let err = post_payment(&client, &server.url("/pay")).await;

    let error = diagnosed(&err);
    assert_eq!(server.requests(), 1, "the POST was sent again: {error}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(Method::POST)
    );
    assert!(
        error.evidence()[0].contains(&closed.to_string()),
        "{error:#}"
    );
}

#[tokio::test]
async fn redirected_get_probes_the_refused_port() {
    let (server, closed) = Sequence::redirect_to_closed_port("302 Found").await;
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 3_000 * MS, 2).active_probe(true),
    );

    let err = client.get(server.url("/report")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(server.requests(), 3, "{error:#}");
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    assert!(
        error.evidence()[0].contains(&closed.to_string()),
        "{error:#}"
    );
    let probe = error.probe().expect("a refused connect is probed");
    let probed: Vec<_> = probe.results().iter().map(|result| result.addr()).collect();
    assert_eq!(probed, vec![closed], "{error:#}");
}

#[tokio::test]
async fn refused_post_to_localhost_is_resent() {
    let closed = closed_port();
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let err = client
        .post(format!("http://localhost:{}/orders", closed.port()))
        .body("order")
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused, "{error:#}");
    assert_eq!(error.attempts(), 3, "{error:#}");
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    assert!(!error.to_string().contains("redirect"), "{error}");
}

#[tokio::test]
async fn redirect_loop_is_not_retried() {
    let server = Sequence::start(vec![response("302 Found", &[("Location", "/again")], b"")]).await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let err = client.get(server.url("/start")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 1, "{error:#}");
    assert_eq!(error.stop_reason(), &StopReason::NotRetryable);
    assert_eq!(error.diagnosis(), Diagnosis::Other);
    assert!(
        error.evidence()[0].contains("usually means a redirect loop"),
        "{error:#}"
    );
    // reqwest's default policy follows 10 redirects after the first response.
    assert_eq!(server.requests(), 11, "{error:#}");
}

#[tokio::test]
async fn post_timing_out_at_its_host_is_resent() {
    let blackhole = Blackhole::start().await;
    // A resolver that takes 50 ms makes reqwest's timer around the whole
    // connect fire before hyper-util's timer for the address. The error then
    // names no address, and the middleware has to check the host.
    let resolver = StaticResolver::slow(50 * MS, vec![blackhole.addr()]);
    let client = with_configured_client(
        client_builder().dns_resolver(resolver),
        timeouts(1_000 * MS, 5_000 * MS, 1).connect_timeout(100 * MS),
    );
    let url = format!("http://localhost:{}/pay", blackhole.addr().port());

    let err = post_payment(&client, &url).await;

    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 2, "{error:#}");
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(1));
    assert!(!error.to_string().contains("redirect"), "{error}");
}

#[tokio::test]
async fn post_refused_by_proxy_is_sent_once() {
    let proxy = closed_port();
    let server = Sequence::start(vec![response("200 OK", &[], b"")]).await;
    let client = with_timeouts(
        client_builder().proxy(reqwest::Proxy::http(format!("http://{proxy}")).unwrap()),
        timeouts(1_000 * MS, 3_000 * MS, 2),
    );

    let err = post_payment(&client, &server.url("/pay")).await;

    // The middleware cannot read the client's proxy, so it cannot rule out
    // a redirect, and a request that may not be sent twice stays sent once.
    let error = diagnosed(&err);
    assert_eq!(error.attempts(), 1, "{error:#}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(Method::POST)
    );
    assert!(
        error.evidence()[0].contains(&proxy.to_string()),
        "{error:#}"
    );
    assert!(error.evidence()[0].contains("proxy"), "{error:#}");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn redirect_to_another_address_is_named() {
    // The server listens on 127.0.0.1 only, so ::1 at its port refuses.
    let listener = bind_loopback().await;
    let other = format!("[::1]:{}", listener.local_addr().unwrap().port());
    let redirect = response(
        "307 Temporary Redirect",
        &[("Location", &format!("http://{other}/receipt"))],
        b"",
    );
    let server = Server::spawn(listener, move |mut connection| {
        let redirect = redirect.clone();
        async move {
            let mut reader = RequestReader::new();
            while let Ok(Some(_head)) = reader.read_request(&mut connection.stream).await {
                connection.stats.record_request();
                if connection.stream.write_all(&redirect).await.is_err() {
                    break;
                }
            }
        }
    });
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 3_000 * MS, 2).active_probe(true),
    );
    // An IP address, not `localhost`, which may resolve to ::1 as well.
    let url = format!("http://127.0.0.1:{}/pay", server.port());

    let err = post_payment(&client, &url).await;

    let error = diagnosed(&err);
    assert_eq!(server.requests(), 1, "the POST was sent again: {error:#}");
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(Method::POST)
    );
    assert!(error.evidence()[0].contains(&other), "{error:#}");
    let probe = error.probe().expect("a refused connect is probed");
    let probed: Vec<_> = probe
        .results()
        .iter()
        .map(|result| result.addr().to_string())
        .collect();
    assert_eq!(probed, vec![other], "{error:#}");
}
