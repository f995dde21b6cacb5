//! Memory harness behind BENCHMARKS.md: live heap per in-flight stalled
//! request with and without the middleware, and RSS over many sequential
//! calls, against servers that this process starts on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example memory -- [--preset full|smoke] \
//!     [--in-flight 1000] [--rounds 5] [--counted-gets 10000] [--calls 100000] \
//!     [--time-limit-s 300]
//! ```
//!
//! It installs a counting global allocator, so its timings are not
//! comparable with `examples/load.rs`.

#[path = "../benches/load/mod.rs"]
mod load;

use std::process::ExitCode;
use std::time::Duration;

use load::alloc::CountingAllocator;
use load::args::Args;
use load::memory;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    match options(std::env::args().skip(1)) {
        Ok(options) => {
            println!("{}", memory::run(&options));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: cargo run --release --example memory -- [--preset full|smoke] \
                 [--in-flight N] [--rounds N] [--counted-gets N] [--calls N] [--time-limit-s S]"
            );
            ExitCode::from(2)
        }
    }
}

fn options(arguments: impl IntoIterator<Item = String>) -> Result<memory::Options, String> {
    let mut args = Args::parse(arguments)?;
    if let Some(scenario) = args.scenario.take() {
        return Err(format!("unexpected argument {scenario:?}"));
    }
    let preset = match args.take("preset", "full".to_owned())?.as_str() {
        "full" => memory::Options::full(),
        "smoke" => memory::Options::smoke(),
        other => {
            return Err(format!(
                "invalid value {other:?} for --preset; use full or smoke"
            ))
        }
    };
    let options = memory::Options {
        in_flight: args.take("in-flight", preset.in_flight)?,
        rounds: args.take("rounds", preset.rounds)?,
        counted_gets: args.take("counted-gets", preset.counted_gets)?,
        calls: args.take("calls", preset.calls)?,
        time_limit: Duration::from_secs(args.take("time-limit-s", preset.time_limit.as_secs())?),
    };
    args.finish()?;
    Ok(options)
}
