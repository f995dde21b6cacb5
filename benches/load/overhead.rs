//! Success-path cost: sequential keep-alive GETs of a small fixed body from
//! a hyper server, through each client in turn.
//!
//! Every round runs one batch per client, in an order that rotates from
//! round to round, so that drift in the machine's load (other processes,
//! frequency changes) reaches every client alike. All clients share one
//! `reqwest::Client`, and so its keep-alive connection.
//!
//! Four rows only explain the others: the bare chain with reqwest's own
//! per-request timeout, the bare chain inside `tokio::time::timeout`, both
//! at once, and the bare chain behind a middleware that spins for 1 µs. The
//! first two add one timer each and nothing else, which is what any timeout
//! costs; this crate arms one per attempt. The third shows what a second
//! timer adds. The last converts CPU time into the ratio: it shows what one
//! microsecond of work per call costs on this path.
//!
//! Three more rows take the steps that no middleware with this crate's
//! guarantees can skip, alone and together (see [`super::floor`]): a copy of
//! the request for the next attempt, a wrapper around the response body, and
//! both with one timer. The last of them is the floor under this crate's
//! ratio.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest_middleware::ClientWithMiddleware;

use super::clients::{bare, reqwest_client, with_default_retry_crate, with_default_timeouts};
use super::floor::{Floor, Steps};
use super::servers::{Behavior, Log, LoopbackServer};
use super::stats::{median, percentile, us, Summary};
use super::system::{load_average, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds; each round runs one batch per client.
    pub rounds: usize,
    /// Sequential GETs per client per round.
    pub batch: usize,
    /// GETs per client before measuring.
    pub warmup: usize,
    /// Response body length in bytes.
    pub body_len: usize,
    /// Names of the clients to run besides the bare chain; empty runs all.
    /// Running two clients alone helps to profile the difference.
    pub only: Vec<String>,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 80 000 GETs, about 10 s.
    pub fn full() -> Options {
        Options {
            rounds: 1_000,
            batch: 20,
            warmup: 500,
            body_len: 64,
            only: Vec::new(),
        }
    }

    /// Returns sizes for a run of well under a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            rounds: 4,
            batch: 3,
            warmup: 2,
            body_len: 64,
            only: Vec::new(),
        }
    }
}

/// One client's latencies and its ratios to the bare chain.
#[derive(Debug, Clone)]
pub struct ClientResult {
    pub name: &'static str,
    /// Latency of one GET, in microseconds.
    pub latency_us: Summary,
    /// This client's median latency divided by the bare chain's.
    pub ratio_of_medians: f64,
    /// Percentiles (25, 50, 75) of the per-round ratio of medians.
    pub round_ratio: [f64; 3],
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub clients: Vec<ClientResult>,
    pub failures: usize,
}

/// Name of the chain with no middleware, the denominator of every ratio.
pub const BARE: &str = "bare chain";
/// Name of this crate's client in the report.
pub const OURS: &str = "reqwest-timeout";
/// Name of reqwest-retry's client in the report.
pub const RETRY_CRATE: &str = "reqwest-retry";

/// The timeout of the rows that add timers; as long as this crate's
/// default attempt timeout, and never reached.
const TIMER: Duration = Duration::from_secs(30);

enum Subject {
    Plain(reqwest::Client),
    Chain(ClientWithMiddleware),
    /// The chain with reqwest's `RequestBuilder::timeout`.
    ChainReqwestTimeout(ClientWithMiddleware),
    /// The chain, send and body read, inside `tokio::time::timeout`.
    ChainTokioTimeout(ClientWithMiddleware),
    /// The chain with reqwest's timeout, its send inside
    /// `tokio::time::timeout`: two timers per call.
    ChainTwoTimers(ClientWithMiddleware),
}

impl Subject {
    async fn get(&self, url: &str) -> Result<usize, String> {
        match self {
            Subject::Plain(client) => read(client.get(url).send().await).await,
            Subject::Chain(client) => read(client.get(url).send().await).await,
            Subject::ChainReqwestTimeout(client) => {
                read(client.get(url).timeout(TIMER).send().await).await
            }
            Subject::ChainTokioTimeout(client) => {
                let get = async { read(client.get(url).send().await).await };
                tokio::time::timeout(TIMER, get)
                    .await
                    .map_err(|elapsed| elapsed.to_string())?
            }
            Subject::ChainTwoTimers(client) => {
                let send = client.get(url).timeout(TIMER).send();
                let sent = tokio::time::timeout(TIMER, send)
                    .await
                    .map_err(|elapsed| elapsed.to_string())?;
                read(sent).await
            }
        }
    }
}

/// The CPU time that the busy-work row spends per call.
const BUSY_WORK: Duration = Duration::from_micros(1);

/// A middleware that spins for a fixed time, then passes the call on: a
/// known amount of CPU work per call, to read the other ratios against.
struct BusyWork(Duration);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for BusyWork {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let started = Instant::now();
        while started.elapsed() < self.0 {
            std::hint::spin_loop();
        }
        next.run(request, extensions).await
    }
}

