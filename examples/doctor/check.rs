//! One GET request through the middleware, with its body read to the end,
//! and the result that each demo case expects.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_timeout::{Attempts, Diagnosis, Phase};

/// The end of a GET request: a response or an error.
#[derive(Debug)]
pub enum Outcome {
    /// The middleware returned a response, whose body was then read.
    Response(ResponseRecord),
    /// The middleware returned an error.
    Failed(reqwest_middleware::Error),
}

/// A response that the middleware returned, with its body read.
#[derive(Debug)]
pub struct ResponseRecord {
    pub status: StatusCode,
    /// The middleware's record of the attempts, from the response extensions.
    pub attempts: Option<Attempts>,
    /// The time from the start of the call until the middleware returned.
    pub headers_after: Duration,
    pub content_length: Option<u64>,
    pub body: BodyRead,
}

/// The result of reading a response body to the end.
#[derive(Debug)]
pub struct BodyRead {
    pub bytes: u64,
    /// The time from the start of the call until the body ended or failed.
    pub after: Duration,
    /// The error that ended the body early, without its URL.
    pub error: Option<reqwest::Error>,
}

/// Sends one GET request to `url` and reads the response body.
pub async fn get(client: &ClientWithMiddleware, url: &Url) -> Outcome {
    let started = Instant::now();
    let mut response = match client.get(url.clone()).send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(without_url(error)),
    };
    let headers_after = started.elapsed();
    let status = response.status();
    let content_length = response.content_length();
    let attempts = response.extensions().get::<Attempts>().cloned();

    // The body is counted, not kept, so a large download needs no memory.
    let mut bytes = 0;
    let error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes += chunk.len() as u64,
            Ok(None) => break None,
            Err(error) => break Some(error.without_url()),
        }
    };
    let body = BodyRead {
        bytes,
        after: started.elapsed(),
        error,
    };

    Outcome::Response(ResponseRecord {
        status,
        attempts,
        headers_after,
        content_length,
        body,
    })
}

/// Drops the URL from a reqwest error, because reqwest prints the whole URL,
/// userinfo and query string included.
fn without_url(error: reqwest_middleware::Error) -> reqwest_middleware::Error {
    match error {
        reqwest_middleware::Error::Reqwest(error) => {
            reqwest_middleware::Error::Reqwest(error.without_url())
        }
        other => other,
    }
}

/// The result that a demo case expects.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    /// The status after this many attempts, and a complete body.
    Status { status: u16, attempts: u32 },
    /// A middleware error with this diagnosis and phase.
    Diagnosed { diagnosis: Diagnosis, phase: Phase },
    /// Response headers, then a body read that times out.
    BodyTimeout,
}

impl Expected {
    /// Checks `outcome` against the expectation, and on a mismatch returns
    /// what happened instead.
    pub fn check(self, outcome: &Outcome) -> Result<(), String> {
        match (self, outcome) {
            (Expected::Status { status, attempts }, Outcome::Response(response)) => {
                let attempt_count = response.attempts.as_ref().map_or(0, Attempts::count);
                if response.status.as_u16() != status || attempt_count != attempts {
                    return Err(format!(
                        "got status {} after {attempt_count} attempts",
                        response.status.as_u16()
                    ));
                }
                match &response.body.error {
                    Some(error) => Err(format!("the body failed: {error}")),
                    None => Ok(()),
                }
            }
            (Expected::BodyTimeout, Outcome::Response(response)) => match &response.body.error {
                Some(error) if error.is_timeout() => Ok(()),
                Some(error) => Err(format!("the body failed without a timeout: {error}")),
                None => Err("the body was read to the end".to_owned()),
            },
            (Expected::Diagnosed { diagnosis, phase }, Outcome::Failed(error)) => {
                match reqwest_timeout::Error::find(error) {
                    Some(found) if found.diagnosis() == diagnosis && found.phase() == phase => {
                        Ok(())
                    }
                    Some(found) => Err(format!(
                        "got {} in {}",
                        found.diagnosis().code(),
                        found.phase()
                    )),
                    None => Err(format!("got an error without a diagnosis: {error}")),
                }
            }
            (_, Outcome::Response(response)) => {
                Err(format!("got status {}", response.status.as_u16()))
            }
            (_, Outcome::Failed(error)) => Err(format!("got an error: {error}")),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Status {
                status,
                attempts: 1,
            } => write!(f, "status {status}"),
            Expected::Status { status, attempts } => {
                write!(f, "status {status} on attempt {attempts}")
            }
            Expected::Diagnosed { diagnosis, phase } => {
                write!(f, "{} in {phase}", diagnosis.code())
            }
            Expected::BodyTimeout => f.write_str("headers, then a body timeout"),
        }
    }
}
