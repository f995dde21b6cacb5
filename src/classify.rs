//! Classification of a failed attempt: the phase it reached, the likely
//! cause, and whether sending it again is useful and safe.
//!
//! reqwest 0.13 with hyper-util 0.1 reports failures as follows, which is what
//! the rules below read:
//! - a request timeout (the middleware's limit, or the client's `timeout` or
//!   `read_timeout`) is a bare "operation timed out" with no sign of the
//!   phase it fired in;
//! - the client's `connect_timeout` is `is_connect() && is_timeout()`; when it
//!   fires during the TCP connect, the chain contains hyper-util's
//!   "tcp connect error", and when it fires during DNS or the TLS handshake,
//!   it does not;
//! - a connection closed or reset before the response is a `hyper::Error`
//!   (incomplete message) or an `io::Error` (reset), the same for a fresh
//!   connection and for a reused keep-alive connection;
//! - an HTTP/2 stream that the server reset, or ended with GOAWAY, is h2's
//!   error inside hyper's, read in [`http2`](crate::http2); when the
//!   connection stops acknowledging HTTP/2 keep-alive pings, hyper's message
//!   says "keep-alive timed out" and reqwest's `is_timeout()` is true;
//! - a certificate that rustls 0.23 rejects is an `io::Error` of kind
//!   `InvalidData` in the connect error, and the rustls error inside it says
//!   why only in its message, which starts with "invalid peer certificate: ".

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::deadline::AttemptLimit;
use crate::diagnosis::Diagnosis;
use crate::error::{AmbiguityNote, Failure};
use crate::format::{error_chain_text, DisplayDuration};
use crate::http2::{self, StreamEnd};
use crate::limit::Limit;
use crate::phase::Phase;
use crate::redact;
use crate::target::Target;

/// A failed attempt, with what the retry decision needs to know.
pub(crate) struct Classified {
    pub(crate) failure: Failure,
    /// Whether the failure proves that the server never received the
    /// request, which makes sending a non-idempotent request again safe.
    /// The client follows redirects within one attempt, so this holds only
    /// once [`first_hop`](crate::first_hop) places the failure at the
    /// request's own host and port.
    pub(crate) not_sent: bool,
}

/// A request timeout that fired this much or more before the attempt's
/// limit was not the middleware's: the client has a shorter timeout of its
/// own, such as `read_timeout`.
const EARLY_FIRE_MARGIN: Duration = Duration::from_millis(20);

/// Facts about an attempt, besides its error, that the classifier uses.
pub(crate) struct AttemptContext<'a> {
    pub(crate) limit: &'a AttemptLimit,
    /// How long the attempt ran, which shows the timeout that fired when the
    /// error itself does not.
    pub(crate) elapsed: Duration,
    pub(crate) target: &'a Target,
    /// The client's connect timeout, when the middleware has been given it.
    pub(crate) connect_timeout: Option<Duration>,
}

/// Classifies the middleware's own timer firing before the rest of the chain
/// returned.
pub(crate) fn classify_timeout(context: &AttemptContext<'_>) -> Classified {
    let limit = context.limit;
    let mut classified = request_timeout(
        Phase::Headers,
        Diagnosis::ServerStalled,
        Some(limit.fires_as),
        context,
    );
    classified.failure.source = Some(Arc::new(AttemptTimedOut(limit.budget)));
    classified
}

/// The source of an error when the middleware's own timer ended the attempt,
/// before the rest of the chain returned an error of its own.
#[derive(Debug)]
struct AttemptTimedOut(Duration);

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the attempt did not finish within {}",
            DisplayDuration(self.0)
        )
    }
}

impl StdError for AttemptTimedOut {}

