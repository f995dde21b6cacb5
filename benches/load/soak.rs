//! Soak: calls at a fixed rate for a fixed time against a mix of healthy
//! and failing servers, checking that every call returns by its deadline
//! plus a margin, that no socket outlives the load and that nothing panics.
//!
//! File descriptors are counted from `/proc/self/fd` before the servers
//! start and again after the client and the servers are dropped. The
//! servers run in this process, so their sockets count too.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::TimeoutMiddleware;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::clients::{reqwest_client, with_timeouts};
use super::servers::{refused_addr, Behavior, Log, LoopbackServer};
use super::stats::{signed_ms, Summary};
use super::system::{load_average, open_fds, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    /// Calls started per second.
    pub rate: u32,
    pub attempt_timeout: Duration,
    pub total_timeout: Duration,
    /// How far past its deadline a call may return before it counts as a
    /// violation.
    pub margin: Duration,
    /// Print a progress line to stderr every 10 s.
    pub progress: bool,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 60 s at 200 calls per second.
    pub fn full() -> Options {
        Options {
            duration: Duration::from_secs(60),
            rate: 200,
            attempt_timeout: Duration::from_millis(200),
            total_timeout: Duration::from_millis(500),
            margin: Duration::from_millis(50),
            progress: true,
        }
    }

    /// Returns sizes for a run of about a second and a half, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            duration: Duration::from_secs(1),
            rate: 50,
            attempt_timeout: Duration::from_millis(100),
            total_timeout: Duration::from_millis(250),
            margin: Duration::from_millis(50),
            progress: false,
        }
    }
}

/// The server or fault that a call is sent to. Half of the calls go to a
/// healthy server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Healthy,
    StallHeaders,
    Refused,
    Unavailable,
    Drip,
    CloseAfterHead,
}

impl Target {
    /// The mix, one entry per tenth of the calls.
    const MIX: [Target; 10] = [
        Target::Healthy,
        Target::StallHeaders,
        Target::Healthy,
        Target::Refused,
        Target::Healthy,
        Target::Unavailable,
        Target::Healthy,
        Target::Drip,
        Target::Healthy,
        Target::CloseAfterHead,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::Healthy => "healthy",
            Target::StallHeaders => "header stall",
            Target::Refused => "refused",
            Target::Unavailable => "503",
            Target::Drip => "body drip",
            Target::CloseAfterHead => "close after head",
        }
    }
}

/// The calls that met one target.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub target: Target,
    /// Call end minus call deadline, in milliseconds.
    pub overshoot_ms: Summary,
    pub ok: usize,
    pub failed: usize,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub elapsed: Duration,
    pub targets: Vec<TargetResult>,
    pub calls: usize,
    /// Calls that returned later than their deadline plus the margin.
    pub violations: usize,
    pub max_overshoot_ms: f64,
    /// Ticks skipped because too many calls were in flight.
    pub skipped_ticks: usize,
    pub fds_before: Option<usize>,
    pub fds_peak: Option<usize>,
    /// With the client still alive, its idle keep-alive connections open.
    pub fds_loaded: Option<usize>,
    pub fds_after: Option<usize>,
    /// Panics seen by the panic hook, in any thread, and call tasks that
    /// ended in a panic.
    pub panics: usize,
}

impl Report {
    /// Returns the file descriptors left open after the run, compared with
    /// before it.
    pub fn leaked_fds(&self) -> Option<isize> {
        Some(self.fds_after? as isize - self.fds_before? as isize)
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Runs the scenario on a multi-threaded runtime with one worker per core.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let previous_hook = std::panic::take_hook();
    let panics_before = PANICS.load(Ordering::SeqCst);
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        eprintln!("soak: panic: {info}");
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    let fds_before = open_fds();
    let servers = Servers::start();
    let outcome = runtime.block_on(load(&servers, options));
    let violations = outcome.violations(options.margin.as_secs_f64() * 1e3);
    let fds_loaded = open_fds();
    drop(outcome.client);
    runtime.block_on(servers.wait_for_no_connections());
    drop(servers);
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    let fds_after = open_fds();
    drop(runtime);

    drop(std::panic::take_hook());
    std::panic::set_hook(previous_hook);
    let panics = PANICS.load(Ordering::SeqCst) - panics_before + outcome.panicked_tasks;

    let mut targets = Vec::new();
    for (target, mut calls) in outcome.by_target {
        let ok = calls.iter().filter(|call| call.ok).count();
        let mut overshoots: Vec<f64> = calls.iter_mut().map(|call| call.overshoot_ms).collect();
        targets.push(TargetResult {
            target,
            overshoot_ms: Summary::of(&mut overshoots),
            ok,
            failed: calls.len() - ok,
        });
    }
    let all = targets.iter().map(|target| target.overshoot_ms);
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        elapsed: outcome.elapsed,
        calls: targets.iter().map(|target| target.overshoot_ms.count).sum(),
        violations,
        max_overshoot_ms: all
            .map(|summary| summary.max)
            .fold(f64::NEG_INFINITY, f64::max),
        targets,
        skipped_ticks: outcome.skipped_ticks,
        fds_before,
        fds_peak: outcome.fds_peak,
        fds_loaded,
        fds_after,
        panics,
    }
}

struct Servers {
    healthy: LoopbackServer,
    stall: LoopbackServer,
    unavailable: LoopbackServer,
    drip: LoopbackServer,
    close: LoopbackServer,
    refused: String,
}

