//! Misbehaving loopback servers and a scripted DNS resolver for integration tests.
//!
//! Each server fixture listens on 127.0.0.1 with a kernel-chosen port, runs as a
//! spawned tokio task and stops when dropped. Fixtures built on [`Server`] deref to
//! it for `addr()`, `url(path)` and the connection and request counters. A request
//! counts once its full head, ending in `\r\n\r\n`, has arrived.
//!
//! Each test binary uses a subset of this module, so unused items and re-exports are allowed.
#![allow(dead_code, unused_imports)]

mod body;
mod broken;
mod client;
mod connect;
mod dns;
pub mod h2;
mod healthy;
mod http;
mod keepalive;
mod logs;
mod sequence;
mod server;
mod stall;
mod tls;
mod tls_server;
mod upload;

pub use body::{
    CloseMidBody, Drip, Framing, PartialBody, ResetMidBody, SlowSteady, FULL_BODY_LEN,
    PARTIAL_BODY_LEN,
};
pub use broken::{AcceptClose, Reset, TruncatedHead, TRUNCATED_HEAD};
pub use client::{diagnosed, diagnosed_body, timeouts, with_configured_client, with_timeouts};
pub use connect::{closed_port, Blackhole};
pub use dns::{StaticResolver, TRANSIENT_DNS_MESSAGE};
pub use healthy::{Healthy, HEALTHY_BODY};
pub use http::{ok, response, RequestHead, RequestReader};
pub use keepalive::KeepaliveThenClose;
pub use logs::CapturedLogs;
pub use sequence::Sequence;
pub use server::{bind_loopback, hold_until_client_closes, AbortOnDrop, Accepted, Server, Stats};
pub use stall::StallHead;
pub use tls::{PlainOnTls, TlsOnPlain, TlsSilent, TLS_ALERT};
pub use tls_server::{TestCertificate, TlsServer};
pub use upload::{ReceivedBody, RecordUpload, StopReading};

/// Returns a client builder that ignores proxy environment variables, so requests
/// reach the loopback fixtures directly.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}
