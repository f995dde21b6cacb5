use std::fmt;

/// The most likely cause of a failed request, with what to check next.
///
/// Each diagnosis has a stable [`code`](Diagnosis::code) for logs and
/// metrics, a short [`summary`](Diagnosis::summary) of what happened and a
/// one-sentence [`hint`](Diagnosis::hint) that names what to check.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnosis {
    /// The host name does not exist: the resolver reported that it has no
    /// address for it. Not retried, because the result will not change soon.
    NameNotResolved,
    /// The resolver failed for a reason that may pass, such as a timeout or a
    /// temporary failure.
    DnsUnavailable,
    /// Nothing listens on the address and port: the server is not running,
    /// or the port is wrong.
    ConnectionRefused,
    /// The TCP connection was not established in time: packets are dropped
    /// on the way, typically by a firewall, or the host is down.
    ConnectTimedOut,
    /// The TLS handshake failed: the certificate is not trusted or not valid
    /// for the host, or the two sides share no protocol version. Not
    /// retried, because the outcome will not change.
    TlsFailed,
    /// The TLS handshake did not complete in time. Usually the server
    /// accepted the connection and then responded slowly or not at all.
    /// When reqwest's connect timeout fired without naming the TCP connect,
    /// a connect that never completed looks the same, and the error then
    /// carries a note about it. Retried like other timeouts.
    TlsStalled,
    /// The server speaks another protocol than the URL's scheme requires:
    /// TLS on a port reached with `http://`, or plain HTTP on one reached
    /// with `https://`. Not retried, because the response will not change.
    WrongProtocol,
    /// The server did not send the response headers in time.
    ServerStalled,
    /// The response body stopped arriving before it was complete, or
    /// arrived slower than the minimum body throughput.
    BodyStalled,
    /// The limit fired while data still flowed, or while the caller was not
    /// reading the body: the limit is shorter than this transfer needs, at the
    /// pace the caller reads it.
    TimeoutTooShort,
    /// The server stopped reading the request body before it was complete.
    UploadStalled,
    /// The connection was closed or reset before the response was complete.
    /// An HTTP/2 stream that the server reset, or a connection that it
    /// closed with GOAWAY, counts too.
    ConnectionClosed,
    /// The server refused the HTTP/2 stream before processing the request
    /// (`REFUSED_STREAM`): it was busy, or at its limit of concurrent streams.
    StreamRefused,
    /// The request itself is invalid, such as a URL that cannot be sent.
    InvalidRequest,
    /// A failure that fits none of the other causes; the source error has
    /// the details.
    Other,
}

