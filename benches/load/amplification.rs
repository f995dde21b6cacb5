//! Retry amplification: concurrent callers against a server that always
//! responds with `503`, for a fixed time, counting the requests the server
//! receives per call.
//!
//! Each client in [`clients`] gets its own server, so that the counts do
//! not mix. Callers start no new call once the time is up; the calls in
//! flight then finish within their own retries.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{RetryBudget, TimeoutMiddleware, TimeoutMiddlewareBuilder};
use tokio::task::JoinSet;

use super::clients::{reqwest_client, with_retry_crate, with_timeouts};
use super::servers::{Behavior, Log, LoopbackServer};
use super::system::{load_average, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent callers; each sends one call after another.
    pub callers: usize,
    /// How long callers keep starting calls, per client.
    pub duration: Duration,
    /// Retries each client may make per call.
    pub retries: u32,
    /// First backoff wait; later waits double up to 1 s.
    pub initial_backoff: Duration,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 100 callers, 5 s per client,
    /// 3 retries.
    pub fn full() -> Options {
        Options {
            callers: 100,
            duration: Duration::from_secs(5),
            retries: 3,
            initial_backoff: Duration::from_millis(50),
        }
    }

    /// Returns sizes for a run of about a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            callers: 4,
            duration: Duration::from_millis(200),
            retries: 3,
            initial_backoff: Duration::from_millis(5),
        }
    }
}

/// Builds the clients to compare, each as a name and a chain built on
/// `client`.
///
/// A new column is one more entry here.
fn clients(
    client: &reqwest::Client,
    options: &Options,
) -> Vec<(&'static str, ClientWithMiddleware)> {
    vec![
        (
            "reqwest-timeout, no retries",
            with_timeouts(client, ours(options).max_retries(0)),
        ),
        (
            "reqwest-timeout, no retry budget",
            with_timeouts(client, ours(options).retry_budget(RetryBudget::unlimited())),
        ),
        (
            "reqwest-timeout, default retry budget",
            with_timeouts(client, ours(options)),
        ),
        (
            "reqwest-retry",
            with_retry_crate(
                client,
                options.retries,
                options.initial_backoff,
                MAX_BACKOFF,
            ),
        ),
    ]
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// This crate's middleware with the scenario's retries and backoff.
fn ours(options: &Options) -> TimeoutMiddlewareBuilder {
    TimeoutMiddleware::builder()
        .attempt_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(30))
        .max_retries(options.retries)
        .initial_backoff(options.initial_backoff)
        .max_backoff(MAX_BACKOFF)
}

/// One client's counts.
#[derive(Debug, Clone)]
pub struct ClientResult {
    pub name: &'static str,
    pub calls: u64,
    pub server_requests: u64,
    /// Calls that returned something other than a `503` response.
    pub unexpected: u64,
    pub elapsed: Duration,
}

impl ClientResult {
    /// Returns the server requests per call, the amplification factor.
    pub fn requests_per_call(&self) -> f64 {
        self.server_requests as f64 / self.calls as f64
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub clients: Vec<ClientResult>,
}

/// Runs the scenario on a multi-threaded runtime with one worker per core.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let client = reqwest_client();
    let mut results = Vec::new();
    for (name, chain) in clients(&client, options) {
        let server = LoopbackServer::start(
            Behavior::Status {
                status: 503,
                retry_after_secs: None,
            },
            Log::Counts,
        );
        let (calls, unexpected, elapsed) = runtime.block_on(load(chain, server.url("/"), options));
        results.push(ClientResult {
            name,
            calls,
            server_requests: server.requests(),
            unexpected,
            elapsed,
        });
    }
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        clients: results,
    }
}

/// Runs the callers until `options.duration` has passed. Returns the calls,
/// the unexpected endings and the time until the last call ended.
async fn load(chain: ClientWithMiddleware, url: String, options: &Options) -> (u64, u64, Duration) {
    let started = Instant::now();
    let stop = started + options.duration;
    let calls = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(AtomicU64::new(0));
    let mut callers = JoinSet::new();
    for _ in 0..options.callers {
        let chain = chain.clone();
        let url = url.clone();
        let calls = Arc::clone(&calls);
        let unexpected = Arc::clone(&unexpected);
        callers.spawn(async move {
            while Instant::now() < stop {
                let is_503 = match chain.get(&url).send().await {
                    Ok(response) => response.status().as_u16() == 503,
                    Err(_error) => false,
                };
                calls.fetch_add(1, Ordering::SeqCst);
                unexpected.fetch_add(u64::from(!is_503), Ordering::SeqCst);
            }
        });
    }
    while let Some(joined) = callers.join_next().await {
        joined.expect("a caller panicked");
    }
    (
        calls.load(Ordering::SeqCst),
        unexpected.load(Ordering::SeqCst),
        started.elapsed(),
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "retry amplification: {} callers for {:?} per client against an always-503 server, \
             {} retries, backoff from {:?} up to {:?}, load after {}",
            options.callers,
            options.duration,
            options.retries,
            options.initial_backoff,
            MAX_BACKOFF,
            self.load_after
        )?;
        writeln!(
            f,
            "| client | calls | server requests | requests per call | unexpected endings | elapsed s |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for client in &self.clients {
            writeln!(
                f,
                "| {} | {} | {} | {:.3} | {} | {:.2} |",
                client.name,
                client.calls,
                client.server_requests,
                client.requests_per_call(),
                client.unexpected,
                client.elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}
