use std::fmt;

/// The stage of an HTTP attempt in which a failure happened.
///
/// The phases follow the order of an attempt: resolve the host name, open the
/// TCP connection, complete the TLS handshake (for `https://`), send the
/// request, wait for the response headers, then read the response body.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Resolving the host name to IP addresses.
    Dns,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake of an `https://` request.
    Tls,
    /// Writing the request head or body to the connection.
    Send,
    /// Waiting for the status line and the response headers.
    Headers,
    /// Reading the response body.
    Body,
}

impl Phase {
    /// Returns a short lowercase name of the phase, such as `"connect"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Send => "send",
            Phase::Headers => "headers",
            Phase::Body => "body",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
