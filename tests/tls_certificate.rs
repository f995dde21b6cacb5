//! `https://` requests to a real TLS server whose certificate the client
//! rejects or accepts.
//!
//! Each test maps the name `svc.test` to the loopback server with
//! `ClientBuilder::resolve`, so no request reaches a real resolver.

mod support;

use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{Attempts, Diagnosis, Error, Limit, Phase, StopReason};
use support::{
    client_builder, diagnosed, timeouts, with_timeouts, TestCertificate, TlsServer, HEALTHY_BODY,
};

const MS: Duration = Duration::from_millis(1);

/// The host name in every request URL.
const HOST: &str = "svc.test";

/// Maximum time for a call that fails without retrying. The attempt timeout in
/// these tests is longer, so a call that waits for it fails this bound.
const FAIL_FAST: Duration = Duration::from_millis(500);

const UNTRUSTED_EVIDENCE: &str = "the server's certificate is not trusted because its issuer is not among the client's root certificates, as with a self-signed certificate or a private CA";

/// Builds a client that sends requests for [`HOST`] to `server` and trusts
/// `root` in addition to the system's root certificates.
fn client_for(
    server: &TlsServer,
    root: Option<&TestCertificate>,
    attempt: Duration,
    retries: u32,
) -> ClientWithMiddleware {
    let mut builder = client_builder().resolve(HOST, server.addr());
    if let Some(root) = root {
        builder = builder.add_root_certificate(root.root());
    }
    with_timeouts(builder, timeouts(attempt, 5_000 * MS, retries))
}

/// Returns the messages of `error`'s sources, joined with ": ". The message
/// of an `io::Error` is that of the TLS library's error inside it.
fn source_chain_text(error: &Error) -> String {
    let mut parts = Vec::new();
    let mut current = error.source();
    while let Some(source) = current {
        parts.push(source.to_string());
        current = source.source();
    }
    parts.join(": ")
}

/// Asserts what every rejected certificate has in common: a TLS failure in
/// the TLS phase after one attempt, not retried, with no request sent.
fn assert_rejected_once(error: &Error, server: &TlsServer, elapsed: Duration) {
    assert!(!error.is_timeout());
    assert!(!error.is_retryable());
    assert_eq!(error.phase(), Phase::Tls);
    assert_eq!(error.diagnosis(), Diagnosis::TlsFailed);
    assert_eq!(error.limit(), None);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::NotRetryable);
    assert!(elapsed < FAIL_FAST, "took {elapsed:?}");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.handshakes(), 0);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn untrusted_certificate_fails_once_without_retry() {
    let certificate = TestCertificate::self_signed(&[HOST]);
    let server = TlsServer::responding(&certificate).await;
    let client = client_for(&server, None, 2_000 * MS, 3);
    let start = Instant::now();

    let err = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    let chain = source_chain_text(error);
    assert_rejected_once(error, &server, elapsed);
    assert_eq!(error.evidence(), [UNTRUSTED_EVIDENCE]);
    assert!(message.contains(UNTRUSTED_EVIDENCE), "{message}");
    assert!(
        chain.contains("invalid peer certificate: UnknownIssuer"),
        "{chain}"
    );
}

#[tokio::test]
async fn untrusted_certificate_on_ip_literal_gets_same_evidence() {
    let certificate = TestCertificate::self_signed(&[HOST]);
    let server = TlsServer::responding(&certificate).await;
    let client = with_timeouts(client_builder(), timeouts(2_000 * MS, 5_000 * MS, 3));
    let start = Instant::now();

    let err = client.get(server.https_url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    assert_rejected_once(error, &server, elapsed);
    assert_eq!(error.host(), "127.0.0.1");
    assert_eq!(error.evidence(), [UNTRUSTED_EVIDENCE]);
}

#[tokio::test]
async fn certificate_for_other_name_fails_once_without_retry() {
    let certificate = TestCertificate::self_signed(&["other.test"]);
    let server = TlsServer::responding(&certificate).await;
    let client = client_for(&server, Some(&certificate), 2_000 * MS, 3);
    let start = Instant::now();

    let err = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    let chain = source_chain_text(error);
    assert_rejected_once(error, &server, elapsed);
    assert_eq!(
        error.evidence(),
        ["the server's certificate is not valid for the host name in the URL"]
    );
    assert!(message.contains("not valid for the host name"), "{message}");
    assert!(
        chain.contains("certificate not valid for name \"svc.test\""),
        "{chain}"
    );
}

#[tokio::test]
async fn expired_certificate_fails_once_and_says_expired() {
    let certificate = TestCertificate::expired(&[HOST]);
    let server = TlsServer::responding(&certificate).await;
    let client = client_for(&server, Some(&certificate), 2_000 * MS, 3);
    let start = Instant::now();

    let err = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let chain = source_chain_text(error);
    assert_rejected_once(error, &server, elapsed);
    assert_eq!(error.evidence(), ["the server's certificate has expired"]);
    assert!(chain.contains("certificate expired"), "{chain}");
}

#[tokio::test]
async fn not_yet_valid_certificate_points_to_source_error() {
    let certificate = TestCertificate::not_yet_valid(&[HOST]);
    let server = TlsServer::responding(&certificate).await;
    let client = client_for(&server, Some(&certificate), 2_000 * MS, 3);
    let start = Instant::now();

    let err = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let chain = source_chain_text(error);
    assert_rejected_once(error, &server, elapsed);
    assert_eq!(
        error.evidence(),
        ["the client rejected the server's certificate for the reason in the source error"]
    );
    assert!(chain.contains("certificate not valid yet"), "{chain}");
}

#[tokio::test]
async fn trusted_certificate_for_right_name_succeeds() {
    let certificate = TestCertificate::self_signed(&[HOST]);
    let server = TlsServer::responding(&certificate).await;
    let client = client_for(&server, Some(&certificate), 2_000 * MS, 3);

    let response = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.extensions().get::<Attempts>().map(Attempts::count),
        Some(1)
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), HEALTHY_BODY);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.handshakes(), 1);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn header_stall_after_tls_handshake_is_retried() {
    let certificate = TestCertificate::self_signed(&[HOST]);
    let server = TlsServer::stalling(&certificate).await;
    let client = client_for(&server, Some(&certificate), 300 * MS, 2);

    let err = client
        .get(server.url_for_host(HOST, "/"))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(error.is_timeout());
    assert!(error.is_retryable());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(2));
    for attempt in error.history() {
        assert!(attempt.duration() >= 290 * MS, "{attempt}");
        assert!(attempt.duration() < 1_000 * MS, "{attempt}");
    }
    assert!(
        message.contains("timed out waiting for the response headers"),
        "{message}"
    );
    server.wait_for_requests(3, 1_000 * MS).await;
    assert_eq!(server.handshakes(), 3);
}