/// Returns the bare chain behind a [`Floor`] that takes `steps`.
fn floor(client: &reqwest::Client, steps: Steps) -> Subject {
    Subject::Chain(
        reqwest_middleware::ClientBuilder::new(client.clone())
            .with(Floor {
                steps,
                timer: TIMER,
            })
            .build(),
    )
}

/// Reads the whole body of a sent request. Returns its length.
async fn read<E: fmt::Display>(sent: Result<reqwest::Response, E>) -> Result<usize, String> {
    let response = sent.map_err(|error| error.to_string())?;
    let body = response.bytes().await.map_err(|error| error.to_string())?;
    Ok(body.len())
}

/// Runs the scenario on a single-threaded runtime and returns its report.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let server = LoopbackServer::start(
        Behavior::Fixed {
            body: Bytes::from(vec![b'x'; options.body_len]),
        },
        Log::Counts,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let (clients, failures) = runtime.block_on(measure(&server.url("/"), options));
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        clients,
        failures,
    }
}

async fn measure(url: &str, options: &Options) -> (Vec<ClientResult>, usize) {
    let client = reqwest_client();
    let mut subjects = vec![
        ("reqwest alone", Subject::Plain(client.clone())),
        (BARE, Subject::Chain(bare(&client))),
        (OURS, Subject::Chain(with_default_timeouts(&client))),
        (
            RETRY_CRATE,
            Subject::Chain(with_default_retry_crate(&client)),
        ),
        (
            "bare + reqwest timeout",
            Subject::ChainReqwestTimeout(bare(&client)),
        ),
        (
            "bare + tokio timeout",
            Subject::ChainTokioTimeout(bare(&client)),
        ),
        (
            "bare + reqwest & tokio timeouts",
            Subject::ChainTwoTimers(bare(&client)),
        ),
        (
            "bare + 1 us of work",
            Subject::Chain(
                reqwest_middleware::ClientBuilder::new(client.clone())
                    .with(BusyWork(BUSY_WORK))
                    .build(),
            ),
        ),
        ("bare + request copy", floor(&client, Steps::Copy)),
        ("bare + body wrapper", floor(&client, Steps::Wrap)),
        ("bare + copy + timer + wrapper", floor(&client, Steps::All)),
    ];
    subjects.retain(|(name, _subject)| {
        *name == BARE || options.only.is_empty() || options.only.iter().any(|only| only == name)
    });
    let bare_index = subjects
        .iter()
        .position(|(name, _subject)| *name == BARE)
        .expect("the bare chain is always kept");
    let mut failures = 0;

    for (_name, subject) in &subjects {
        for _ in 0..options.warmup {
            failures += usize::from(subject.get(url).await.is_err());
        }
    }

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut round_medians: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut batch = Vec::with_capacity(options.batch);
    for round in 0..options.rounds {
        for offset in 0..subjects.len() {
            let index = (round + offset) % subjects.len();
            let subject = &subjects[index].1;
            batch.clear();
            for _ in 0..options.batch {
                let started = Instant::now();
                let result = subject.get(url).await;
                batch.push(us(started.elapsed()));
                failures += usize::from(result.is_err());
            }
            samples[index].extend_from_slice(&batch);
            round_medians[index].push(median(&mut batch));
        }
    }

    let bare_median = median(&mut samples[bare_index].clone());
    let results = subjects
        .iter()
        .enumerate()
        .map(|(index, (name, _subject))| {
            let mut ratios: Vec<f64> = round_medians[index]
                .iter()
                .zip(&round_medians[bare_index])
                .map(|(client, bare)| client / bare)
                .collect();
            ratios.sort_by(f64::total_cmp);
            let latency_us = Summary::of(&mut samples[index]);
            ClientResult {
                name,
                latency_us,
                ratio_of_medians: latency_us.p50 / bare_median,
                round_ratio: [
                    percentile(&ratios, 25.0),
                    percentile(&ratios, 50.0),
                    percentile(&ratios, 75.0),
                ],
            }
        })
        .collect();
    (results, failures)
}

impl Report {
    /// Returns the result of the client called `name`.
    pub fn client(&self, name: &str) -> Option<&ClientResult> {
        self.clients.iter().find(|client| client.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "success path: {} rounds x {} GETs per client, {} byte body, {} failed, load after {}",
            options.rounds, options.batch, options.body_len, self.failures, self.load_after
        )?;
        writeln!(
            f,
            "| client | p50 us | p90 us | p99 us | p50 / bare p50 | per-round ratio p25 / p50 / p75 |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for client in &self.clients {
            let [p25, p50, p75] = client.round_ratio;
            writeln!(
                f,
                "| {} | {:.1} | {:.1} | {:.1} | {:.4} | {:.4} / {:.4} / {:.4} |",
                client.name,
                client.latency_us.p50,
                client.latency_us.p90,
                client.latency_us.p99,
                client.ratio_of_medians,
                p25,
                p50,
                p75
            )?;
        }
        Ok(())
    }
}