impl Servers {
    fn start() -> Servers {
        Servers {
            healthy: LoopbackServer::start(
                Behavior::Fixed {
                    body: Bytes::from_static(b"ok"),
                },
                Log::Counts,
            ),
            stall: LoopbackServer::start(Behavior::StallHeaders, Log::Counts),
            unavailable: LoopbackServer::start(
                Behavior::Status {
                    status: 503,
                    retry_after_secs: None,
                },
                Log::Counts,
            ),
            drip: LoopbackServer::start(
                Behavior::Drip {
                    len: 1_000,
                    interval: Duration::from_millis(20),
                },
                Log::Counts,
            ),
            close: LoopbackServer::start(Behavior::CloseAfterHead, Log::Counts),
            refused: format!("http://{}/", refused_addr()),
        }
    }

    fn url(&self, target: Target) -> String {
        match target {
            Target::Healthy => self.healthy.url("/"),
            Target::StallHeaders => self.stall.url("/"),
            Target::Refused => self.refused.clone(),
            Target::Unavailable => self.unavailable.url("/"),
            Target::Drip => self.drip.url("/"),
            Target::CloseAfterHead => self.close.url("/"),
        }
    }

    async fn wait_for_no_connections(&self) {
        for server in [
            &self.healthy,
            &self.stall,
            &self.unavailable,
            &self.drip,
            &self.close,
        ] {
            server.wait_for_no_connections(Duration::from_secs(5)).await;
        }
    }
}

struct CallResult {
    ok: bool,
    overshoot_ms: f64,
}

struct LoadOutcome {
    client: ClientWithMiddleware,
    by_target: BTreeMap<Target, Vec<CallResult>>,
    skipped_ticks: usize,
    panicked_tasks: usize,
    fds_peak: Option<usize>,
    elapsed: Duration,
}

impl LoadOutcome {
    fn violations(&self, margin_ms: f64) -> usize {
        self.by_target
            .values()
            .flatten()
            .filter(|call| call.overshoot_ms > margin_ms)
            .count()
    }
}

async fn load(servers: &Servers, options: &Options) -> LoadOutcome {
    let client = with_timeouts(
        &reqwest_client(),
        TimeoutMiddleware::builder()
            .attempt_timeout(options.attempt_timeout)
            .total_timeout(options.total_timeout)
            .max_retries(3)
            .initial_backoff(Duration::from_millis(20)),
    );
    // Enough permits for every call of two total timeouts at the full rate;
    // a tick that finds none is skipped and counted.
    let max_in_flight =
        (f64::from(options.rate) * options.total_timeout.as_secs_f64() * 2.0).ceil() as usize + 1;
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / options.rate.max(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);

    let started = Instant::now();
    let stop = started + options.duration;
    let mut next_progress = started + Duration::from_secs(10);
    let mut outcome = LoadOutcome {
        client: client.clone(),
        by_target: BTreeMap::new(),
        skipped_ticks: 0,
        panicked_tasks: 0,
        fds_peak: open_fds(),
        elapsed: Duration::ZERO,
    };
    let mut tasks = JoinSet::new();
    let mut started_calls = 0usize;
    while Instant::now() < stop {
        ticker.tick().await;
        while let Some(joined) = tasks.try_join_next() {
            outcome.record(joined);
        }
        outcome.fds_peak = outcome.fds_peak.max(open_fds());
        if options.progress && Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            eprintln!(
                "soak: {:>3.0} s, {started_calls} calls started, {} in flight, {} over deadline + margin, {:?} open fds",
                started.elapsed().as_secs_f64(),
                tasks.len(),
                outcome.violations(options.margin.as_secs_f64() * 1e3),
                open_fds()
            );
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            outcome.skipped_ticks += 1;
            continue;
        };
        let target = Target::MIX[started_calls % Target::MIX.len()];
        started_calls += 1;
        let client = client.clone();
        let url = servers.url(target);
        let total = options.total_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let call_started = Instant::now();
            let ok = call(&client, &url).await;
            let overshoot_ms = signed_ms(Instant::now(), call_started + total);
            (target, CallResult { ok, overshoot_ms })
        });
    }
    while let Some(joined) = tasks.join_next().await {
        outcome.record(joined);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

impl LoadOutcome {
    fn record(&mut self, joined: Result<(Target, CallResult), tokio::task::JoinError>) {
        match joined {
            Ok((target, result)) => self.by_target.entry(target).or_default().push(result),
            Err(_error) => self.panicked_tasks += 1,
        }
    }
}

/// Sends a GET and reads the body. Returns whether both succeeded with a
/// success status.
async fn call(client: &ClientWithMiddleware, url: &str) -> bool {
    let Ok(response) = client.get(url).send().await else {
        return false;
    };
    let success = response.status().is_success();
    response.bytes().await.is_ok() && success
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "soak: {:.1} s at {} calls/s, attempt timeout {:?}, total timeout {:?}, margin {:?}, load after {}",
            self.elapsed.as_secs_f64(),
            options.rate,
            options.attempt_timeout,
            options.total_timeout,
            options.margin,
            self.load_after
        )?;
        writeln!(
            f,
            "| target | calls | ok | failed | overshoot p50 ms | p99 ms | max ms |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        for target in &self.targets {
            let summary = &target.overshoot_ms;
            writeln!(
                f,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                target.target.name(),
                summary.count,
                target.ok,
                target.failed,
                summary.p50,
                summary.p99,
                summary.max
            )?;
        }
        writeln!(
            f,
            "{} calls, {} returned after deadline + {:?} (max overshoot {:.2} ms), {} ticks skipped, {} panics",
            self.calls,
            self.violations,
            options.margin,
            self.max_overshoot_ms,
            self.skipped_ticks,
            self.panics
        )?;
        writeln!(
            f,
            "open fds: {:?} before, {:?} peak, {:?} after the load with the client alive, {:?} after dropping client and servers (leaked {:?})",
            self.fds_before,
            self.fds_peak,
            self.fds_loaded,
            self.fds_after,
            self.leaked_fds()
        )
    }
}
