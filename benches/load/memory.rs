//! Memory: the heap that each in-flight stalled request holds, with and
//! without the middleware, the allocations of one successful GET, and
//! whether the process grows over many sequential calls.
//!
//! Live heap bytes come from [`CountingAllocator`](super::alloc::CountingAllocator),
//! which the binary must install as its global allocator. Without it they
//! read 0, and only the RSS figures mean something. The servers run in this
//! process, so their allocations count too; they are the same for every
//! client and cancel out of the differences.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{RequestOverrides, TimeoutMiddleware};
use tokio::task::JoinSet;

use super::alloc::{
    live_bytes, start_recording, stop_recording, take_largest_allocation, totals, track_this_thread,
};
use super::clients::{
    bare, reqwest_client, with_default_retry_crate, with_default_timeouts, with_timeouts, Canned,
};
use super::servers::{refused_addr, Behavior, Log, LoopbackServer};
use super::stats::median;
use super::system::{human_bytes, load_average, raise_fd_limit, rss_bytes, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stalled requests held in flight at once.
    pub in_flight: usize,
    /// Measurements per client; the clients alternate.
    pub rounds: usize,
    /// Sequential GETs per client whose allocations are counted.
    pub counted_gets: usize,
    /// Sequential calls of the growth check.
    pub calls: usize,
    /// The growth check stops early once this much time has passed.
    pub time_limit: Duration,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 1 000 stalled requests, 5
    /// rounds, 100 000 sequential calls within at most 5 minutes.
    pub fn full() -> Options {
        Options {
            in_flight: 1_000,
            rounds: 5,
            counted_gets: 10_000,
            calls: 100_000,
            time_limit: Duration::from_secs(300),
        }
    }

    /// Returns sizes for a run of under a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            in_flight: 10,
            rounds: 1,
            counted_gets: 10,
            calls: 300,
            time_limit: Duration::from_secs(5),
        }
    }
}

/// The limit, if any, on a stalled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The bare chain, no limit at all.
    Bare,
    /// The bare chain with reqwest's `RequestBuilder::timeout`.
    ReqwestTimeout,
    /// This crate's middleware at its default settings.
    Middleware,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Bare, Variant::ReqwestTimeout, Variant::Middleware];

    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare chain",
            Variant::ReqwestTimeout => "bare chain + reqwest timeout",
            Variant::Middleware => "reqwest-timeout",
        }
    }
}

/// Memory per in-flight request for one variant, medians over the rounds.
#[derive(Debug, Clone)]
pub struct InFlightResult {
    pub variant: Variant,
    /// Live heap bytes per request.
    pub heap_per_request: f64,
    /// RSS bytes per request; coarse, since the allocator keeps freed pages.
    pub rss_per_request: f64,
    /// Rounds in which fewer requests than planned reached the server.
    pub incomplete_rounds: usize,
}

/// The allocations of one successful keep-alive GET on the client's
/// thread, averaged over many.
#[derive(Debug, Clone)]
pub struct PerGet {
    pub client: &'static str,
    pub allocations: f64,
    pub bytes: f64,
    /// The largest single allocation seen during the GETs.
    pub largest: usize,
}

/// The process after a number of sequential calls.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    pub calls: usize,
    pub elapsed: Duration,
    pub rss: Option<u64>,
    pub heap: isize,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub allocator_counts: bool,
    pub in_flight: Vec<InFlightResult>,
    pub per_get: Vec<PerGet>,
    /// The size of each allocation of one call through a chain that ends
    /// in a canned response, so no connection code runs; per chain.
    pub canned_call_allocations: Vec<(&'static str, Vec<usize>)>,
    pub checkpoints: Vec<Checkpoint>,
    /// Sequential calls that failed other than as planned.
    pub unexpected: usize,
}

impl Report {
    /// Returns the live heap bytes per stalled request that the middleware
    /// adds over the bare chain.
    pub fn extra_heap_per_request(&self) -> Option<f64> {
        let of = |variant| {
            self.in_flight
                .iter()
                .find(|result| result.variant == variant)
                .map(|result| result.heap_per_request)
        };
        Some(of(Variant::Middleware)? - of(Variant::Bare)?)
    }
}

/// Runs both parts on a single-threaded runtime.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    raise_fd_limit(2 * options.in_flight as u64 + 256);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let in_flight = runtime.block_on(measure_in_flight(options));
    let per_get = runtime.block_on(count_allocations(options));
    let canned_call_allocations = runtime.block_on(record_canned_call());
    let (checkpoints, unexpected) = runtime.block_on(measure_growth(options));
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        allocator_counts: live_bytes() != 0,
        in_flight,
        per_get,
        canned_call_allocations,
        checkpoints,
        unexpected,
    }
}

