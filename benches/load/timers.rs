//! Timer precision: many concurrent requests to a server that never sends
//! the response headers, each with a 300 ms limit and no retry.
//!
//! For each call the lateness is the time from its start until its error
//! returned, minus the limit. Four variants run one after the other on the
//! same runtime. A bare `tokio::time::sleep` of the limit shows the
//! runtime's own timer floor. reqwest's per-request timeout on the bare
//! chain is the second. The third puts that timeout inside a
//! `tokio::time::timeout` of the same length: two timers per call and no
//! other work. The last is this crate's attempt timeout, one timer per
//! attempt followed by the work of building a diagnosed error.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest_timeout::TimeoutMiddleware;
use tokio::task::JoinSet;

use super::clients::{bare, reqwest_client, with_timeouts};
use super::servers::{Behavior, Log, LoopbackServer};
use super::stats::{median, ms, signed_ms, Summary};
use super::system::{fd_limit, load_average, raise_fd_limit, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent calls; each value is one run of every variant.
    pub concurrency: Vec<usize>,
    /// The limit of each call.
    pub timeout: Duration,
    /// Pause between variants, so that the previous one's sockets close.
    pub settle: Duration,
    /// Repetitions of the whole set; the summary takes medians over them.
    pub runs: usize,
    /// Window over which the calls start, spread evenly; zero starts them
    /// all at once. A window shorter than the limit lets every connect
    /// finish before the first timer fires, which separates the timers'
    /// precision from the cost of opening thousands of connections.
    pub ramp: Duration,
    /// Names of the variants to run; empty runs all. Running one variant
    /// alone helps to profile it.
    pub only: Vec<String>,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 1 000 and 5 000 calls, 300 ms.
    pub fn full() -> Options {
        Options {
            concurrency: vec![1_000, 5_000],
            timeout: Duration::from_millis(300),
            settle: Duration::from_millis(500),
            runs: 5,
            ramp: Duration::ZERO,
            only: Vec::new(),
        }
    }

    /// Returns sizes for a run of about a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            concurrency: vec![20],
            timeout: Duration::from_millis(100),
            settle: Duration::from_millis(20),
            runs: 1,
            ramp: Duration::ZERO,
            only: Vec::new(),
        }
    }
}

/// The limits a variant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `tokio::time::sleep` of the limit, with no request.
    Sleep,
    /// The bare chain with reqwest's `RequestBuilder::timeout`.
    ReqwestTimeout,
    /// [`Variant::ReqwestTimeout`] inside a `tokio::time::timeout` of the
    /// same length.
    TwoTimers,
    /// This crate's attempt timeout, no retries.
    Middleware,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Sleep,
        Variant::ReqwestTimeout,
        Variant::TwoTimers,
        Variant::Middleware,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Sleep => "tokio sleep",
            Variant::ReqwestTimeout => "reqwest timeout",
            Variant::TwoTimers => "reqwest + tokio timeouts",
            Variant::Middleware => "reqwest-timeout",
        }
    }
}

/// One variant at one concurrency.
#[derive(Debug, Clone)]
pub struct VariantResult {
    /// The repetition, from 0.
    pub run: usize,
    pub variant: Variant,
    pub concurrency: usize,
    /// Lateness of each call in milliseconds: time to the error minus the
    /// limit.
    pub lateness_ms: Summary,
    /// Calls that ended in a timeout error, as expected.
    pub timed_out: usize,
    /// Calls that ended otherwise, with one example.
    pub other: usize,
    pub other_example: Option<String>,
    /// Requests that reached the server.
    pub server_requests: u64,
    /// From the first call's start to the last call's end.
    pub wall: Duration,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub results: Vec<VariantResult>,
    /// Concurrencies skipped because the open files limit is too low.
    pub skipped: Vec<String>,
}

/// Runs the scenario on a multi-threaded runtime with one worker per core.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for &concurrency in &options.concurrency {
        // Each call uses a client socket and the server's end of it.
        let needed = 2 * concurrency as u64 + 256;
        let soft = raise_fd_limit(needed).unwrap_or(0);
        if soft < needed {
            let hard = fd_limit().map_or(0, |(_soft, hard)| hard);
            skipped.push(format!(
                "{concurrency} calls need about {needed} open files; the limit is {soft} (hard {hard})"
            ));
            continue;
        }
        let server = LoopbackServer::start(Behavior::StallHeaders, Log::Counts);
        for run in 0..options.runs {
            for variant in Variant::ALL {
                let name = variant.name();
                if !options.only.is_empty() && !options.only.iter().any(|only| only == name) {
                    continue;
                }
                let mut result = runtime.block_on(measure(variant, concurrency, &server, options));
                result.run = run;
                results.push(result);
            }
        }
    }
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        results,
        skipped,
    }
}

/// The ending of one call.
enum Ending {
    TimedOut,
    Other(String),
}

fn reqwest_ending(sent: reqwest_middleware::Result<reqwest::Response>) -> Ending {
    match sent {
        Ok(response) => Ending::Other(format!("status {}", response.status())),
        Err(error) if error.is_timeout() => Ending::TimedOut,
        Err(error) => Ending::Other(error.to_string()),
    }
}

