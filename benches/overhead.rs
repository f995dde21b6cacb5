//! Criterion micro-benchmarks of the success path.
//!
//! - `middleware_only`: the chain ends in a middleware that returns a canned
//!   `200` without touching the network, so the figure is the CPU cost of
//!   each retry middleware's per-call work.
//! - `loopback_get`: a keep-alive GET of a 64-byte body from a hyper server
//!   on 127.0.0.1, through each client.
//!
//! Criterion measures one function after the other, so drift in the
//! machine's load between them shows up in the ratios. The interleaved
//! `cargo run --release --example load -- overhead` gives the ratios of
//! record, and this bench gives the absolute cost.
//!
//! ```text
//! cargo bench --bench overhead
//! ```

#[path = "load/mod.rs"]
mod load;

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_timeout::TimeoutMiddleware;

use load::clients::{
    bare, reqwest_client, with_default_retry_crate, with_default_timeouts, Canned,
};
use load::servers::{Behavior, Log, LoopbackServer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build the bench runtime")
}

fn middleware_only(c: &mut Criterion) {
    let runtime = runtime();
    let client = reqwest_client();
    let url = "http://127.0.0.1:9/";
    let chains: [(&str, ClientWithMiddleware); 3] = [
        (
            "canned",
            ClientBuilder::new(client.clone()).with(Canned).build(),
        ),
        (
            "reqwest-timeout + canned",
            ClientBuilder::new(client.clone())
                .with(
                    TimeoutMiddleware::builder()
                        .build()
                        .expect("defaults are valid"),
                )
                .with(Canned)
                .build(),
        ),
        (
            "reqwest-retry + canned",
            ClientBuilder::new(client.clone())
                .with(RetryTransientMiddleware::new_with_policy(
                    ExponentialBackoff::builder().build_with_max_retries(3),
                ))
                .with(Canned)
                .build(),
        ),
    ];
    let mut group = c.benchmark_group("middleware_only");
    for (name, chain) in &chains {
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| async {
                let response = chain.get(url).send().await.expect("canned response");
                assert_eq!(response.status(), 200);
            });
        });
    }
    group.finish();
}

fn loopback_get(c: &mut Criterion) {
    let server = LoopbackServer::start(
        Behavior::Fixed {
            body: Bytes::from(vec![b'x'; 64]),
        },
        Log::Counts,
    );
    let url = server.url("/");
    let runtime = runtime();
    let client = reqwest_client();
    let chains: [(&str, ClientWithMiddleware); 3] = [
        ("bare chain", bare(&client)),
        ("reqwest-timeout", with_default_timeouts(&client)),
        ("reqwest-retry", with_default_retry_crate(&client)),
    ];
    let mut group = c.benchmark_group("loopback_get");
    group.bench_function("reqwest alone", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = client.get(&url).send().await.expect("GET succeeds");
            response.bytes().await.expect("body arrives")
        });
    });
    for (name, chain) in &chains {
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| async {
                let response = chain.get(&url).send().await.expect("GET succeeds");
                response.bytes().await.expect("body arrives")
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = middleware_only, loopback_get
}
criterion_main!(benches);
