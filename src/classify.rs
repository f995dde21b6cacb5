//! Classification of a failed attempt: the phase it reached, the likely
//! cause, and whether sending it again is useful and safe.
//!
//! reqwest 0.13 with hyper-util 0.1 reports failures as follows, which is what
//! the rules below read:
//! - a request timeout (the middleware's limit, or the client's `timeout` or
//!   `read_timeout`) is a bare "operation timed out" with no sign of the
//!   phase it fired in;
//! - the client's `connect_timeout` is `is_connect() && is_timeout()`; when it
//!   fires during the TCP connect, the chain holds hyper-util's
//!   "tcp connect error", and when it fires during DNS or the TLS handshake,
//!   it does not;
//! - a connection closed or reset before the response is a `hyper::Error`
//!   (incomplete message) or an `io::Error` (reset), the same for a fresh
//!   connection and for a reused keep-alive connection.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::deadline::AttemptLimit;
use crate::diagnosis::Diagnosis;
use crate::error::{AmbiguityNote, Failure};
use crate::format::DisplayDuration;
use crate::limit::Limit;
use crate::phase::Phase;
use crate::target::Target;

/// A failed attempt, with what the retry decision needs to know.
pub(crate) struct Classified {
    pub(crate) failure: Failure,
    /// Whether the failure may pass, so that another attempt can succeed.
    pub(crate) retryable: bool,
    /// Whether the failure proves that the server never received the
    /// request, which makes sending a non-idempotent request again safe.
    pub(crate) not_sent: bool,
}

/// A request timeout that fired this much or more before the attempt's
/// limit was not the middleware's: the client has a shorter timeout of its
/// own, such as `read_timeout`.
const EARLY_FIRE_MARGIN: Duration = Duration::from_millis(20);

/// Classifies the middleware's own timer firing before the rest of the chain
/// returned.
pub(crate) fn classify_timeout(limit: &AttemptLimit) -> Classified {
    let mut classified = request_timeout(
        Phase::Headers,
        Diagnosis::ServerStalled,
        Some(limit.fires_as),
    );
    classified.failure.source = Some(Box::new(AttemptTimedOut(limit.budget)));
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

/// A request timeout fired. Its error shows no phase, so a stall before the
/// connection was open looks the same as a server that sends no headers.
fn request_timeout(phase: Phase, diagnosis: Diagnosis, limit: Option<Limit>) -> Classified {
    let mut classified = failure(phase, diagnosis, true, limit);
    if phase == Phase::Headers {
        classified.failure.note = Some(AmbiguityNote::ConnectOrHeaders);
    }
    classified
}

/// Classifies an error that the rest of the chain returned for one attempt.
///
/// `elapsed` is how long the attempt ran; it tells which timeout fired when
/// the error itself does not.
pub(crate) fn classify_error(
    error: reqwest_middleware::Error,
    limit: &AttemptLimit,
    elapsed: Duration,
    target: &Target,
) -> Classified {
    let error = match error {
        // The URL may hold credentials, so the source keeps none.
        reqwest_middleware::Error::Reqwest(error) => error.without_url(),
        other => return classify_middleware_error(other),
    };
    let facts = ChainFacts::collect(&error);
    let mut classified = classify_reqwest(&error, &facts, limit, elapsed, target);
    classified.failure.source = Some(Box::new(error));
    classified
}

/// An error from another middleware carries no transport detail, so it is
/// passed on as it is and not retried.
fn classify_middleware_error(error: reqwest_middleware::Error) -> Classified {
    let mut classified = failure(Phase::Send, Diagnosis::Other, false, None).not_retryable();
    classified.failure.source = Some(Box::new(error));
    classified
}

fn classify_reqwest(
    error: &reqwest::Error,
    facts: &ChainFacts,
    limit: &AttemptLimit,
    elapsed: Duration,
    target: &Target,
) -> Classified {
    if error.is_builder() {
        return failure(Phase::Send, Diagnosis::InvalidRequest, false, None)
            .not_retryable()
            .not_sent();
    }
    if error.is_dns() {
        return classify_dns(error, facts);
    }
    if error.is_connect() {
        return classify_connect(error, facts, elapsed, target);
    }
    if error.is_timeout() {
        let limit = if elapsed + EARLY_FIRE_MARGIN < limit.budget {
            None
        } else {
            Some(limit.fires_as)
        };
        return if facts.body {
            request_timeout(Phase::Body, Diagnosis::BodyStalled, limit)
        } else {
            request_timeout(Phase::Headers, Diagnosis::ServerStalled, limit)
        };
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
    elapsed: Duration,
    target: &Target,
) -> Classified {
    if error.is_timeout() {
        return classify_connect_timeout(facts, elapsed, target);
    }
    if facts.refused {
        return failure(Phase::Connect, Diagnosis::ConnectionRefused, false, None).not_sent();
    }
    if target.is_https() && facts.invalid_data {
        return failure(Phase::Tls, Diagnosis::TlsFailed, false, None)
            .not_retryable()
            .not_sent();
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
/// connect and the TLS handshake; only a TCP connect timeout names itself.
fn classify_connect_timeout(facts: &ChainFacts, elapsed: Duration, target: &Target) -> Classified {
    let limit = Some(Limit::ClientConnectTimeout(elapsed));
    let dns_possible = !target.is_ip_literal();
    let mut classified = if facts.tcp_connect {
        failure(Phase::Connect, Diagnosis::ConnectTimedOut, true, limit)
    } else if target.is_https() {
        failure(Phase::Tls, Diagnosis::TlsFailed, true, limit)
    } else if dns_possible {
        failure(Phase::Dns, Diagnosis::DnsUnavailable, true, limit)
    } else {
        failure(Phase::Connect, Diagnosis::ConnectTimedOut, true, limit)
    };
    if classified.failure.phase == Phase::Tls && dns_possible {
        classified.failure.note = Some(AmbiguityNote::DnsOrTls);
    }
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
            note: None,
            source: None,
            progress: None,
        },
        retryable: true,
        not_sent: false,
    }
}

impl Classified {
    fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }

    fn not_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }
}

/// What the chain of sources below a reqwest error shows.
#[derive(Debug, Default)]
struct ChainFacts {
    refused: bool,
    connection_closed: bool,
    invalid_data: bool,
    name_not_found: bool,
    /// hyper-util's "tcp connect error": the failure happened while opening
    /// the TCP connection, after DNS and before TLS.
    tcp_connect: bool,
    /// A reqwest error of the body kind, or hyper's body read error.
    body: bool,
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
        }
        if let Some(nested) = source.downcast_ref::<reqwest::Error>() {
            self.body |= nested.is_body() || nested.is_decode();
        }
        let message = source.to_string();
        // hyper-util 0.1 names the stage only in the message of its private
        // `ConnectError`.
        if message == "tcp connect error" {
            self.tcp_connect = true;
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
            self.note_resolver_message(&inner.to_string());
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
