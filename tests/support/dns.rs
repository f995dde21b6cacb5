//! An in-process DNS resolver with scripted results, for `reqwest::ClientBuilder::dns_resolver`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Message of the transient error returned by [`StaticResolver::failing_then_resolving`].
pub const TRANSIENT_DNS_MESSAGE: &str = "temporary failure in name resolution";

/// Scripted behavior of a [`StaticResolver`].
#[derive(Debug, Clone)]
enum Behavior {
    /// Returns `addrs` after sleeping for `delay`.
    Slow {
        delay: Duration,
        addrs: Vec<SocketAddr>,
    },
    /// Fails every lookup at once with `io::ErrorKind::NotFound`.
    NotFound,
    /// Fails the first `failures` lookups with an error of `kind`, then returns `addrs`.
    FailingThenResolving {
        failures: usize,
        kind: io::ErrorKind,
        addrs: Vec<SocketAddr>,
    },
    /// Returns `addrs` at once for every lookup.
    Resolving { addrs: Vec<SocketAddr> },
}

/// Simulates a DNS server with scripted behavior: slow, permanently failing,
/// transiently failing, or returning fixed addresses. Counts lookups.
///
/// Constructors return an `Arc`, so a test can pass a clone to
/// `ClientBuilder::dns_resolver` and keep reading the counters.
/// reqwest replaces the port of each returned address with the URL's port when
/// the URL has one, so use [`Server::url_with_host`](super::Server::url_with_host).
#[derive(Debug)]
pub struct StaticResolver {
    behavior: Behavior,
    lookups: AtomicUsize,
    names: Mutex<Vec<String>>,
}

impl StaticResolver {
    /// Creates a resolver that returns `addrs` at once for every lookup.
    pub fn resolving_to(addrs: Vec<SocketAddr>) -> Arc<Self> {
        Self::with_behavior(Behavior::Resolving { addrs })
    }

    /// Creates a resolver that sleeps for `delay`, then returns `addrs`.
    pub fn slow(delay: Duration, addrs: Vec<SocketAddr>) -> Arc<Self> {
        Self::with_behavior(Behavior::Slow { delay, addrs })
    }

    /// Creates a resolver that fails every lookup at once with a permanent
    /// "name not found" error of kind `io::ErrorKind::NotFound`.
    pub fn not_found() -> Arc<Self> {
        Self::with_behavior(Behavior::NotFound)
    }

    /// Creates a resolver that fails the first `failures` lookups with a transient
    /// error of kind `io::ErrorKind::Other`, then returns `addr`.
    ///
    /// `Other` is the closest kind user code can build to what the system resolver
    /// returns: std reports `getaddrinfo` failures such as `EAI_AGAIN` as
    /// `io::ErrorKind::Uncategorized`, so `reqwest::Error::is_timeout` stays false for them.
    pub fn failing_then_resolving(failures: usize, addr: SocketAddr) -> Arc<Self> {
        Self::failing_with_kind_then_resolving(failures, io::ErrorKind::Other, addr)
    }

    /// Creates a resolver that fails the first `failures` lookups with a transient
    /// error of `kind`, then returns `addr`.
    ///
    /// With `io::ErrorKind::TimedOut`, `reqwest::Error::is_timeout` returns true for
    /// the failed lookups, because it checks the kind of every I/O error in the source chain.
    pub fn failing_with_kind_then_resolving(
        failures: usize,
        kind: io::ErrorKind,
        addr: SocketAddr,
    ) -> Arc<Self> {
        Self::with_behavior(Behavior::FailingThenResolving {
            failures,
            kind,
            addrs: vec![addr],
        })
    }

    fn with_behavior(behavior: Behavior) -> Arc<Self> {
        Arc::new(Self {
            behavior,
            lookups: AtomicUsize::new(0),
            names: Mutex::new(Vec::new()),
        })
    }

    /// Number of lookups started so far.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// Names looked up so far, in order.
    pub fn names(&self) -> Vec<String> {
        self.names
            .lock()
            .expect("resolver name list poisoned by a panicking lookup")
            .clone()
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let index = self.lookups.fetch_add(1, Ordering::SeqCst);
        self.names
            .lock()
            .expect("resolver name list poisoned by a panicking lookup")
            .push(name.as_str().to_owned());
        let behavior = self.behavior.clone();
        let name = name.as_str().to_owned();

        Box::pin(async move {
            let addrs = match behavior {
                Behavior::Slow { delay, addrs } => {
                    tokio::time::sleep(delay).await;
                    addrs
                }
                Behavior::NotFound => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("name not found: {name}"),
                    )
                    .into());
                }
                Behavior::FailingThenResolving {
                    failures,
                    kind,
                    addrs,
                } => {
                    if index < failures {
                        return Err(io::Error::new(
                            kind,
                            format!("{TRANSIENT_DNS_MESSAGE} for {name}"),
                        )
                        .into());
                    }
                    addrs
                }
                Behavior::Resolving { addrs } => addrs,
            };
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
