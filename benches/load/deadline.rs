//! Deadline accuracy: calls with a total timeout against failing servers,
//! each call's end compared with its deadline, and each request a server
//! received compared with the deadline of the call that sent it.
//!
//! The calls cycle through four faults: a server that never sends headers,
//! a refused connect, a `503` with `Retry-After: 1`, and a body that arrives
//! one byte every 20 ms. Each call draws its total timeout, and an attempt
//! timeout of 30 % to 100 % of it, from a seeded generator, so that
//! deadlines fall during attempts, backoff waits and `Retry-After` waits
//! alike. A call ends when its body has been read or has failed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::TimeoutMiddleware;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::clients::{reqwest_client, with_timeouts, CALL_ID_HEADER};
use super::servers::{refused_addr, Behavior, Log, LoopbackServer};
use super::stats::{signed_ms, Summary};
use super::system::{load_average, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub calls: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Range of the total timeout, drawn per call.
    pub min_total: Duration,
    pub max_total: Duration,
    /// Seed of the generator that draws the timeouts.
    pub seed: u64,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 200 calls, 50 at a time,
    /// total timeouts between 300 ms and 1.3 s.
    pub fn full() -> Options {
        Options {
            calls: 200,
            concurrency: 50,
            min_total: Duration::from_millis(300),
            max_total: Duration::from_millis(1_300),
            seed: 1,
        }
    }

    /// Returns sizes for a run of about half a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            calls: 8,
            concurrency: 8,
            min_total: Duration::from_millis(100),
            max_total: Duration::from_millis(300),
            seed: 1,
        }
    }
}

/// The failure a call meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    StallHeaders,
    Refused,
    RetryAfter,
    Drip,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::StallHeaders,
        Fault::Refused,
        Fault::RetryAfter,
        Fault::Drip,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::StallHeaders => "header stall",
            Fault::Refused => "refused",
            Fault::RetryAfter => "503 Retry-After: 1",
            Fault::Drip => "body drip",
        }
    }
}

/// Overshoot of the calls that met one fault.
#[derive(Debug, Clone)]
pub struct FaultResult {
    pub fault: Fault,
    /// Call end minus call deadline, in milliseconds; negative is early.
    pub overshoot_ms: Summary,
    /// The endings of the calls (a status or a diagnosis code), with counts.
    pub endings: Vec<(String, usize)>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub faults: Vec<FaultResult>,
    /// The largest overshoot of any call, in milliseconds.
    pub max_overshoot_ms: f64,
    /// Requests that servers received, across all servers.
    pub server_requests: usize,
    /// Requests that arrived after their call's deadline.
    pub late_requests: usize,
    /// The latest arrival relative to its call's deadline, in milliseconds;
    /// negative when every request arrived in time.
    pub latest_arrival_ms: f64,
}

/// One call's plan and result.
#[derive(Debug, Clone)]
struct Call {
    fault: Fault,
    deadline: Instant,
    overshoot_ms: f64,
    ending: String,
}

/// Runs the scenario on a multi-threaded runtime with one worker per core.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let stall = LoopbackServer::start(Behavior::StallHeaders, Log::Arrivals);
    let retry_after = LoopbackServer::start(
        Behavior::Status {
            status: 503,
            retry_after_secs: Some(1),
        },
        Log::Arrivals,
    );
    let drip = LoopbackServer::start(
        Behavior::Drip {
            len: 1_000,
            interval: Duration::from_millis(20),
        },
        Log::Arrivals,
    );
    let urls: HashMap<Fault, String> = [
        (Fault::StallHeaders, stall.url("/")),
        (Fault::Refused, format!("http://{}/", refused_addr())),
        (Fault::RetryAfter, retry_after.url("/")),
        (Fault::Drip, drip.url("/")),
    ]
    .into_iter()
    .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let calls = runtime.block_on(run_calls(options, urls));
    drop(runtime);

    let arrivals: Vec<_> = [&stall, &retry_after, &drip]
        .iter()
        .flat_map(|server| server.arrivals())
        .collect();
    let mut late_requests = 0;
    let mut latest_arrival_ms = f64::NEG_INFINITY;
    for arrival in &arrivals {
        let Some(call) = arrival.call_id.and_then(|id| calls.get(id as usize)) else {
            continue;
        };
        let late = signed_ms(arrival.at, call.deadline);
        latest_arrival_ms = latest_arrival_ms.max(late);
        late_requests += usize::from(late > 0.0);
    }

    let faults = Fault::ALL
        .iter()
        .map(|&fault| summarize(fault, &calls))
        .collect();
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        faults,
        max_overshoot_ms: calls
            .iter()
            .map(|call| call.overshoot_ms)
            .fold(f64::NEG_INFINITY, f64::max),
        server_requests: arrivals.len(),
        late_requests,
        latest_arrival_ms,
    }
}

