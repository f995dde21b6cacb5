//! Shows how `reqwest-timeout` reports failed requests.
//!
//! With no argument, starts misbehaving servers on 127.0.0.1 and runs one
//! GET request against each. With a URL, runs one GET request against it.
//! Either way it prints the outcome, every attempt, and the diagnosis with
//! the phase and the limit that fired.
//!
//! ```text
//! cargo run --example doctor
//! cargo run --example doctor -- http://127.0.0.1:8080/health --attempt-timeout 2s
//! ```

mod args;
mod check;
mod report;
mod servers;

use std::process::ExitCode;
use std::time::Instant;

use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{Diagnosis, Phase, TimeoutMiddleware};

use crate::args::{Command, Settings};
use crate::check::{Expected, Outcome};
use crate::report::Secs;
use crate::servers::Scenario;

/// Exit status for an invalid command line or configuration.
const USAGE_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let (settings, url) = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Demo(settings)) => (settings, None),
        Ok(Command::Diagnose(url, settings)) => (settings, Some(url)),
        Err(error) => {
            eprintln!("error: {error}\n\n{}", args::USAGE);
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let client = match build_client(&settings) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(USAGE_ERROR);
        }
    };

    report::print_settings(&settings);
    match url {
        Some(url) => diagnose(&client, &url).await,
        None => run_demo(&client).await,
    }
}

fn build_client(settings: &Settings) -> Result<ClientWithMiddleware, String> {
    let middleware = TimeoutMiddleware::builder()
        .attempt_timeout(settings.attempt_timeout)
        .total_timeout(settings.total_timeout)
        .connect_timeout(settings.connect_timeout)
        .max_retries(settings.max_retries)
        .initial_backoff(settings.initial_backoff)
        .max_backoff(settings.max_backoff)
        .jitter(settings.jitter)
        .max_retry_after(settings.max_retry_after)
        .build()
        .map_err(|error| match error.setting() {
            "attempt_timeout" | "total_timeout" | "connect_timeout" => format!(
                "{error} (set them with --attempt-timeout, --total-timeout and --connect-timeout)"
            ),
            _ => error.to_string(),
        })?;
    // The middleware sets its connect timeout on the client, so that errors
    // can tell a stalled connect from a stalled server. Proxies are off so
    // that the doctor tests the direct connection, even when HTTP_PROXY is
    // set.
    let client = middleware
        .configure_client(reqwest::Client::builder())
        .no_proxy()
        .build()
        .map_err(|error| format!("failed to build the reqwest::Client: {error}"))?;
    Ok(reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .build())
}

/// Runs one GET request against `url`. Exits with failure unless the
/// response has a success status and a complete body.
async fn diagnose(client: &ClientWithMiddleware, url: &Url) -> ExitCode {
    println!();
    report::print_request(url);
    let outcome = check::get(client, url).await;
    report::print_outcome(&outcome);

    match outcome {
        Outcome::Response(response)
            if response.status.is_success() && response.body.error.is_none() =>
        {
            ExitCode::SUCCESS
        }
        _ => ExitCode::FAILURE,
    }
}

/// Runs every demo case in turn. Exits with failure unless every case ended
/// as expected.
async fn run_demo(client: &ClientWithMiddleware) -> ExitCode {
    let started = Instant::now();
    let total = Scenario::ALL.len();
    let mut as_expected = 0;

    for (index, scenario) in Scenario::ALL.into_iter().enumerate() {
        report::print_case_header(index + 1, total, scenario);
        let server = match scenario.start().await {
            Ok(server) => server,
            Err(error) => {
                report::print_server_failed(&error);
                continue;
            }
        };
        report::print_request(server.url());

        let outcome = check::get(client, server.url()).await;
        report::print_outcome(&outcome);
        let expected = expected(scenario);
        let verdict = expected.check(&outcome);
        report::print_verdict(expected, &verdict);
        if verdict.is_ok() {
            as_expected += 1;
        }
    }

    println!();
    println!(
        "summary: {total} cases in {}, {as_expected} of {total} ended as expected",
        Secs(started.elapsed())
    );
    if as_expected == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn expected(scenario: Scenario) -> Expected {
    let diagnosed = |diagnosis, phase| Expected::Diagnosed { diagnosis, phase };
    match scenario {
        Scenario::Healthy => Expected::Status {
            status: 200,
            attempts: 1,
        },
        Scenario::Refused => diagnosed(Diagnosis::ConnectionRefused, Phase::Connect),
        Scenario::Blackholed => diagnosed(Diagnosis::ConnectTimedOut, Phase::Connect),
        Scenario::HeaderStall => diagnosed(Diagnosis::ServerStalled, Phase::Headers),
        Scenario::BodyStall => Expected::BodyTimeout,
        Scenario::UnavailableThenOk => Expected::Status {
            status: 200,
            attempts: 2,
        },
    }
}
