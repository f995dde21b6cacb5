//! Download throughput: one large body from a hyper server, read chunk by
//! chunk, through the bare chain and through this crate's middleware, in
//! alternating order.
//!
//! The middleware returns the response with its body under the body guard,
//! so every chunk passes through the guard, at its default settings: no
//! idle timeout and no minimum throughput.

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
    let mut failures = Vec::new();

    for round in 0..options.rounds {
        for offset in 0..subjects.len() {
            let index = (round + offset) % subjects.len();
            let (name, subject) = &subjects[index];
            match download(subject, url).await {
                Ok((bytes, seconds)) if bytes == expected => {
                    samples[index].push(bytes as f64 / (1024.0 * 1024.0) / seconds);
                }
                Ok((bytes, _seconds)) => {
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
    let clients = subjects
        .iter()
        .zip(samples.iter_mut())
        .map(|((name, _subject), samples)| ClientResult {
            name,
            mib_per_s: Summary::of(samples),
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
        failures,
    }
}

/// Downloads `url` chunk by chunk without keeping the body. Returns the
/// bytes read and the seconds from sending to the last chunk.
async fn download(client: &ClientWithMiddleware, url: &str) -> Result<(u64, f64), String> {
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
    Ok((bytes, started.elapsed().as_secs_f64()))
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
        writeln!(f, "| client | min MiB/s | p50 MiB/s | max MiB/s |")?;
        writeln!(f, "|---|---|---|---|")?;
        for client in &self.clients {
            let summary = &client.mib_per_s;
            writeln!(
                f,
                "| {} | {:.0} | {:.0} | {:.0} |",
                client.name, summary.min, summary.p50, summary.max
            )?;
        }
        let [p25, p50, p75] = self.round_ratio;
        writeln!(
            f,
            "throughput with middleware / bare: {:.4} (per-round ratio p25 {:.4}, p50 {:.4}, p75 {:.4})",
            self.ratio_of_medians, p25, p50, p75
        )?;
        for failure in &self.failures {
            writeln!(f, "failed: {failure}")?;
        }
        Ok(())
    }
}