async fn measure(
    variant: Variant,
    concurrency: usize,
    server: &LoopbackServer,
    options: &Options,
) -> VariantResult {
    let requests_before = server.requests();
    let client = reqwest_client();
    let bare = bare(&client);
    let ours = with_timeouts(
        &client,
        TimeoutMiddleware::builder()
            .attempt_timeout(options.timeout)
            .total_timeout(options.timeout * 10)
            .max_retries(0),
    );
    let url = server.url("/");
    let limit = options.timeout;
    let ramp_step = options.ramp / concurrency.max(1) as u32;

    let first_start = Instant::now();
    let mut calls = JoinSet::new();
    for index in 0..concurrency {
        let delay = ramp_step * index as u32;
        let bare = bare.clone();
        let ours = ours.clone();
        let url = url.clone();
        calls.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let started = Instant::now();
            let ending = match variant {
                Variant::Sleep => {
                    tokio::time::sleep(limit).await;
                    Ending::TimedOut
                }
                Variant::ReqwestTimeout => {
                    reqwest_ending(bare.get(&url).timeout(limit).send().await)
                }
                Variant::TwoTimers => {
                    let send = bare.get(&url).timeout(limit).send();
                    match tokio::time::timeout(limit, send).await {
                        Ok(sent) => reqwest_ending(sent),
                        Err(_elapsed) => Ending::TimedOut,
                    }
                }
                Variant::Middleware => match ours.get(&url).send().await {
                    Ok(response) => Ending::Other(format!("status {}", response.status())),
                    Err(error) => match reqwest_timeout::Error::find(&error) {
                        Some(diagnosed) if diagnosed.is_timeout() => Ending::TimedOut,
                        _ => Ending::Other(error.to_string()),
                    },
                },
            };
            let ended = Instant::now();
            (signed_ms(ended, started) - ms(limit), ending, ended)
        });
    }

    let mut lateness = Vec::with_capacity(concurrency);
    let mut timed_out = 0;
    let mut other = 0;
    let mut other_example = None;
    let mut last_end = first_start;
    while let Some(joined) = calls.join_next().await {
        let (late, ending, ended) = joined.expect("a timer call panicked");
        lateness.push(late);
        last_end = last_end.max(ended);
        match ending {
            Ending::TimedOut => timed_out += 1,
            Ending::Other(text) => {
                other += 1;
                other_example.get_or_insert(text);
            }
        }
    }
    let server_requests = server.requests() - requests_before;
    drop((bare, ours, client));
    server
        .wait_for_no_connections(Duration::from_secs(10))
        .await;
    tokio::time::sleep(options.settle).await;

    VariantResult {
        run: 0,
        variant,
        concurrency,
        lateness_ms: Summary::of(&mut lateness),
        timed_out,
        other,
        other_example,
        server_requests,
        wall: last_end - first_start,
    }
}

impl Report {
    /// Returns the medians over the runs of the p50 and p99 lateness, and
    /// the largest lateness of any run, for one variant at one concurrency.
    pub fn summary(&self, variant: Variant, concurrency: usize) -> Option<[f64; 3]> {
        let runs: Vec<&VariantResult> = self
            .results
            .iter()
            .filter(|result| result.variant == variant && result.concurrency == concurrency)
            .collect();
        if runs.is_empty() {
            return None;
        }
        let mut p50: Vec<f64> = runs.iter().map(|result| result.lateness_ms.p50).collect();
        let mut p99: Vec<f64> = runs.iter().map(|result| result.lateness_ms.p99).collect();
        let max = runs
            .iter()
            .map(|result| result.lateness_ms.max)
            .fold(f64::NEG_INFINITY, f64::max);
        Some([median(&mut p50), median(&mut p99), max])
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "timer precision: limit {} ms, no retries, starts spread over {} ms, {} run(s), load after {}",
            ms(options.timeout),
            ms(options.ramp),
            options.runs,
            self.load_after
        )?;
        writeln!(
            f,
            "| calls | variant | median of p50 ms | median of p99 ms | max ms |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for &concurrency in &options.concurrency {
            for variant in Variant::ALL {
                if let Some([p50, p99, max]) = self.summary(variant, concurrency) {
                    writeln!(
                        f,
                        "| {concurrency} | {} | {p50:.2} | {p99:.2} | {max:.2} |",
                        variant.name()
                    )?;
                }
            }
        }

        writeln!(f, "each run:")?;
        writeln!(
            f,
            "| run | calls | variant | lateness p50 ms | p99 ms | max ms | timed out | other | reached server | wall s |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|")?;
        for result in &self.results {
            writeln!(
                f,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.2} |",
                result.run + 1,
                result.concurrency,
                result.variant.name(),
                result.lateness_ms.p50,
                result.lateness_ms.p99,
                result.lateness_ms.max,
                result.timed_out,
                result.other,
                result.server_requests,
                result.wall.as_secs_f64()
            )?;
        }

        for result in &self.results {
            if let Some(example) = &result.other_example {
                writeln!(
                    f,
                    "run {}, {} at {}: {} calls ended otherwise, e.g. {example}",
                    result.run + 1,
                    result.variant.name(),
                    result.concurrency,
                    result.other
                )?;
            }
        }
        for skipped in &self.skipped {
            writeln!(f, "skipped: {skipped}")?;
        }
        Ok(())
    }
}
