//! `https://` requests to servers that do not complete a TLS handshake.

mod support;

use std::time::{Duration, Instant};

use reqwest_timeout::{Diagnosis, Limit, Phase, StopReason};
use support::{
    client_builder, diagnosed, timeouts, with_timeouts, PlainOnTls, TlsOnPlain, TlsSilent,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn silent_tls_server_times_out_in_tls_phase() {
    let server = TlsSilent::start().await;
    let client = with_timeouts(
        client_builder().connect_timeout(300 * MS),
        timeouts(1_000 * MS, 2_000 * MS, 1),
    );

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Tls);
    assert_eq!(error.diagnosis(), Diagnosis::TlsStalled);
    assert!(error.is_retryable());
    assert!(matches!(
        error.limit(),
        Some(Limit::ClientConnectTimeout(_))
    ));
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(1));
    assert!(
        message.contains("timed out in the TLS handshake"),
        "{message}"
    );
    assert!(
        server.received_bytes() > 0,
        "the ClientHello reached the server"
    );
}

#[tokio::test]
async fn silent_tls_server_without_connect_timeout_names_both_causes() {
    let server = TlsSilent::start().await;
    let client = with_timeouts(client_builder(), timeouts(300 * MS, 2_000 * MS, 0));

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(error.is_timeout());
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert!(
        message.contains("connect that never completed"),
        "{message}"
    );
}

#[tokio::test]
async fn probe_that_connects_keeps_tls_stall_possible() {
    let server = TlsSilent::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(300 * MS, 2_000 * MS, 0).active_probe(true),
    );

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    // The probe only opens TCP connections, which this server accepts, so
    // it cannot rule out the handshake that stalled.
    let error = diagnosed(&err);
    let message = error.to_string();
    let probe = error.probe().expect("the probe ran");
    assert!(probe.all_connected(), "{error:#}");
    assert!(
        message.contains("or a TLS handshake that never completed"),
        "{message}"
    );
    assert!(
        !message.contains("connect that never completed"),
        "{message}"
    );
}

#[tokio::test]
async fn plain_http_on_tls_url_fails_fast_without_retry() {
    let server = PlainOnTls::start().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));
    let start = Instant::now();

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(!error.is_timeout());
    assert_eq!(error.phase(), Phase::Tls);
    assert_eq!(error.diagnosis(), Diagnosis::WrongProtocol);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::NotRetryable);
    assert_eq!(server.connections(), 1);
    assert!(elapsed < 500 * MS, "took {elapsed:?}");
    assert!(
        message.contains("http:// for one that serves plain HTTP"),
        "{message}"
    );
    assert!(!message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn plain_http_on_tls_url_says_port_speaks_plain_http() {
    let server = PlainOnTls::start().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(
        error.evidence(),
        ["the server answered the TLS handshake with data that is not TLS, so the port probably speaks plain HTTP"]
    );
}

#[tokio::test]
async fn plain_url_on_tls_port_fails_fast_and_suggests_https() {
    let server = TlsOnPlain::start().await;
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 3));
    let start = Instant::now();

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(!error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::WrongProtocol);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::NotRetryable);
    assert!(elapsed < 500 * MS, "took {elapsed:?}");
    assert!(
        message.contains("https:// for a port that serves TLS"),
        "{message}"
    );
    assert!(!message.contains("TLS handshake failed"), "{message}");
}