/// Records the allocation sizes of one call through each chain ended by
/// [`Canned`], after a few warm-up calls.
async fn record_canned_call() -> Vec<(&'static str, Vec<usize>)> {
    let client = reqwest_client();
    let timeouts = TimeoutMiddleware::builder()
        .build()
        .expect("the default settings are valid");
    let chains = [
        (
            "canned",
            reqwest_middleware::ClientBuilder::new(client.clone())
                .with(Canned)
                .build(),
        ),
        (
            "reqwest-timeout + canned",
            reqwest_middleware::ClientBuilder::new(client.clone())
                .with(timeouts)
                .with(Canned)
                .build(),
        ),
    ];
    // The canned chain never connects, so the port needs no listener.
    let url = "http://127.0.0.1:9/";
    let mut recorded = Vec::new();
    for (name, chain) in chains {
        for _ in 0..3 {
            let _ = chain.get(url).send().await;
        }
        start_recording();
        let response = chain.get(url).send().await;
        drop(response);
        recorded.push((name, stop_recording()));
    }
    recorded
}

/// Counts the allocations of sequential GETs through each client. The
/// runtime is single-threaded, so the client's work, the connection task
/// included, runs on this thread, and the server runs on another.
async fn count_allocations(options: &Options) -> Vec<PerGet> {
    let server = LoopbackServer::start(
        Behavior::Fixed {
            body: Bytes::from_static(b"ok"),
        },
        Log::Counts,
    );
    let url = server.url("/");
    let client = reqwest_client();
    let clients = [
        ("bare chain", bare(&client)),
        ("reqwest-timeout", with_default_timeouts(&client)),
        ("reqwest-retry", with_default_retry_crate(&client)),
    ];
    track_this_thread();
    let mut results = Vec::new();
    for (name, chain) in clients {
        for _ in 0..10 {
            status_call(&chain, &url, 200).await;
        }
        take_largest_allocation();
        let before = totals();
        for _ in 0..options.counted_gets {
            status_call(&chain, &url, 200).await;
        }
        let after = totals();
        let gets = options.counted_gets.max(1) as f64;
        results.push(PerGet {
            client: name,
            allocations: (after.allocations - before.allocations) as f64 / gets,
            bytes: (after.bytes - before.bytes) as f64 / gets,
            largest: take_largest_allocation(),
        });
    }
    results
}

async fn measure_in_flight(options: &Options) -> Vec<InFlightResult> {
    let server = LoopbackServer::start(Behavior::StallHeaders, Log::Counts);
    let url = server.url("/");
    let mut heap = vec![Vec::new(); Variant::ALL.len()];
    let mut rss = vec![Vec::new(); Variant::ALL.len()];
    let mut incomplete = vec![0; Variant::ALL.len()];
    for round in 0..options.rounds {
        for offset in 0..Variant::ALL.len() {
            let index = (round + offset) % Variant::ALL.len();
            let variant = Variant::ALL[index];
            let (heap_delta, rss_delta, complete) =
                hold_stalled(variant, &server, &url, options.in_flight).await;
            heap[index].push(heap_delta / options.in_flight as f64);
            rss[index].push(rss_delta / options.in_flight as f64);
            incomplete[index] += usize::from(!complete);
        }
    }
    Variant::ALL
        .iter()
        .enumerate()
        .map(|(index, &variant)| InFlightResult {
            variant,
            heap_per_request: median(&mut heap[index]),
            rss_per_request: median(&mut rss[index]),
            incomplete_rounds: incomplete[index],
        })
        .collect()
}

/// Holds `count` stalled requests through `variant` and returns the growth
/// of live heap and RSS, and whether all of them reached the server.
async fn hold_stalled(
    variant: Variant,
    server: &LoopbackServer,
    url: &str,
    count: usize,
) -> (f64, f64, bool) {
    let client = reqwest_client();
    let chain = match variant {
        Variant::Bare | Variant::ReqwestTimeout => bare(&client),
        Variant::Middleware => with_default_timeouts(&client),
    };
    let settle = Duration::from_millis(200);
    tokio::time::sleep(settle).await;
    let heap_before = live_bytes();
    let rss_before = rss_bytes().unwrap_or(0);
    let requests_before = server.requests();

    let mut requests = JoinSet::new();
    for _ in 0..count {
        let chain = chain.clone();
        let url = url.to_owned();
        requests.spawn(async move {
            let mut request = chain.get(&url);
            if variant == Variant::ReqwestTimeout {
                request = request.timeout(Duration::from_secs(30));
            }
            let _ = request.send().await;
        });
    }
    let complete = server
        .wait_for_requests(requests_before + count as u64, Duration::from_secs(30))
        .await;
    tokio::time::sleep(settle).await;
    let heap_delta = (live_bytes() - heap_before) as f64;
    let rss_delta = rss_bytes().unwrap_or(0) as f64 - rss_before as f64;

    requests.abort_all();
    while requests.join_next().await.is_some() {}
    drop((chain, client));
    server
        .wait_for_no_connections(Duration::from_secs(10))
        .await;
    (heap_delta, rss_delta, complete)
}

