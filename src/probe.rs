//! The active probe: after a connect failure, a bare TCP connect to each
//! address of the request's own host and port, to tell which of them accept
//! connections.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::format::DisplayDuration;

/// At most this many addresses of a host are probed.
const MAX_ADDRESSES: usize = 8;

/// The outcome of a bare TCP connect to one address.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The connection opened after this long, so the address accepts
    /// connections.
    Connected(Duration),
    /// The connection was refused: nothing listens there.
    Refused,
    /// The connect did not finish within the probe's time.
    TimedOut,
    /// The connect failed with another error.
    Failed(io::ErrorKind),
}

/// The result of the active probe for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeResult {
    addr: SocketAddr,
    outcome: ProbeOutcome,
}

impl ProbeResult {
    /// Returns the address that was probed.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns what the connect did.
    pub fn outcome(&self) -> ProbeOutcome {
        self.outcome
    }
}

/// The findings of the active probe, enabled with
/// [`TimeoutMiddlewareBuilder::active_probe`](crate::TimeoutMiddlewareBuilder::active_probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    results: Vec<ProbeResult>,
    resolve_error: Option<String>,
}

impl ProbeReport {
    /// Returns the result for each address of the host, in the order the
    /// resolver returned them.
    pub fn results(&self) -> &[ProbeResult] {
        &self.results
    }

    /// Returns why the host name did not resolve, when it did not.
    pub fn resolve_error(&self) -> Option<&str> {
        self.resolve_error.as_deref()
    }

    /// Returns whether no address accepted a connection and at least one
    /// connect timed out: packets to the host are being dropped.
    pub(crate) fn connect_stalled(&self) -> bool {
        let mut outcomes = self.results.iter().map(|result| result.outcome);
        !outcomes
            .clone()
            .any(|outcome| matches!(outcome, ProbeOutcome::Connected(_)))
            && outcomes.any(|outcome| outcome == ProbeOutcome::TimedOut)
    }

    /// Returns whether every probed address accepted a connection.
    pub fn all_connected(&self) -> bool {
        !self.results.is_empty()
            && self
                .results
                .iter()
                .all(|result| matches!(result.outcome, ProbeOutcome::Connected(_)))
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(error) = &self.resolve_error {
            return write!(f, "the host name did not resolve ({error})");
        }
        if self.results.is_empty() {
            return f.write_str("the host name resolved to no address");
        }
        for (index, result) in self.results.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ", result.addr)?;
            match result.outcome {
                ProbeOutcome::Connected(after) => {
                    write!(f, "accepted a connection in {}", DisplayDuration(after))?
                }
                ProbeOutcome::Refused => f.write_str("refused")?,
                ProbeOutcome::TimedOut => f.write_str("timed out")?,
                ProbeOutcome::Failed(kind) => write!(f, "failed ({kind})")?,
            }
        }
        Ok(())
    }
}

/// Resolves `host` and opens a bare TCP connection to each of its addresses
/// on `port`, all within `budget`. Sends nothing and closes each connection
/// at once.
///
/// The lookup uses the system resolver, which may differ from a custom
/// resolver set on the client.
pub(crate) async fn probe(host: &str, port: u16, budget: Duration) -> ProbeReport {
    let started = Instant::now();
    let end = started.checked_add(budget);
    let host = host.trim_start_matches('[').trim_end_matches(']');

    let lookup = tokio::time::timeout(budget, tokio::net::lookup_host((host, port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.take(MAX_ADDRESSES).collect(),
        Ok(Err(error)) => return resolve_failure(error.to_string()),
        Err(_elapsed) => return resolve_failure("timed out".to_owned()),
    };

    ProbeReport {
        results: connect_each(&addrs, end).await,
        resolve_error: None,
    }
}

/// Opens a bare TCP connection to each of `addrs` at once, closing each as
/// soon as it opens, and returns the results in the order of `addrs`. A
/// connect still open at `end` timed out.
pub(crate) async fn connect_each(addrs: &[SocketAddr], end: Option<Instant>) -> Vec<ProbeResult> {
    let mut connects = JoinSet::new();
    for (index, addr) in addrs.iter().copied().enumerate() {
        connects.spawn(async move {
            let connect_started = Instant::now();
            let connect = tokio::net::TcpStream::connect(addr);
            let outcome = match end {
                Some(end) => match tokio::time::timeout_at(end, connect).await {
                    Ok(result) => connect_outcome(result, connect_started),
                    Err(_elapsed) => ProbeOutcome::TimedOut,
                },
                None => connect_outcome(connect.await, connect_started),
            };
            (index, ProbeResult { addr, outcome })
        });
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; addrs.len()];
    while let Some(joined) = connects.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    results.into_iter().flatten().collect()
}

fn connect_outcome(result: io::Result<tokio::net::TcpStream>, started: Instant) -> ProbeOutcome {
    match result {
        Ok(_stream) => ProbeOutcome::Connected(started.elapsed()),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        Err(error) if error.kind() == io::ErrorKind::TimedOut => ProbeOutcome::TimedOut,
        Err(error) => ProbeOutcome::Failed(error.kind()),
    }
}

fn resolve_failure(error: String) -> ProbeReport {
    ProbeReport {
        results: Vec::new(),
        resolve_error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: &[(&str, ProbeOutcome)]) -> ProbeReport {
        ProbeReport {
            results: outcomes
                .iter()
                .map(|(addr, outcome)| ProbeResult {
                    addr: addr.parse().unwrap(),
                    outcome: *outcome,
                })
                .collect(),
            resolve_error: None,
        }
    }

    #[test]
    fn report_lists_each_address() {
        let report = report(&[
            ("127.0.0.1:8080", ProbeOutcome::Refused),
            ("[::1]:8080", ProbeOutcome::TimedOut),
        ]);

        assert_eq!(
            report.to_string(),
            "127.0.0.1:8080 refused; [::1]:8080 timed out"
        );
        assert!(!report.all_connected());
    }

    #[test]
    fn all_connected_needs_every_address() {
        let connected = ProbeOutcome::Connected(Duration::from_millis(1));

        assert!(report(&[("127.0.0.1:1", connected)]).all_connected());
        assert!(!report(&[]).all_connected());
    }

    #[tokio::test]
    async fn closed_loopback_port_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);

        let report = probe("127.0.0.1", port, Duration::from_secs(2)).await;

        assert_eq!(report.results().len(), 1);
        assert_eq!(report.results()[0].outcome(), ProbeOutcome::Refused);
    }

    #[tokio::test]
    async fn listening_loopback_port_is_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();

        let report = probe("127.0.0.1", port, Duration::from_secs(2)).await;

        assert!(report.all_connected(), "{report}");
    }
}