/// A request timeout fired. Its error shows no phase, so unless the client's
/// connect timeout would have fired first, a stall before the connection was
/// open looks the same as a server that sends no headers.
fn request_timeout(
    phase: Phase,
    diagnosis: Diagnosis,
    limit: Option<Limit>,
    context: &AttemptContext<'_>,
) -> Classified {
    let mut classified = failure(phase, diagnosis, true, limit);
    if phase == Phase::Headers {
        // The client's own timeout may fire well before the attempt's limit.
        // The time it took runs a little past its value, by the timer's
        // lateness, which the margin takes back.
        let fired_after = match limit {
            Some(Limit::ClientTimeout(elapsed)) => elapsed.saturating_sub(EARLY_FIRE_MARGIN),
            _ => context.limit.budget,
        };
        classified.failure.note =
            AmbiguityNote::before_headers(context.connect_timeout, fired_after);
    }
    classified
}

/// Classifies an error that the rest of the chain returned for one attempt.
pub(crate) fn classify_error(
    error: reqwest_middleware::Error,
    context: &AttemptContext<'_>,
) -> Classified {
    let error = match error {
        // The URL may hold credentials, so the source keeps none.
        reqwest_middleware::Error::Reqwest(error) => error.without_url(),
        other => return classify_middleware_error(other, context),
    };
    let facts = ChainFacts::collect(&error);
    let mut classified = classify_reqwest(&error, &facts, context);
    classified.failure.connect_addr = facts.connect_addr;
    classified.failure.source = Some(Arc::new(error));
    classified
}

/// Classifies an error from another middleware further down the chain.
///
/// When it wraps a reqwest error, as `reqwest-retry` does, that error is
/// classified. Otherwise it is not retried. The source is the error's text
/// without reqwest's URLs and without the userinfo, query and fragment of
/// any other URL, because a wrapped error cannot be stripped of its URL,
/// which may carry credentials.
fn classify_middleware_error(
    error: reqwest_middleware::Error,
    context: &AttemptContext<'_>,
) -> Classified {
    let mut classified = match nested_reqwest_error(&error) {
        Some(nested) => {
            let facts = ChainFacts::collect(nested);
            let mut classified = classify_reqwest(nested, &facts, context);
            classified.failure.connect_addr = facts.connect_addr;
            classified
        }
        None => failure(Phase::Send, Diagnosis::Other, false, None).not_retryable(),
    };
    let text = redact::without_url_secrets(&error_chain_text(&error));
    classified.failure.source = Some(Arc::new(MiddlewareError(text)));
    classified
}

/// Returns the first reqwest error inside another middleware's error.
fn nested_reqwest_error(error: &reqwest_middleware::Error) -> Option<&reqwest::Error> {
    let reqwest_middleware::Error::Middleware(wrapped) = error else {
        return None;
    };
    wrapped.chain().find_map(|cause| {
        if let Some(reqwest_error) = cause.downcast_ref::<reqwest::Error>() {
            return Some(reqwest_error);
        }
        match cause.downcast_ref::<reqwest_middleware::Error>()? {
            reqwest_middleware::Error::Reqwest(reqwest_error) => Some(reqwest_error),
            nested @ reqwest_middleware::Error::Middleware(_) => nested_reqwest_error(nested),
        }
    })
}

/// Another middleware's error, as text without URLs.
#[derive(Debug)]
struct MiddlewareError(String);

impl fmt::Display for MiddlewareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for MiddlewareError {}