impl Diagnosis {
    /// Returns a stable short code for logs and metrics, such as
    /// `"connect-refused"`.
    pub fn code(&self) -> &'static str {
        match self {
            Diagnosis::NameNotResolved => "dns-not-found",
            Diagnosis::DnsUnavailable => "dns-unavailable",
            Diagnosis::ConnectionRefused => "connect-refused",
            Diagnosis::ConnectTimedOut => "connect-timeout",
            Diagnosis::TlsFailed => "tls-failed",
            Diagnosis::TlsStalled => "tls-stalled",
            Diagnosis::WrongProtocol => "wrong-protocol",
            Diagnosis::ServerStalled => "server-stalled",
            Diagnosis::BodyStalled => "body-stalled",
            Diagnosis::TimeoutTooShort => "timeout-too-short",
            Diagnosis::UploadStalled => "upload-stalled",
            Diagnosis::ConnectionClosed => "connection-closed",
            Diagnosis::StreamRefused => "stream-refused",
            Diagnosis::InvalidRequest => "invalid-request",
            Diagnosis::Other => "other",
        }
    }

    /// Returns what happened, in a few lowercase words.
    pub fn summary(&self) -> &'static str {
        match self {
            Diagnosis::NameNotResolved => "the host name does not resolve",
            Diagnosis::DnsUnavailable => "the DNS resolver failed",
            Diagnosis::ConnectionRefused => "the connection was refused",
            Diagnosis::ConnectTimedOut => "the TCP connection was not established in time",
            Diagnosis::TlsFailed => "the TLS handshake failed",
            Diagnosis::TlsStalled => "the TLS handshake did not complete in time",
            Diagnosis::WrongProtocol => {
                "the server speaks another protocol than the URL's scheme requires"
            }
            Diagnosis::ServerStalled => "the server sent no response headers in time",
            Diagnosis::BodyStalled => "the response body stopped arriving or arrived too slowly",
            Diagnosis::TimeoutTooShort => "the limit fired while the transfer was still going",
            Diagnosis::UploadStalled => "the server stopped reading the request body",
            Diagnosis::ConnectionClosed => {
                "the connection was closed before the response was complete"
            }
            Diagnosis::StreamRefused => "the server refused the HTTP/2 stream",
            Diagnosis::InvalidRequest => "the request is invalid",
            Diagnosis::Other => "the request failed",
        }
    }

    /// Returns one sentence that names what to check next.
    pub fn hint(&self) -> &'static str {
        match self {
            Diagnosis::NameNotResolved => {
                "check the spelling of the host name and that DNS or /etc/hosts has an entry for it"
            }
            Diagnosis::DnsUnavailable => {
                "check that the DNS server in the resolver configuration is reachable"
            }
            Diagnosis::ConnectionRefused => {
                "check that the server is running and listens on the host and port that refused the connection"
            }
            Diagnosis::ConnectTimedOut => {
                "check the host and port, and whether a firewall drops packets to them"
            }
            Diagnosis::TlsFailed => {
                "check that the client trusts the server's certificate, that it is valid for this host, and that both sides allow a common TLS version"
            }
            Diagnosis::TlsStalled => {
                "check the server's load and TLS setup, and any proxy or firewall in between"
            }
            Diagnosis::WrongProtocol => {
                "check the URL's scheme and port: https:// for a port that serves TLS, http:// for one that serves plain HTTP"
            }
            Diagnosis::ServerStalled => {
                "check the server's logs and load; raise the timeout only if this endpoint is known to be slow"
            }
            Diagnosis::BodyStalled => {
                "check the server's logs for errors while streaming, and any proxy in between"
            }
            Diagnosis::TimeoutTooShort => {
                "raise the attempt or total timeout for this endpoint, or read the body sooner"
            }
            Diagnosis::UploadStalled => {
                "check the server's logs and its request size limit, and any proxy in between"
            }
            Diagnosis::ConnectionClosed => {
                "check the server's logs for crashes or restarts, and the idle timeouts of any proxy in between"
            }
            Diagnosis::StreamRefused => {
                "check the server's load and its limit of concurrent streams, or send fewer requests at once"
            }
            Diagnosis::InvalidRequest => "check the URL and how the request is built",
            Diagnosis::Other => "see the source error for details",
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Diagnosis;
    use std::collections::HashSet;

    const ALL: [Diagnosis; 15] = [
        Diagnosis::NameNotResolved,
        Diagnosis::DnsUnavailable,
        Diagnosis::ConnectionRefused,
        Diagnosis::ConnectTimedOut,
        Diagnosis::TlsFailed,
        Diagnosis::TlsStalled,
        Diagnosis::WrongProtocol,
        Diagnosis::ServerStalled,
        Diagnosis::BodyStalled,
        Diagnosis::TimeoutTooShort,
        Diagnosis::UploadStalled,
        Diagnosis::ConnectionClosed,
        Diagnosis::StreamRefused,
        Diagnosis::InvalidRequest,
        Diagnosis::Other,
    ];

    #[test]
    fn codes_are_unique_kebab_case() {
        let codes: HashSet<&str> = ALL.iter().map(Diagnosis::code).collect();

        assert_eq!(codes.len(), ALL.len());
        for code in codes {
            assert!(
                code.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'-'),
                "{code}"
            );
        }
    }

    #[test]
    fn texts_are_lowercase_without_trailing_period() {
        for diagnosis in ALL {
            for text in [diagnosis.summary(), diagnosis.hint()] {
                assert!(!text.ends_with('.'), "{text}");
                assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
            }
        }
    }
}
