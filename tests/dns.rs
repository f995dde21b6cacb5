//! Name resolution that stalls, fails for good, or fails for a while, through
//! an in-process resolver so that no test touches system DNS.

mod support;

use std::time::{Duration, Instant};

use reqwest_timeout::{Attempts, Diagnosis, Phase, StopReason};
use support::{client_builder, diagnosed, timeouts, with_timeouts, Healthy, StaticResolver};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn stalled_resolver_ends_by_deadline() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::slow(Duration::from_secs(5), vec![server.addr()]);
    let client = with_timeouts(
        client_builder().dns_resolver(resolver.clone()),
        timeouts(300 * MS, 1_000 * MS, 2),
    );
    let start = Instant::now();

    let err = client
        .get(server.url_with_host("slow-dns.test", "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert!(elapsed <= 1_500 * MS, "took {elapsed:?}");
    assert!(
        error.elapsed() <= 1_500 * MS,
        "error says {:?}",
        error.elapsed()
    );
    assert_eq!(resolver.lookups(), error.attempts() as usize);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn stalled_resolver_under_connect_timeout_is_dns_phase() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::slow(Duration::from_secs(5), vec![server.addr()]);
    let client = with_timeouts(
        client_builder()
            .dns_resolver(resolver.clone())
            .connect_timeout(200 * MS),
        timeouts(1_000 * MS, 2_000 * MS, 0),
    );

    let err = client
        .get(server.url_with_host("slow-dns.test", "/"))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Dns);
    assert_eq!(error.diagnosis(), Diagnosis::DnsUnavailable);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn unknown_name_fails_once_without_backoff() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::not_found();
    let client = with_timeouts(
        client_builder().dns_resolver(resolver.clone()),
        timeouts(300 * MS, 1_000 * MS, 2),
    );
    let start = Instant::now();

    let err = client
        .get(server.url_with_host("missing.test", "/"))
        .send()
        .await
        .unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let message = error.to_string();
    assert!(!error.is_timeout());
    assert_eq!(error.phase(), Phase::Dns);
    assert_eq!(error.diagnosis(), Diagnosis::NameNotResolved);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.stop_reason(), &StopReason::NotRetryable);
    assert_eq!(error.history()[0].wait_after(), None);
    assert_eq!(resolver.lookups(), 1);
    assert!(elapsed < 250 * MS, "took {elapsed:?}");
    assert!(message.contains("missing.test"), "{message}");
    assert!(message.contains("dns-not-found"), "{message}");
}

#[tokio::test]
async fn transient_resolver_failure_recovers_on_third_attempt() {
    let server = Healthy::start().await;
    let resolver = StaticResolver::failing_then_resolving(2, server.addr());
    let client = with_timeouts(
        client_builder().dns_resolver(resolver.clone()),
        timeouts(300 * MS, 1_000 * MS, 2),
    );

    let response = client
        .get(server.url_with_host("flaky.test", "/"))
        .send()
        .await
        .unwrap();

    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    assert_eq!(response.status(), 200);
    assert_eq!(attempts.count(), 3);
    assert_eq!(resolver.lookups(), 3);
    assert_eq!(server.requests(), 1);
}
