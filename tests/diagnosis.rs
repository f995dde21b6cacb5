//! Reasoning across attempts and the active probe, on real loopback servers.

mod support;

use std::time::{Duration, Instant};

use reqwest_timeout::{Diagnosis, Phase, ProbeOutcome};
use support::{
    client_builder, closed_port, diagnosed, timeouts, with_timeouts, Blackhole, StallHead,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn fast_refusals_say_server_not_running() {
    let addr = closed_port();
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 2));

    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    assert_eq!(error.diagnosis(), Diagnosis::ConnectionRefused);
    assert_eq!(error.evidence().len(), 1, "{:?}", error.evidence());
    assert!(
        error.evidence()[0].starts_with("all 3 attempts were refused within"),
        "{:?}",
        error.evidence()
    );
    assert!(
        error.evidence()[0].ends_with("the server is not running, or the port is wrong"),
        "{:?}",
        error.evidence()
    );
}

#[tokio::test]
async fn probe_reports_refused_port() {
    let addr = closed_port();
    let client = with_timeouts(
        client_builder(),
        timeouts(1_000 * MS, 3_000 * MS, 1).active_probe(true),
    );

    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    let probe = error.probe().expect("the probe ran");
    assert_eq!(probe.results().len(), 1);
    assert_eq!(probe.results()[0].addr(), addr);
    assert_eq!(probe.results()[0].outcome(), ProbeOutcome::Refused);
    assert!(
        error
            .to_string()
            .contains(&format!("probe: {addr} refused")),
        "{error}"
    );
}

#[tokio::test]
async fn probe_reports_blackhole_timeout_within_deadline() {
    let blackhole = Blackhole::start().await;
    let client = with_timeouts(
        client_builder().connect_timeout(200 * MS),
        timeouts(300 * MS, 1_000 * MS, 1).active_probe(true),
    );
    let start = Instant::now();

    let err = client.get(blackhole.url("/")).send().await.unwrap_err();

    let elapsed = start.elapsed();
    let error = diagnosed(&err);
    let probe = error.probe().expect("the probe ran");
    assert_eq!(error.phase(), Phase::Connect);
    assert_eq!(probe.results()[0].outcome(), ProbeOutcome::TimedOut);
    assert!(elapsed <= 1_500 * MS, "took {elapsed:?}");
    assert_eq!(blackhole.connections(), 0);
}

#[tokio::test]
async fn probe_that_connects_rules_out_connect_stall() {
    let server = StallHead::start().await;
    let client = with_timeouts(
        client_builder(),
        timeouts(300 * MS, 2_000 * MS, 0).active_probe(true),
    );

    let err = client.get(server.url("/")).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert!(error.probe().expect("the probe ran").all_connected());
    assert!(
        !message.contains("connect that never completed"),
        "{message}"
    );
    assert!(message.contains("accepted a connection"), "{message}");
}

#[tokio::test]
async fn probe_is_off_by_default() {
    let addr = closed_port();
    let client = with_timeouts(client_builder(), timeouts(1_000 * MS, 3_000 * MS, 0));

    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();

    assert!(diagnosed(&err).probe().is_none());
}
