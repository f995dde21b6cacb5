//! Download throughput: one large body from a hyper server, read chunk by
//! chunk, through the bare chain and through this crate's middleware, in
//! alternating order.
//!
//! The middleware returns the response with its body under the body guard,
//! so every chunk passes through the guard, at its default settings: no
//! idle timeout and no minimum throughput.
//!
//! Each download also records the CPU time of the client's thread. The
//! wall-clock throughput of single downloads varies by a factor of two or
//! three with the scheduling of the client and server threads on two cores,
//! while the client's CPU time shows the work that the guard adds.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use reqwest_middleware::ClientWithMiddleware;

use super::clients::{bare, reqwest_client, with_default_timeouts};
use super::servers::{Behavior, Log, LoopbackServer};
use super::stats::{median, percentile, Summary};
use super::system::{load_average, Machine};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Body length in MiB.
    pub size_mib: u64,
    /// Downloads per client; the clients alternate.
    pub rounds: usize,
    /// Length of each chunk the server writes, in KiB.
    pub chunk_kib: usize,
}

impl Options {
    /// Returns the sizes that BENCHMARKS.md records: 151 downloads of 256
    /// MiB per client. Single downloads vary by more than the 3 % margin, and
    /// the median of 51 rounds still moved by 5 % between runs.
    pub fn full() -> Options {
        Options {
            size_mib: 256,
            rounds: 151,
            chunk_kib: 64,
        }
    }

    /// Returns sizes for a run of well under a second, for the smoke test.
    pub fn smoke() -> Options {
        Options {
            size_mib: 1,
            rounds: 1,
            chunk_kib: 64,
        }
    }
}

/// One client's throughput.
#[derive(Debug, Clone)]
pub struct ClientResult {
    pub name: &'static str,
    /// Throughput of each download, in MiB/s.
    pub mib_per_s: Summary,
    /// CPU time of the client's thread for each download, user and system,
    /// in milliseconds.
    pub cpu_ms: Summary,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub load_after: String,
    pub options: Options,
    pub clients: Vec<ClientResult>,
    /// Median throughput with the middleware divided by the bare chain's.
    pub ratio_of_medians: f64,
    /// Percentiles (25, 50, 75) of the per-round throughput ratio.
    pub round_ratio: [f64; 3],
    /// Median CPU time per download with the middleware divided by the
    /// bare chain's, on the client's thread.
    pub cpu_ratio_of_medians: f64,
    pub failures: Vec<String>,
}

/// Runs the scenario on a single-threaded runtime and returns its report.
pub fn run(options: &Options) -> Report {
    let machine = Machine::read();
    let server = LoopbackServer::start(
        Behavior::Download {
            len: options.size_mib * 1024 * 1024,
            chunk: Bytes::from(vec![b'x'; options.chunk_kib * 1024]),
        },
        Log::Counts,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build the client runtime");
    runtime.block_on(measure(&server.url("/"), options, machine))
}

async fn measure(url: &str, options: &Options, machine: Machine) -> Report {
    let client = reqwest_client();
    let subjects: [(&'static str, ClientWithMiddleware); 2] = [
        ("bare chain", bare(&client)),
        ("reqwest-timeout", with_default_timeouts(&client)),
    ];
    let expected = options.size_mib * 1024 * 1024;
    let mut samples = [Vec::new(), Vec::new()];
    let mut cpu_ms = [Vec::new(), Vec::new()];
    let mut failures = Vec::new();

    for round in 0..options.rounds {
        for offset in 0..subjects.len() {
            let index = (round + offset) % subjects.len();
            let (name, subject) = &subjects[index];
            match download(subject, url).await {
                Ok(Downloaded {
                    bytes,
                    seconds,
                    cpu_seconds,
                }) if bytes == expected => {
                    samples[index].push(bytes as f64 / (1024.0 * 1024.0) / seconds);
                    cpu_ms[index].push(cpu_seconds * 1000.0);
                }
                Ok(Downloaded { bytes, .. }) => {
                    failures.push(format!("{name}: {bytes} of {expected} bytes"));
                }
                Err(error) => failures.push(format!("{name}: {error}")),
            }
        }
    }

    let mut ratios: Vec<f64> = samples[1]
        .iter()
        .zip(&samples[0])
        .map(|(ours, bare)| ours / bare)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio_of_medians = median(&mut samples[1].clone()) / median(&mut samples[0].clone());
    let cpu_ratio_of_medians = median(&mut cpu_ms[1].clone()) / median(&mut cpu_ms[0].clone());
    let clients = subjects
        .iter()
        .zip(samples.iter_mut().zip(cpu_ms.iter_mut()))
        .map(|((name, _subject), (samples, cpu_ms))| ClientResult {
            name,
            mib_per_s: Summary::of(samples),
            cpu_ms: Summary::of(cpu_ms),
        })
        .collect();
    Report {
        machine,
        load_after: load_average(),
        options: options.clone(),
        clients,
        ratio_of_medians,
        round_ratio: [
            percentile(&ratios, 25.0),
            percentile(&ratios, 50.0),
            percentile(&ratios, 75.0),
        ],
        cpu_ratio_of_medians,
        failures,
    }
}

/// The byte count and the times of one download.
struct Downloaded {
    bytes: u64,
    /// Wall-clock time from sending to the last chunk.
    seconds: f64,
    /// CPU time of the calling thread over the same span.
    cpu_seconds: f64,
}

/// Downloads `url` chunk by chunk without keeping the body.
async fn download(client: &ClientWithMiddleware, url: &str) -> Result<Downloaded, String> {
    let cpu_started = thread_cpu_seconds();
    let started = Instant::now();
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        bytes += chunk.len() as u64;
    }
    Ok(Downloaded {
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: thread_cpu_seconds() - cpu_started,
    })
}

/// Returns the user and system CPU time of the calling thread, in seconds.
/// The client runs on one thread, so this counts its work alone: the
/// server's thread and other processes do not add to it, as they do to the
/// wall-clock time.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: `getrusage` writes only into the struct it is given, which is
    // valid when zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if status != 0 {
        return f64::NAN;
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "download: {} x {} MiB per client in {} KiB chunks, {} failed, load after {}",
            options.rounds,
            options.size_mib,
            options.chunk_kib,
            self.failures.len(),
            self.load_after
        )?;
        writeln!(
            f,
            "| client | min MiB/s | p50 MiB/s | max MiB/s | p50 client CPU ms per download |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for client in &self.clients {
            let summary = &client.mib_per_s;
            writeln!(
                f,
                "| {} | {:.0} | {:.0} | {:.0} | {:.2} |",
                client.name, summary.min, summary.p50, summary.max, client.cpu_ms.p50
            )?;
        }
        let [p25, p50, p75] = self.round_ratio;
        writeln!(
            f,
            "throughput with middleware / bare: {:.4} (per-round ratio p25 {:.4}, p50 {:.4}, p75 {:.4})",
            self.ratio_of_medians, p25, p50, p75
        )?;
        writeln!(
            f,
            "client thread CPU per download with middleware / bare: {:.4}",
            self.cpu_ratio_of_medians
        )?;
        for failure in &self.failures {
            writeln!(f, "failed: {failure}")?;
        }
        Ok(())
    }
}