fn summarize(fault: Fault, calls: &[Call]) -> FaultResult {
    let mut overshoots = Vec::new();
    let mut endings: HashMap<String, usize> = HashMap::new();
    for call in calls.iter().filter(|call| call.fault == fault) {
        overshoots.push(call.overshoot_ms);
        *endings.entry(call.ending.clone()).or_default() += 1;
    }
    let mut endings: Vec<(String, usize)> = endings.into_iter().collect();
    endings.sort();
    FaultResult {
        fault,
        overshoot_ms: Summary::of(&mut overshoots),
        endings,
    }
}

/// Runs every call and returns them indexed by call id.
async fn run_calls(options: &Options, urls: HashMap<Fault, String>) -> Vec<Call> {
    let client = reqwest_client();
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut random = XorShift::new(options.seed);
    let span = options.max_total.saturating_sub(options.min_total);
    let mut tasks = JoinSet::new();
    for id in 0..options.calls {
        let fault = Fault::ALL[id % Fault::ALL.len()];
        let total = options.min_total + span.mul_f64(random.next_unit());
        let attempt = total
            .mul_f64(0.3 + 0.7 * random.next_unit())
            .max(Duration::from_millis(1));
        let chain = with_timeouts(
            &client,
            TimeoutMiddleware::builder()
                .attempt_timeout(attempt)
                .total_timeout(total)
                .max_retries(10)
                .initial_backoff(Duration::from_millis(50)),
        );
        let url = urls[&fault].clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore stays open");
            let started = Instant::now();
            let ending = call(&chain, &url, id).await;
            let ended = Instant::now();
            let deadline = started + total;
            (
                id,
                Call {
                    fault,
                    deadline,
                    overshoot_ms: signed_ms(ended, deadline),
                    ending,
                },
            )
        });
    }
    let mut calls: Vec<Option<Call>> = vec![None; options.calls];
    while let Some(joined) = tasks.join_next().await {
        let (id, call) = joined.expect("a deadline call panicked");
        calls[id] = Some(call);
    }
    calls
        .into_iter()
        .map(|call| call.expect("every call reports once"))
        .collect()
}

/// Sends one call and reads its body. Returns a short description of how
/// it ended: the status, or the diagnosis code of the error.
async fn call(client: &ClientWithMiddleware, url: &str, id: usize) -> String {
    let sent = client
        .get(url)
        .header(CALL_ID_HEADER, id.to_string())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return describe_error(&error),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(_body) => format!("status {status}"),
        Err(error) if error.is_timeout() => format!("status {status}, body timed out"),
        Err(error) => format!("status {status}, body failed: {error}"),
    }
}

fn describe_error(error: &reqwest_middleware::Error) -> String {
    match reqwest_timeout::Error::find(error) {
        Some(diagnosed) => format!(
            "error {} after {} attempt(s)",
            diagnosed.diagnosis().code(),
            diagnosed.attempts()
        ),
        None => format!("error {error}"),
    }
}

/// Marsaglia's xorshift64 generator: reproducible draws without a
/// dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    /// Returns a draw from [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "deadline accuracy: {} calls, {} at a time, total timeout {:?} to {:?}, seed {}, load after {}",
            options.calls,
            options.concurrency,
            options.min_total,
            options.max_total,
            options.seed,
            self.load_after
        )?;
        writeln!(
            f,
            "| fault | calls | overshoot p50 ms | p99 ms | max ms | endings |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for fault in &self.faults {
            let endings: Vec<String> = fault
                .endings
                .iter()
                .map(|(ending, count)| format!("{count}x {ending}"))
                .collect();
            writeln!(
                f,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} |",
                fault.fault.name(),
                fault.overshoot_ms.count,
                fault.overshoot_ms.p50,
                fault.overshoot_ms.p99,
                fault.overshoot_ms.max,
                endings.join(", ")
            )?;
        }
        writeln!(
            f,
            "max overshoot {:.2} ms; {} of {} server requests arrived after their call's deadline (latest {:+.2} ms)",
            self.max_overshoot_ms,
            self.late_requests,
            self.server_requests,
            self.latest_arrival_ms
        )
    }
}
