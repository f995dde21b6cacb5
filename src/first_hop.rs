//! The place of a failure before the request was written: the request's
//! own host and port, or a host that a redirect or a proxy sent it to.
//!
//! reqwest follows redirects within one attempt, and a failure on a later
//! hop looks like one on the first: the error names the request's URL, not
//! the redirect's. A refused connect on the first hop proves that no server
//! received the request. On a later hop it proves the opposite: the first
//! server received the request and responded with a redirect. It may have
//! acted on the request too, as a server that responds to a `POST` with
//! `303 See Other` has.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use crate::probe::{self, ProbeOutcome};
use crate::target::Target;

/// The place of a failure before the request was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// At the request's own host and port: nothing was sent.
    First,
    /// At another host or port: the target of a redirect, or a proxy. The
    /// address is the one that failed, when the error names it.
    Redirected(Option<SocketAddr>),
    /// Not known, so the request may have been sent.
    Unknown,
}

/// A failure before the request was written, as the classifier saw it,
/// for [`locate`] to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// A TCP connect to this address was refused or timed out.
    Connect(SocketAddr),
    /// The client's connect timeout, of this length, fired, and the error
    /// names no address: reqwest's timer around the whole connect fired
    /// before hyper-util's timer for one address, which names it.
    ConnectTimeout(Duration),
    /// The name lookup failed.
    Lookup,
    /// Anything else, such as a TLS handshake that was cut off.
    Other,
}

/// The maximum wait for the lookup of the request's host.
const MAX_LOOKUP_TIME: Duration = Duration::from_secs(1);

/// The maximum time of each connect that checks a connect timeout. A lost
/// SYN is sent again after 1 s, the initial retransmission timeout of
/// RFC 6298, so a connect this long that times out has lost two SYNs.
const MAX_CHECK_CONNECT_TIME: Duration = Duration::from_millis(1_500);

/// Returns where `failed` happened for a request to `target`, using at most
/// `budget`.
///
/// A host name is resolved again with the system resolver to compare its
/// addresses with the one that failed. A different address at the same
/// port proves nothing, because the client may resolve the name its own
/// way. A failed name lookup is placed at the first hop only when that
/// lookup fails as well. A connect timeout that names no address is placed
/// there only when no address of the target accepts a connection within the
/// client's connect timeout (at most 1.5 s) either: otherwise the target may
/// have responded with a redirect. A check that runs out of time places
/// nothing.
///
/// NOTE: a redirect to the request's own host and port cannot be told from
/// no redirect. It fails before the request is written only when its
/// connection is new, such as after the server closed the first one and
/// then stopped listening. A proxy's address cannot be told from a
/// redirect's either, because a middleware cannot read the client's proxy.
/// And a target that stops accepting connections just after it answered
/// with a redirect looks like one that never accepted.
pub(crate) async fn locate(target: &Target, failed: Failed, budget: Duration) -> Hop {
    let Some(port) = target.port() else {
        return Hop::Unknown;
    };
    let literal = literal_ip(target);
    let lookup_budget = budget.min(MAX_LOOKUP_TIME);
    match (failed, literal) {
        (Failed::Connect(addr), _) if addr.port() != port => Hop::Redirected(Some(addr)),
        (Failed::Connect(addr), Some(ip)) => same_address(addr, ip),
        (Failed::Connect(addr), None) => match resolve(target.host(), port, lookup_budget).await {
            Lookup::Found(addrs) if addrs.contains(&addr) => Hop::First,
            Lookup::Found(_) | Lookup::Failed | Lookup::TimedOut => Hop::Unknown,
        },
        (Failed::ConnectTimeout(connect_timeout), _) => {
            let started = Instant::now();
            let connect_time = connect_timeout.min(MAX_CHECK_CONNECT_TIME);
            let addrs = match literal {
                Some(ip) => vec![SocketAddr::new(ip, port)],
                None => match resolve(target.host(), port, lookup_budget).await {
                    Lookup::Found(addrs) => addrs,
                    Lookup::Failed | Lookup::TimedOut => return Hop::Unknown,
                },
            };
            // The lookup and the connects share the budget.
            if connect_time > budget.saturating_sub(started.elapsed()) {
                return Hop::Unknown;
            }
            if none_accepts(&addrs, connect_time).await {
                Hop::First
            } else {
                Hop::Unknown
            }
        }
        // An IP address needs no lookup, so a failed lookup was another
        // host's.
        (Failed::Lookup, Some(_)) => Hop::Redirected(None),
        (Failed::Lookup, None) => match resolve(target.host(), port, lookup_budget).await {
            Lookup::Failed => Hop::First,
            Lookup::Found(_) | Lookup::TimedOut => Hop::Unknown,
        },
        (Failed::Other, _) => Hop::Unknown,
    }
}

