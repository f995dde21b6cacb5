//! Runs every benchmark scenario once at tiny sizes, so the harnesses keep
//! compiling and running. Asserts only that each one ran; the performance
//! targets live in BENCHMARKS.md, not here.

#[path = "../benches/load/mod.rs"]
mod load;

use load::stats::Summary;
use load::{amplification, deadline, memory, overhead, soak, throughput, timers};

#[test]
fn summary_uses_nearest_rank() {
    let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();

    let summary = Summary::of(&mut samples);

    assert_eq!(summary.min, 1.0);
    assert_eq!(summary.p50, 50.0);
    assert_eq!(summary.p99, 99.0);
    assert_eq!(summary.max, 100.0);
}

#[test]
fn overhead_smoke_run() {
    let report = overhead::run(&overhead::Options::smoke());

    assert_eq!(report.failures, 0, "{report}");
    assert!(report.client(overhead::OURS).is_some(), "{report}");
}

#[test]
fn throughput_smoke_run() {
    let report = throughput::run(&throughput::Options::smoke());

    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.clients.len(), 2, "{report}");
}

#[test]
fn timers_smoke_run() {
    let options = timers::Options::smoke();

    let report = timers::run(&options);

    assert_eq!(report.results.len(), 4, "{report}");
    for result in &report.results {
        assert_eq!(result.lateness_ms.count, options.concurrency[0], "{report}");
    }
}

#[test]
fn deadline_smoke_run() {
    let options = deadline::Options::smoke();

    let report = deadline::run(&options);

    let calls: usize = report
        .faults
        .iter()
        .map(|fault| fault.overshoot_ms.count)
        .sum();
    assert_eq!(calls, options.calls, "{report}");
}

#[test]
fn amplification_smoke_run() {
    let report = amplification::run(&amplification::Options::smoke());

    for client in &report.clients {
        assert!(client.calls > 0, "{report}");
    }
}

#[test]
fn memory_smoke_run() {
    let options = memory::Options::smoke();

    let report = memory::run(&options);

    assert_eq!(report.in_flight.len(), 3, "{report}");
    assert_eq!(
        report.checkpoints.last().map(|checkpoint| checkpoint.calls),
        Some(options.calls),
        "{report}"
    );
}

#[test]
fn soak_smoke_run() {
    let report = soak::run(&soak::Options::smoke());

    assert!(report.calls > 0, "{report}");
    assert_eq!(report.panics, 0, "{report}");
}