fn classify_reqwest(
    error: &reqwest::Error,
    facts: &ChainFacts,
    context: &AttemptContext<'_>,
) -> Classified {
    if error.is_builder() {
        return failure(Phase::Send, Diagnosis::InvalidRequest, false, None)
            .not_retryable()
            .not_sent();
    }
    if error.is_redirect() {
        let mut classified = failure(Phase::Headers, Diagnosis::Other, false, None).not_retryable();
        classified.failure.evidence.push(
            "the server redirected the request more times than the client's redirect policy allows (10 by default in reqwest), which usually means a redirect loop; check the Location headers of the responses"
                .to_owned(),
        );
        return classified;
    }
    if error.is_dns() {
        return classify_dns(error, facts);
    }
    if error.is_connect() {
        return classify_connect(error, facts, context);
    }
    if facts.request_body {
        // The caller's own request body failed, even with an error of the
        // timed-out kind, so sending it again would fail the same way.
        return failure(Phase::Send, Diagnosis::Other, false, None).not_retryable();
    }
    if let Some(end) = facts.stream_end {
        return classify_stream_end(end, facts.body, context.target.is_https());
    }
    if facts.keep_alive_timed_out {
        return keep_alive_timed_out(facts.body);
    }
    if error.is_timeout() {
        let limit = if context.elapsed + EARLY_FIRE_MARGIN < context.limit.budget {
            Limit::ClientTimeout(context.elapsed)
        } else {
            context.limit.fires_as
        };
        return if facts.body {
            request_timeout(Phase::Body, Diagnosis::BodyStalled, Some(limit), context)
        } else {
            request_timeout(
                Phase::Headers,
                Diagnosis::ServerStalled,
                Some(limit),
                context,
            )
        };
    }
    if facts.not_http_reply && !context.target.is_https() {
        let mut classified =
            failure(Phase::Headers, Diagnosis::WrongProtocol, false, None).not_retryable();
        classified.failure.evidence.push(
            "the server answered with bytes that are not HTTP/1, as a TLS port does to a plain request"
                .to_owned(),
        );
        return classified;
    }
    if facts.connection_closed {
        let phase = if facts.body {
            Phase::Body
        } else {
            Phase::Headers
        };
        return failure(phase, Diagnosis::ConnectionClosed, false, None);
    }
    if facts.body {
        return failure(Phase::Body, Diagnosis::Other, false, None).not_retryable();
    }
    failure(Phase::Headers, Diagnosis::Other, false, None).not_retryable()
}

/// Classifies an HTTP/2 stream that a reset or a GOAWAY ended.
fn classify_stream_end(end: StreamEnd, in_body: bool, https: bool) -> Classified {
    let phase = if in_body { Phase::Body } else { Phase::Headers };
    let verdict = end.verdict(in_body, https);
    let mut classified = failure(phase, verdict.diagnosis, false, None);
    classified.failure.retryable = verdict.retryable;
    classified.failure.evidence.push(verdict.evidence);
    classified
}

/// Classifies an HTTP/2 connection that stopped acknowledging the client's
/// keep-alive pings, which the client then closed. reqwest's `is_timeout()`
/// is true, but no request timeout fired: the connection was dead.
fn keep_alive_timed_out(in_body: bool) -> Classified {
    let phase = if in_body { Phase::Body } else { Phase::Headers };
    let mut classified = failure(phase, Diagnosis::ConnectionClosed, false, None);
    classified.failure.evidence.push(
        "the HTTP/2 connection stopped acknowledging the client's keep-alive pings within `http2_keep_alive_timeout`, so the client closed it: the server or the network on the way stalled"
            .to_owned(),
    );
    classified
}

/// Classifies a failed name lookup. "No such name" is final; any other
/// resolver failure may pass.
fn classify_dns(error: &reqwest::Error, facts: &ChainFacts) -> Classified {
    if facts.name_not_found {
        return failure(Phase::Dns, Diagnosis::NameNotResolved, false, None)
            .not_retryable()
            .not_sent();
    }
    failure(
        Phase::Dns,
        Diagnosis::DnsUnavailable,
        error.is_timeout(),
        None,
    )
    .not_sent()
}

