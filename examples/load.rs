//! Load harnesses behind BENCHMARKS.md, all against servers that this
//! process starts on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example load -- SCENARIO [--preset full|smoke] [--OPTION VALUE]...
//! ```
//!
//! | scenario | measures | options (defaults: `--preset full`) |
//! |---|---|---|
//! | `overhead` | keep-alive GET latency per client, interleaved | `--rounds 1000 --batch 20 --warmup 500 --body-len 64`, and `--only NAME,NAME` to run only the named clients and the bare chain |
//! | `throughput` | 256 MiB download, middleware vs bare | `--size-mib 256 --rounds 151 --chunk-kib 64` |
//! | `timers` | lateness of 300 ms timeouts, 1 000 and 5 000 at once | `--concurrency 1000,5000 --timeout-ms 300 --runs 5 --ramp-ms 0`, and `--only NAME,NAME` to run only the named variants |
//! | `deadline` | call end and server arrivals vs each total timeout | `--calls 200 --concurrency 50 --min-total-ms 300 --max-total-ms 1300 --seed 1` |
//! | `amplification` | server requests per call against an always-503 server | `--callers 100 --seconds 5 --retries 3 --initial-backoff-ms 50` |
//! | `soak` | mixed faults at a fixed rate: deadlines, fds, panics | `--seconds 60 --rate 200 --attempt-ms 200 --total-ms 500 --margin-ms 50` |
//!
//! The memory figures come from `examples/memory.rs`, which needs its own
//! global allocator.

#[path = "../benches/load/mod.rs"]
mod load;

use std::process::ExitCode;
use std::time::Duration;

use load::args::Args;
use load::{amplification, deadline, overhead, soak, throughput, timers};

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: cargo run --release --example load -- \
                 overhead|throughput|timers|deadline|amplification|soak \
                 [--preset full|smoke] [--OPTION VALUE]..."
            );
            ExitCode::from(2)
        }
    }
}

fn run(arguments: impl IntoIterator<Item = String>) -> Result<String, String> {
    let mut args = Args::parse(arguments)?;
    let scenario = args
        .scenario
        .take()
        .ok_or_else(|| "missing the scenario name".to_owned())?;
    let smoke = match args.take("preset", "full".to_owned())?.as_str() {
        "full" => false,
        "smoke" => true,
        other => {
            return Err(format!(
                "invalid value {other:?} for --preset; use full or smoke"
            ))
        }
    };
    let report = match scenario.as_str() {
        "overhead" => {
            let preset = if smoke {
                overhead::Options::smoke()
            } else {
                overhead::Options::full()
            };
            let options = overhead::Options {
                rounds: args.take("rounds", preset.rounds)?,
                batch: args.take("batch", preset.batch)?,
                warmup: args.take("warmup", preset.warmup)?,
                body_len: args.take("body-len", preset.body_len)?,
                only: args.take_list("only", preset.only)?,
            };
            args.finish()?;
            overhead::run(&options).to_string()
        }
        "throughput" => {
            let preset = if smoke {
                throughput::Options::smoke()
            } else {
                throughput::Options::full()
            };
            let options = throughput::Options {
                size_mib: args.take("size-mib", preset.size_mib)?,
                rounds: args.take("rounds", preset.rounds)?,
                chunk_kib: args.take("chunk-kib", preset.chunk_kib)?,
            };
            args.finish()?;
            throughput::run(&options).to_string()
        }
        "timers" => {
            let preset = if smoke {
                timers::Options::smoke()
            } else {
                timers::Options::full()
            };
            let options = timers::Options {
                concurrency: args.take_list("concurrency", preset.concurrency)?,
                timeout: take_ms(&mut args, "timeout-ms", preset.timeout)?,
                settle: preset.settle,
                runs: args.take("runs", preset.runs)?,
                ramp: take_ms(&mut args, "ramp-ms", preset.ramp)?,
                only: args.take_list("only", preset.only)?,
            };
            args.finish()?;
            timers::run(&options).to_string()
        }
        "deadline" => {
            let preset = if smoke {
                deadline::Options::smoke()
            } else {
                deadline::Options::full()
            };
            let options = deadline::Options {
                calls: args.take("calls", preset.calls)?,
                concurrency: args.take("concurrency", preset.concurrency)?,
                min_total: take_ms(&mut args, "min-total-ms", preset.min_total)?,
                max_total: take_ms(&mut args, "max-total-ms", preset.max_total)?,
                seed: args.take("seed", preset.seed)?,
            };
            args.finish()?;
            deadline::run(&options).to_string()
        }
        "amplification" => {
            let preset = if smoke {
                amplification::Options::smoke()
            } else {
                amplification::Options::full()
            };
            let options = amplification::Options {
                callers: args.take("callers", preset.callers)?,
                duration: take_seconds(&mut args, "seconds", preset.duration)?,
                retries: args.take("retries", preset.retries)?,
                initial_backoff: take_ms(&mut args, "initial-backoff-ms", preset.initial_backoff)?,
            };
            args.finish()?;
            amplification::run(&options).to_string()
        }
        "soak" => {
            let preset = if smoke {
                soak::Options::smoke()
            } else {
                soak::Options::full()
            };
            let options = soak::Options {
                duration: take_seconds(&mut args, "seconds", preset.duration)?,
                rate: args.take("rate", preset.rate)?,
                attempt_timeout: take_ms(&mut args, "attempt-ms", preset.attempt_timeout)?,
                total_timeout: take_ms(&mut args, "total-ms", preset.total_timeout)?,
                margin: take_ms(&mut args, "margin-ms", preset.margin)?,
                progress: preset.progress,
            };
            args.finish()?;
            soak::run(&options).to_string()
        }
        other => return Err(format!("unknown scenario {other:?}")),
    };
    Ok(report)
}

fn take_ms(args: &mut Args, name: &str, default: Duration) -> Result<Duration, String> {
    let millis = args.take(name, default.as_millis() as u64)?;
    Ok(Duration::from_millis(millis))
}

fn take_seconds(args: &mut Args, name: &str, default: Duration) -> Result<Duration, String> {
    let seconds = args.take(name, default.as_secs_f64())?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("invalid value {seconds} for --{name}"))
}
