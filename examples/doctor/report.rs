//! Plain-text output: one labelled line per fact, values aligned in a column.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest_timeout::{AttemptRecord, StopReason};

use crate::args::Settings;
use crate::check::{Outcome, ResponseRecord};
use crate::servers::Scenario;

/// Width of the label column, at least that of the longest label.
const LABEL_WIDTH: usize = 11;

/// Prints one labelled line. Each further line of `value` is indented to the
/// value column.
fn line(label: &str, value: impl fmt::Display) {
    let value = value.to_string();
    let indent = " ".repeat(LABEL_WIDTH + 3);
    let value = value.replace('\n', &format!("\n{indent}"));
    println!("  {label:<LABEL_WIDTH$} {value}");
}

pub fn print_settings(settings: &Settings) {
    println!("reqwest-timeout doctor");
    line(
        "client",
        format_args!(
            "reqwest::Client with connect_timeout {} (set by configure_client), proxies off",
            Secs(settings.connect_timeout)
        ),
    );
    line(
        "middleware",
        format_args!(
            "attempt_timeout {}, total_timeout {}, max_retries {}\n\
             initial_backoff {}, max_backoff {}, jitter {}, max_retry_after {}",
            Secs(settings.attempt_timeout),
            Secs(settings.total_timeout),
            settings.max_retries,
            Secs(settings.initial_backoff),
            Secs(settings.max_backoff),
            if settings.jitter { "on" } else { "off" },
            Secs(settings.max_retry_after),
        ),
    );
}

pub fn print_case_header(number: usize, total: usize, scenario: Scenario) {
    println!();
    println!(
        "[{number}/{total}] {}: {}",
        scenario.name(),
        scenario.behaviour()
    );
}

/// Prints the request line. Only the scheme, host, port and path are shown,
/// because the userinfo and query string may contain secrets.
pub fn print_request(url: &Url) {
    let host = url.host_str().unwrap_or("");
    let port = url
        .port_or_known_default()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    line(
        "request",
        format_args!("GET {}://{host}{port}{}", url.scheme(), url.path()),
    );
}

pub fn print_server_failed(error: &std::io::Error) {
    line(
        "skipped",
        format_args!("the server failed to start: {error}"),
    );
}

pub fn print_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Response(response) => print_response(response),
        Outcome::Failed(error) => match reqwest_timeout::Error::find(error) {
            Some(diagnosed) => print_diagnosed("outcome", diagnosed),
            None => line(
                "outcome",
                format_args!("error without a diagnosis: {error}"),
            ),
        },
    }
}

fn print_response(response: &ResponseRecord) {
    line(
        "outcome",
        format_args!(
            "status {}, headers at +{}",
            response.status,
            Secs(response.headers_after)
        ),
    );
    match &response.attempts {
        Some(attempts) => {
            print_attempts(attempts.history());
            print_stop(attempts.stop_reason());
        }
        None => line("attempts", "none recorded: the response has no Attempts"),
    }

    let body = &response.body;
    let size = match response.content_length {
        Some(length) => format!("{} of {length} bytes", body.bytes),
        None => format!("{} bytes", body.bytes),
    };
    let Some(error) = &body.error else {
        line(
            "body",
            format_args!("{size}, complete at +{}", Secs(body.after)),
        );
        return;
    };

    // The body guard puts its diagnosed error inside the reqwest error; a
    // failure from elsewhere in the chain has none.
    match reqwest_timeout::Error::find(error) {
        Some(diagnosed) => print_diagnosed("body", diagnosed),
        None => {
            line(
                "body",
                format_args!("failed at +{} after {size}: {error}", Secs(body.after)),
            );
            line(
                "timed out",
                format_args!(
                    "{} (reqwest::Error::is_timeout)",
                    yes_no(error.is_timeout())
                ),
            );
            if let Some(source) = source_chain(error) {
                line("source", source);
            }
        }
    }
}

/// Prints the error's own multi-line report, the one an application gets
/// from `Error::report` or `{:#}`.
fn print_diagnosed(label: &str, error: &reqwest_timeout::Error) {
    line(label, format_args!("failed, {}", error.diagnosis().code()));
    for report_line in error.report().to_string().lines() {
        println!("  {report_line}");
    }
}

fn print_attempts(history: &[AttemptRecord]) {
    let lines: Vec<String> = history.iter().map(ToString::to_string).collect();
    line("attempts", lines.join("\n"));
}

fn print_stop(stop: &StopReason) {
    line("stopped", stop);
}

pub fn print_verdict(expected: impl fmt::Display, verdict: &Result<(), String>) {
    match verdict {
        Ok(()) => line("expected", format_args!("{expected}: yes")),
        Err(actual) => line("expected", format_args!("{expected}: NO, {actual}")),
    }
}

/// Returns the messages of the error's sources, joined with ": ", or `None`
/// when it has no source.
fn source_chain(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut messages = Vec::new();
    let mut current = error.source();
    while let Some(source) = current {
        messages.push(source.to_string());
        current = source.source();
    }
    (!messages.is_empty()).then(|| messages.join(": "))
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Shows a duration as whole microseconds below one millisecond, whole
/// milliseconds below one second, otherwise as seconds with up to three
/// decimals: `800µs`, `250ms`, `1.004s`, `2.5s`.
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < Duration::from_millis(1) {
            return write!(f, "{}µs", self.0.as_micros());
        }
        if self.0 < Duration::from_secs(1) {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let text = format!("{:.3}", self.0.as_secs_f64());
        let text = text.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{text}s")
    }
}