/// Classifies an error from opening the connection. None of these requests
/// reached the server: the request is written only after the connection,
/// TLS included, is established.
fn classify_connect(
    error: &reqwest::Error,
    facts: &ChainFacts,
    context: &AttemptContext<'_>,
) -> Classified {
    let target = context.target;
    if error.is_timeout() {
        return classify_connect_timeout(facts, context);
    }
    if facts.refused {
        return failure(Phase::Connect, Diagnosis::ConnectionRefused, false, None).not_sent();
    }
    if target.is_https() && (facts.invalid_data || facts.certificate.is_some()) {
        let diagnosis = if facts.not_tls_reply {
            Diagnosis::WrongProtocol
        } else {
            Diagnosis::TlsFailed
        };
        let mut classified = failure(Phase::Tls, diagnosis, false, None)
            .not_retryable()
            .not_sent();
        if facts.not_tls_reply {
            classified.failure.evidence.push(
                "the server answered the TLS handshake with data that is not TLS, so the port probably speaks plain HTTP"
                    .to_owned(),
            );
        }
        if let Some(problem) = facts.certificate {
            classified
                .failure
                .evidence
                .push(problem.evidence().to_owned());
        }
        return classified;
    }
    if facts.connection_closed {
        let phase = if target.is_https() && !facts.tcp_connect {
            Phase::Tls
        } else {
            Phase::Connect
        };
        return failure(phase, Diagnosis::ConnectionClosed, false, None).not_sent();
    }
    failure(Phase::Connect, Diagnosis::Other, false, None).not_sent()
}

/// Classifies the client's `connect_timeout` firing. It covers DNS, the TCP
/// connect and the TLS handshake. Only hyper-util's timer for one address
/// names the TCP connect, and reqwest's timer around the whole connect often
/// fires first, so without that name a TCP connect stays possible.
fn classify_connect_timeout(facts: &ChainFacts, context: &AttemptContext<'_>) -> Classified {
    let target = context.target;
    let value = context.connect_timeout.unwrap_or(context.elapsed);
    let limit = Some(Limit::ClientConnectTimeout(value));
    let dns_possible = !target.is_ip_literal();
    let mut classified = if facts.tcp_connect {
        failure(Phase::Connect, Diagnosis::ConnectTimedOut, true, limit)
    } else if target.is_https() {
        failure(Phase::Tls, Diagnosis::TlsStalled, true, limit)
    } else if dns_possible {
        failure(Phase::Dns, Diagnosis::DnsUnavailable, true, limit)
    } else {
        failure(Phase::Connect, Diagnosis::ConnectTimedOut, true, limit)
    };
    classified.failure.note = match classified.failure.phase {
        Phase::Tls if dns_possible => Some(AmbiguityNote::StalledLookupOrConnect),
        Phase::Tls | Phase::Dns => Some(AmbiguityNote::StalledConnect),
        _ => None,
    };
    classified.not_sent()
}

fn failure(
    phase: Phase,
    diagnosis: Diagnosis,
    timed_out: bool,
    limit: Option<Limit>,
) -> Classified {
    Classified {
        failure: Failure {
            phase,
            diagnosis,
            timed_out,
            limit,
            retryable: true,
            note: None,
            evidence: Vec::new(),
            probe: None,
            source: None,
            progress: None,
            connect_addr: None,
            redirected: false,
        },
        not_sent: false,
    }
}

impl Classified {
    fn not_retryable(mut self) -> Self {
        self.failure.retryable = false;
        self
    }

    fn not_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }
}

/// Facts found in the chain of sources below a reqwest error.
#[derive(Debug, Default)]
struct ChainFacts {
    refused: bool,
    connection_closed: bool,
    invalid_data: bool,
    name_not_found: bool,
    /// hyper-util's "tcp connect error": the failure happened while opening
    /// the TCP connection, after DNS and before TLS.
    tcp_connect: bool,
    /// The address that the failed TCP connect went to.
    connect_addr: Option<SocketAddr>,
    /// A reqwest error of the body kind, or hyper's body read error.
    body: bool,
    /// hyper's error for a failure on the caller's side, most often of the
    /// request body stream ("error from user's Body stream").
    request_body: bool,
    /// rustls' "received corrupt message of type InvalidContentType": the
    /// peer sent something other than a TLS record.
    not_tls_reply: bool,
    /// hyper could not parse the HTTP version of the response, the first
    /// thing it reads: the peer does not speak HTTP/1.
    not_http_reply: bool,
    /// The reason the client rejected the server's certificate, if it did.
    certificate: Option<CertificateProblem>,
    /// The HTTP/2 reset or GOAWAY that ended the request's stream.
    stream_end: Option<StreamEnd>,
    /// hyper's "keep-alive timed out": the HTTP/2 connection did not
    /// acknowledge the client's pings in time.
    keep_alive_timed_out: bool,
}