/// Runs sequential calls through the middleware: mostly `200`, every tenth
/// a `503` with `Retry-After: 0` (four attempts, 1 ms apart, because
/// `Retry-After` never shortens the backoff), every hundredth a refused
/// connect without retries. Returns the checkpoints and the number of calls
/// that ended otherwise than planned.
async fn measure_growth(options: &Options) -> (Vec<Checkpoint>, usize) {
    let healthy = LoopbackServer::start(
        Behavior::Fixed {
            body: Bytes::from_static(b"ok"),
        },
        Log::Counts,
    );
    let unavailable = LoopbackServer::start(
        Behavior::Status {
            status: 503,
            retry_after_secs: Some(0),
        },
        Log::Counts,
    );
    let healthy_url = healthy.url("/");
    let unavailable_url = unavailable.url("/");
    let refused_url = format!("http://{}/", refused_addr());
    let chain = with_timeouts(
        &reqwest_client(),
        TimeoutMiddleware::builder()
            .initial_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(1)),
    );

    let marks = [1_000, 10_000, 25_000, 50_000, 75_000, 100_000];
    let mut checkpoints = Vec::new();
    let mut unexpected = 0;
    let started = Instant::now();
    for call in 1..=options.calls {
        let ok = match call % 100 {
            99 => refused_call(&chain, &refused_url).await,
            n if n % 10 == 5 => status_call(&chain, &unavailable_url, 503).await,
            _ => status_call(&chain, &healthy_url, 200).await,
        };
        unexpected += usize::from(!ok);
        let last = call == options.calls || started.elapsed() >= options.time_limit;
        if marks.contains(&call) || last {
            checkpoints.push(Checkpoint {
                calls: call,
                elapsed: started.elapsed(),
                rss: rss_bytes(),
                heap: live_bytes(),
            });
        }
        if last {
            break;
        }
    }
    (checkpoints, unexpected)
}

async fn status_call(chain: &ClientWithMiddleware, url: &str, expected: u16) -> bool {
    match chain.get(url).send().await {
        Ok(response) => response.status().as_u16() == expected && response.bytes().await.is_ok(),
        Err(_error) => false,
    }
}

async fn refused_call(chain: &ClientWithMiddleware, url: &str) -> bool {
    chain
        .get(url)
        .with_extension(RequestOverrides::new().max_retries(0))
        .send()
        .await
        .is_err()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        if !self.allocator_counts {
            writeln!(
                f,
                "the counting allocator is not installed: heap figures read 0"
            )?;
        }
        writeln!(
            f,
            "memory per stalled request: {} in flight, median of {} rounds, load after {}",
            options.in_flight, options.rounds, self.load_after
        )?;
        writeln!(
            f,
            "| client | live heap per request | RSS per request | rounds short of requests |"
        )?;
        writeln!(f, "|---|---|---|---|")?;
        for result in &self.in_flight {
            writeln!(
                f,
                "| {} | {:.0} B | {:.0} B | {} |",
                result.variant.name(),
                result.heap_per_request,
                result.rss_per_request,
                result.incomplete_rounds
            )?;
        }

        if let Some(extra) = self.extra_heap_per_request() {
            writeln!(
                f,
                "extra live heap per stalled request with the middleware: {extra:.0} B"
            )?;
        }

        writeln!(
            f,
            "allocations per successful keep-alive GET, client thread only, {} GETs each:",
            options.counted_gets
        )?;
        writeln!(
            f,
            "| client | allocations | bytes allocated | largest allocation |"
        )?;
        writeln!(f, "|---|---|---|---|")?;
        for get in &self.per_get {
            writeln!(
                f,
                "| {} | {:.1} | {:.0} B | {} B |",
                get.client, get.allocations, get.bytes, get.largest
            )?;
        }

        for (chain, sizes) in &self.canned_call_allocations {
            writeln!(
                f,
                "allocations of one call through {chain}: {} totalling {} B, sizes {sizes:?}",
                sizes.len(),
                sizes.iter().sum::<usize>()
            )?;
        }

        writeln!(
            f,
            "growth over sequential calls (89% 200, 10% 503 Retry-After: 0, 1% refused), {} ended otherwise:",
            self.unexpected
        )?;
        writeln!(f, "| calls | elapsed s | RSS | live heap |")?;
        writeln!(f, "|---|---|---|---|")?;
        for checkpoint in &self.checkpoints {
            writeln!(
                f,
                "| {} | {:.1} | {} | {} |",
                checkpoint.calls,
                checkpoint.elapsed.as_secs_f64(),
                checkpoint
                    .rss
                    .map_or("unknown".to_owned(), |rss| human_bytes(rss as f64)),
                human_bytes(checkpoint.heap as f64)
            )?;
        }

        if let (Some(first), Some(last)) = (self.checkpoints.first(), self.checkpoints.last()) {
            let rss_growth = last.rss.unwrap_or(0) as f64 - first.rss.unwrap_or(0) as f64;
            writeln!(
                f,
                "from {} to {} calls: RSS {:+.1} KiB, live heap {:+.1} KiB",
                first.calls,
                last.calls,
                rss_growth / 1024.0,
                (last.heap - first.heap) as f64 / 1024.0
            )?;
        }
        Ok(())
    }
}