/// Returns whether every address in `addrs` refuses a connection or lets it
/// time out after `connect_time`. Any other failure counts as accepting,
/// because it proves nothing.
async fn none_accepts(addrs: &[SocketAddr], connect_time: Duration) -> bool {
    let addrs = &addrs[..addrs.len().min(MAX_CHECKED_ADDRESSES)];
    let results = probe::connect_each(addrs, Instant::now().checked_add(connect_time)).await;
    !results.is_empty()
        && results.iter().all(|result| {
            matches!(
                result.outcome(),
                ProbeOutcome::Refused | ProbeOutcome::TimedOut
            )
        })
}

/// The maximum number of a host's addresses that the check connects to.
const MAX_CHECKED_ADDRESSES: usize = 4;

/// Places a failed connect to `addr` for a request to the IP address `ip`.
fn same_address(addr: SocketAddr, ip: IpAddr) -> Hop {
    if addr.ip() == ip {
        Hop::First
    } else {
        Hop::Redirected(Some(addr))
    }
}

fn literal_ip(target: &Target) -> Option<IpAddr> {
    if !target.is_ip_literal() {
        return None;
    }
    let host = target.host();
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The outcome of the lookup of the request's host.
enum Lookup {
    Found(Vec<SocketAddr>),
    Failed,
    TimedOut,
}

/// Resolves `host` with the system resolver within `budget`.
async fn resolve(host: &str, port: u16, budget: Duration) -> Lookup {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(budget, lookup).await {
        Ok(Ok(addrs)) => Lookup::Found(addrs.collect()),
        Ok(Err(_)) => Lookup::Failed,
        Err(_elapsed) => Lookup::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    use super::*;

    const BUDGET: Duration = Duration::from_secs(2);
    const MS: Duration = Duration::from_millis(1);

    fn target(url: &str) -> Target {
        Target::from_url(&Url::parse(url).unwrap())
    }

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    fn connect(text: &str) -> Failed {
        Failed::Connect(text.parse().unwrap())
    }

    #[tokio::test]
    async fn refusal_at_own_address_is_first_hop() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            connect("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn refusal_at_another_port_is_a_redirect() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            connect("127.0.0.1:9090"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Redirected(addr("127.0.0.1:9090")));
    }

    #[tokio::test]
    async fn refusal_at_another_ip_is_a_redirect() {
        let hop = locate(
            &target("http://[::1]:8080/pay"),
            connect("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Redirected(addr("127.0.0.1:8080")));
    }

    #[tokio::test]
    async fn ipv6_literal_matches_its_own_address() {
        let hop = locate(
            &target("http://[::1]:8080/pay"),
            connect("[::1]:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn localhost_is_resolved_to_compare() {
        let hop = locate(
            &target("http://localhost:8080/pay"),
            connect("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn timeout_at_refusing_target_is_first_hop() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pay", closed.local_addr().unwrap());
        drop(closed);

        let hop = locate(&target(&url), Failed::ConnectTimeout(200 * MS), BUDGET).await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn timeout_at_accepting_target_is_unknown() {
        // The kernel completes connects to a listener that never accepts.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/pay", listener.local_addr().unwrap());

        let hop = locate(&target(&url), Failed::ConnectTimeout(200 * MS), BUDGET).await;

        assert_eq!(hop, Hop::Unknown);
    }

    #[tokio::test]
    async fn other_address_of_name_is_unknown() {
        // The client may resolve the name its own way, so another address
        // at the same port proves no redirect.
        let hop = locate(
            &target("http://localhost:8080/pay"),
            connect("127.0.0.2:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Unknown);
    }

    #[tokio::test]
    async fn timeout_check_without_time_is_unknown() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pay", closed.local_addr().unwrap());
        drop(closed);

        let hop = locate(&target(&url), Failed::ConnectTimeout(200 * MS), 100 * MS).await;

        assert_eq!(hop, Hop::Unknown);
    }

    #[tokio::test]
    async fn failure_without_an_address_is_unknown() {
        let hop = locate(&target("http://127.0.0.1:8080/pay"), Failed::Other, BUDGET).await;

        assert_eq!(hop, Hop::Unknown);
    }

    #[tokio::test]
    async fn failed_lookup_for_ip_is_redirect() {
        let hop = locate(&target("http://127.0.0.1:8080/pay"), Failed::Lookup, BUDGET).await;

        assert_eq!(hop, Hop::Redirected(None));
    }

    #[tokio::test]
    async fn failed_lookup_of_resolving_name_is_unknown() {
        let hop = locate(&target("http://localhost:8080/pay"), Failed::Lookup, BUDGET).await;

        assert_eq!(hop, Hop::Unknown);
    }
}