/// Returns the address in the `Debug` text of hyper-util 0.1's
/// `ConnectError`, such as `ConnectError("tcp connect error", 127.0.0.1:8080,
/// Os { .. })`: the error keeps it in a private field that only `Debug`
/// shows. Returns `None` for any other shape.
fn connect_error_addr(debug: &str) -> Option<SocketAddr> {
    let rest = debug.strip_prefix("ConnectError(\"tcp connect error\", ")?;
    let end = rest.find([',', ')'])?;
    rest[..end].parse().ok()
}

/// A reason for rejecting the server's certificate, read from the message
/// of the rustls error.
///
/// NOTE: only rustls' messages are recognized. Certificate errors from
/// native-tls get no evidence of their own, though they are still
/// diagnosed as a TLS failure when their kind is `InvalidData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertificateProblem {
    /// No root certificate of the client issued the certificate.
    UntrustedIssuer,
    /// The certificate does not name the host in the URL.
    WrongName,
    Expired,
    /// Any other reason, such as a certificate that is not valid yet.
    Other,
}

impl CertificateProblem {
    const RUSTLS_PREFIX: &'static str = "invalid peer certificate: ";

    /// Reads the reason from a rustls message such as
    /// "invalid peer certificate: UnknownIssuer". Returns `None` for a
    /// message that is not about a rejected certificate.
    fn from_message(message: &str) -> Option<Self> {
        let (_, reason) = message.split_once(Self::RUSTLS_PREFIX)?;
        // rustls writes some reasons as sentences and the others as the
        // name of the `CertificateError` variant.
        let problem = if reason.starts_with("UnknownIssuer") {
            CertificateProblem::UntrustedIssuer
        } else if reason.starts_with("NotValidForName")
            || reason.starts_with("certificate not valid for name")
        {
            CertificateProblem::WrongName
        } else if reason == "Expired" || reason.starts_with("certificate expired") {
            CertificateProblem::Expired
        } else {
            CertificateProblem::Other
        };
        Some(problem)
    }

    fn evidence(self) -> &'static str {
        match self {
            CertificateProblem::UntrustedIssuer => {
                "the server's certificate is not trusted because its issuer is not among the client's root certificates, as with a self-signed certificate or a private CA"
            }
            CertificateProblem::WrongName => {
                "the server's certificate is not valid for the host name in the URL"
            }
            CertificateProblem::Expired => "the server's certificate has expired",
            CertificateProblem::Other => {
                "the client rejected the server's certificate for the reason in the source error"
            }
        }
    }
}

impl ChainFacts {
    fn collect(error: &reqwest::Error) -> Self {
        let mut facts = ChainFacts {
            body: error.is_body() || error.is_decode(),
            ..ChainFacts::default()
        };
        let mut current: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(source) = current {
            facts.note(source);
            current = source.source();
        }
        facts
    }

