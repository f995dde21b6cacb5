//! Timeouts, a total deadline and retries for `reqwest`, as a
//! [`reqwest-middleware`](reqwest_middleware) middleware, with errors that
//! explain why a request failed.
//!
//! - **Attempt timeout**: one limit for a whole attempt, from DNS to the end
//!   of the response body.
//! - **Total timeout**: one deadline for the whole call, every attempt and
//!   every wait included; no wait runs past it.
//! - **Body protection** after the headers arrive: a response header
//!   timeout, a body idle timeout and a minimum body throughput, a buffered
//!   mode that retries body failures, and uploads that fail in
//!   [`Phase::Send`] when the server stops reading.
//! - **Retries** of timeouts and transient failures, with exponential
//!   backoff, jitter and `Retry-After`, never re-sending a `POST` or `PATCH`
//!   that may have reached the server.
//! - **Diagnosed errors**: the [`Phase`] that failed, the [`Limit`] that
//!   fired, every attempt, and the most likely cause ([`Diagnosis`]) with
//!   what to check next.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_timeout::TimeoutMiddleware;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let timeouts = TimeoutMiddleware::builder()
//!     .attempt_timeout(Duration::from_secs(5))
//!     .total_timeout(Duration::from_secs(20))
//!     .connect_timeout(Duration::from_secs(1))
//!     .max_retries(3)
//!     .build()?;
//! // Lets errors tell a stalled connect from a stalled server.
//! let client = timeouts.configure_client(reqwest::Client::builder()).build()?;
//! let client = ClientBuilder::new(client).with(timeouts).build();
//!
//! match client.get("http://localhost:8080/health").send().await {
//!     Ok(response) => println!("status {}", response.status()),
//!     Err(err) => match reqwest_timeout::Error::find(&err) {
//!         // One line: what failed, the limit, the attempts and what to check.
//!         Some(diagnosed) => eprintln!("{diagnosed}"),
//!         None => eprintln!("{err}"),
//!     },
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `http2` (on by default): reads the code of the HTTP/2 frame that ended
//!   a request, so that a refused stream ([`Diagnosis::StreamRefused`]), a
//!   stream reset and a `GOAWAY` are diagnosed and retried. It adds the `h2`
//!   crate, which reqwest's HTTP/2 support already uses, and does not turn
//!   HTTP/2 on in reqwest.
//! - `reqwest-retry`: adds `TimeoutAwareStrategy`, for a
//!   `reqwest-retry` middleware outside this one.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod attempt;
mod backoff;
mod body;
mod budget;
mod builder;
mod call;
mod classify;
mod config_error;
mod deadline;
mod diagnosis;
mod error;
mod first_hop;
mod format;
mod host_state;
mod host_table;
mod http2;
#[cfg(feature = "reqwest-retry")]
mod interop;
mod latency;
mod limit;
mod middleware;
mod overrides;
mod pattern;
mod phase;
mod policy;
mod probe;
mod redact;
mod replay;
mod report;
mod retry_after;
mod target;

pub use attempt::{AttemptOutcome, AttemptRecord, Attempts, StopReason};
pub use body::{BodyBuffering, BodyProgress, MinThroughput};
pub use budget::RetryBudget;
pub use builder::TimeoutMiddlewareBuilder;
pub use config_error::ConfigError;
pub use diagnosis::Diagnosis;
pub use error::Error;
#[cfg(feature = "reqwest-retry")]
pub use interop::TimeoutAwareStrategy;
pub use limit::Limit;
pub use middleware::TimeoutMiddleware;
pub use overrides::RequestOverrides;
pub use phase::Phase;
pub use probe::{ProbeOutcome, ProbeReport, ProbeResult};
pub use report::Report;

/// Compiles the README's examples as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
