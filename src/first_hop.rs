//! Where a failure before the request was written happened: at the
//! request's own host and port, or at a host that a redirect sent it to.
//!
//! reqwest follows redirects within one attempt, and a failure on a later
//! hop looks like one on the first: the error names the request's URL, not
//! the redirect's. A refused connect on the first hop proves that no server
//! received the request. On a later hop it proves the opposite: the first
//! server received the request and answered with a redirect, and may have
//! acted on it, as a server that answers a `POST` with `303 See Other` has.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::phase::Phase;
use crate::target::Target;

/// Where a failure before the request was written happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// At the request's own host and port: nothing was sent.
    First,
    /// At another host or port, the target of a redirect; the address is
    /// the one that failed, when the error names it.
    Redirected(Option<SocketAddr>),
    /// Not known, so the request may have been sent.
    Unknown,
}

/// Returns where a failure in `phase` that reached `connect_addr`, when the
/// error names that address, happened for a request to `target`.
///
/// A host name is resolved again with the system resolver, within `budget`,
/// to compare its addresses with the one that failed. A failed name lookup
/// is placed at the first hop only when that lookup fails as well.
///
/// NOTE: a redirect to the request's own host and port cannot be told from
/// no redirect. It fails before the request is written only when its
/// connection is new, such as after the server closed the first one and
/// then stopped listening.
pub(crate) async fn locate(
    target: &Target,
    phase: Phase,
    connect_addr: Option<SocketAddr>,
    budget: Duration,
) -> Hop {
    let Some(port) = target.port() else {
        return Hop::Unknown;
    };
    let literal = literal_ip(target);
    match (connect_addr, literal) {
        (Some(addr), _) if addr.port() != port => Hop::Redirected(Some(addr)),
        (Some(addr), Some(ip)) => same_address(addr, ip),
        (Some(addr), None) => match resolve(target.host(), port, budget).await {
            Some(addrs) if addrs.contains(&addr) => Hop::First,
            Some(_) => Hop::Redirected(Some(addr)),
            None => Hop::Unknown,
        },
        // An IP address needs no lookup, so a failed lookup was another
        // host's.
        (None, Some(_)) if phase == Phase::Dns => Hop::Redirected(None),
        (None, None) if phase == Phase::Dns => match resolve(target.host(), port, budget).await {
            Some(_) => Hop::Unknown,
            None => Hop::First,
        },
        (None, _) => Hop::Unknown,
    }
}

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

/// Returns the addresses of `host`, or `None` when the lookup fails or does
/// not finish within `budget`.
async fn resolve(host: &str, port: u16, budget: Duration) -> Option<Vec<SocketAddr>> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(budget, lookup).await {
        Ok(Ok(addrs)) => Some(addrs.collect()),
        Ok(Err(_)) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    use super::*;

    const BUDGET: Duration = Duration::from_secs(2);

    fn target(url: &str) -> Target {
        Target::from_url(&Url::parse(url).unwrap())
    }

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[tokio::test]
    async fn refusal_at_the_requests_address_is_the_first_hop() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            Phase::Connect,
            addr("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn refusal_at_another_port_is_a_redirect() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            Phase::Connect,
            addr("127.0.0.1:9090"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Redirected(addr("127.0.0.1:9090")));
    }

    #[tokio::test]
    async fn refusal_at_another_ip_is_a_redirect() {
        let hop = locate(
            &target("http://[::1]:8080/pay"),
            Phase::Connect,
            addr("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Redirected(addr("127.0.0.1:8080")));
    }

    #[tokio::test]
    async fn ipv6_literal_matches_its_own_address() {
        let hop = locate(
            &target("http://[::1]:8080/pay"),
            Phase::Connect,
            addr("[::1]:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn localhost_is_resolved_to_compare() {
        let hop = locate(
            &target("http://localhost:8080/pay"),
            Phase::Connect,
            addr("127.0.0.1:8080"),
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::First);
    }

    #[tokio::test]
    async fn failure_without_an_address_is_unknown() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            Phase::Tls,
            None,
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Unknown);
    }

    #[tokio::test]
    async fn failed_lookup_for_an_ip_address_is_a_redirect() {
        let hop = locate(
            &target("http://127.0.0.1:8080/pay"),
            Phase::Dns,
            None,
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Redirected(None));
    }

    #[tokio::test]
    async fn failed_lookup_of_a_name_that_resolves_now_is_unknown() {
        let hop = locate(
            &target("http://localhost:8080/pay"),
            Phase::Dns,
            None,
            BUDGET,
        )
        .await;

        assert_eq!(hop, Hop::Unknown);
    }
}