    fn note(&mut self, source: &(dyn StdError + 'static)) {
        if let Some(io) = source.downcast_ref::<io::Error>() {
            self.note_io(io);
        }
        if let Some(hyper) = source.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                self.connection_closed = true;
            }
            if hyper.is_parse() && hyper.to_string().contains("invalid HTTP version") {
                self.not_http_reply = true;
            }
            if hyper.is_user() {
                self.request_body = true;
            }
        }
        if let Some(nested) = source.downcast_ref::<reqwest::Error>() {
            self.body |= nested.is_body() || nested.is_decode();
        }
        if let Some(end) = StreamEnd::read(source) {
            self.stream_end = Some(end);
        }
        if let Some(io) = http2::io_error(source) {
            self.note_io(io);
        }
        let message = source.to_string();
        if message == "keep-alive timed out" {
            self.keep_alive_timed_out = true;
        }
        // hyper-util 0.1 names the stage only in the message of its private
        // `ConnectError`.
        if message == "tcp connect error" {
            self.tcp_connect = true;
            self.connect_addr = connect_error_addr(&format!("{source:?}"));
        }
        self.note_resolver_message(&message);
    }

    fn note_io(&mut self, io: &io::Error) {
        match io.kind() {
            io::ErrorKind::ConnectionRefused => self.refused = true,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => self.connection_closed = true,
            io::ErrorKind::InvalidData => self.invalid_data = true,
            io::ErrorKind::NotFound => self.name_not_found = true,
            _ => {}
        }
        // `io::Error::source` skips the error it wraps, which is where TLS
        // libraries put the detail, so look at that error too.
        if let Some(inner) = io.get_ref() {
            if let Some(inner_io) = inner.downcast_ref::<io::Error>() {
                self.note_io(inner_io);
            }
            let message = inner.to_string();
            if message.contains("InvalidContentType") {
                self.not_tls_reply = true;
            }
            if let Some(problem) = CertificateProblem::from_message(&message) {
                self.certificate = Some(problem);
            }
            self.note_resolver_message(&message);
        }
    }

    /// The system resolver reports "no such name" only in its message
    /// (getaddrinfo's `EAI_NONAME`), with no `io::ErrorKind` of its own.
    fn note_resolver_message(&mut self, message: &str) {
        const NOT_FOUND_MESSAGES: [&str; 3] = [
            "Name or service not known",
            "nodename nor servname provided",
            "No address associated with hostname",
        ];
        if NOT_FOUND_MESSAGES
            .iter()
            .any(|known| message.contains(known))
        {
            self.name_not_found = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{connect_error_addr, CertificateProblem};

    #[test]
    fn connect_error_addr_read_from_hyper_util_debug() {
        let cases = [
            (
                r#"ConnectError("tcp connect error", 127.0.0.1:8080, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })"#,
                Some("127.0.0.1:8080"),
            ),
            (
                r#"ConnectError("tcp connect error", [::1]:443, Custom { kind: TimedOut })"#,
                Some("[::1]:443"),
            ),
            (
                r#"ConnectError("tcp connect error", [::1]:443)"#,
                Some("[::1]:443"),
            ),
            (r#"ConnectError("dns error", Custom { kind: Other })"#, None),
            (
                r#"ConnectError("tcp connect error", Os { code: 111 })"#,
                None,
            ),
        ];

        for (debug, expected) in cases {
            let expected = expected.map(|addr| addr.parse().unwrap());
            assert_eq!(connect_error_addr(debug), expected, "{debug}");
        }
    }

    #[test]
    fn certificate_problem_read_from_rustls_message() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", CertificateProblem::UntrustedIssuer),
            ("invalid peer certificate: NotValidForName", CertificateProblem::WrongName),
            (
                "invalid peer certificate: certificate not valid for name \"a.test\"; certificate is only valid for DnsName(\"b.test\")",
                CertificateProblem::WrongName,
            ),
            ("invalid peer certificate: Expired", CertificateProblem::Expired),
            (
                "invalid peer certificate: certificate expired: verification time 2 (UNIX), but certificate is not valid after 1 (1 seconds ago)",
                CertificateProblem::Expired,
            ),
            ("invalid peer certificate: ExpiredRevocationList", CertificateProblem::Other),
            ("invalid peer certificate: BadSignature", CertificateProblem::Other),
        ];

        for (message, expected) in cases {
            assert_eq!(
                CertificateProblem::from_message(message),
                Some(expected),
                "{message}"
            );
        }
    }

    #[test]
    fn message_without_certificate_error_has_no_problem() {
        let message = "received corrupt message of type InvalidContentType";

        assert_eq!(CertificateProblem::from_message(message), None);
    }
}
