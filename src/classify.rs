//! Classification of a failed attempt: the phase it reached, the likely
//! cause, and whether sending it again is useful and safe.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use crate::deadline::AttemptLimit;
use crate::diagnosis::Diagnosis;
use crate::error::Failure;
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

/// A timeout that reqwest reports before it sees the response headers has
/// fired early, before the middleware's own limit, when the attempt ran
/// shorter than the limit by more than this. The caller's client then has a
/// shorter timeout of its own.
const EARLY_FIRE_MARGIN: Duration = Duration::from_millis(20);

/// Classifies the middleware's own timer firing before the rest of the chain
/// returned.
pub(crate) fn classify_timeout(limit: &AttemptLimit) -> Classified {
    Classified {
        failure: Failure {
            phase: Phase::Headers,
            diagnosis: Diagnosis::ServerStalled,
            timed_out: true,
            limit: Some(limit.fires_as),
            source: None,
        },
        retryable: true,
        not_sent: false,
    }
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
        reqwest_middleware::Error::Reqwest(error) => error.without_url(),
        other => return classify_middleware_error(other),
    };
    let facts = ChainFacts::collect(&error);
    let mut classified = classify_reqwest(&error, &facts, limit, elapsed, target);
    classified.failure.source = Some(Box::new(error));
    classified
}

fn classify_middleware_error(error: reqwest_middleware::Error) -> Classified {
    Classified {
        failure: Failure {
            phase: Phase::Send,
            diagnosis: Diagnosis::Other,
            timed_out: false,
            limit: None,
            source: Some(Box::new(error)),
        },
        retryable: false,
        not_sent: false,
    }
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
        let diagnosis = if facts.name_not_found {
            Diagnosis::NameNotResolved
        } else {
            Diagnosis::DnsUnavailable
        };
        let classified = failure(Phase::Dns, diagnosis, false, None).not_sent();
        return match diagnosis {
            Diagnosis::NameNotResolved => classified.not_retryable(),
            _ => classified,
        };
    }
    if error.is_connect() {
        return classify_connect(error, facts, elapsed, target);
    }
    if error.is_timeout() {
        let fired_early = elapsed + EARLY_FIRE_MARGIN < limit.budget;
        let limit = if fired_early {
            None
        } else {
            Some(limit.fires_as)
        };
        let phase = if error.is_body() {
            Phase::Body
        } else {
            Phase::Headers
        };
        let diagnosis = if phase == Phase::Body {
            Diagnosis::BodyStalled
        } else {
            Diagnosis::ServerStalled
        };
        return failure(phase, diagnosis, true, limit);
    }
    if facts.connection_closed {
        let phase = if error.is_body() {
            Phase::Body
        } else {
            Phase::Headers
        };
        return failure(phase, Diagnosis::ConnectionClosed, false, None);
    }
    if error.is_body() || error.is_decode() {
        return failure(Phase::Body, Diagnosis::Other, false, None).not_retryable();
    }
    failure(Phase::Headers, Diagnosis::Other, false, None).not_retryable()
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
        let limit = Some(Limit::ClientConnectTimeout(elapsed));
        return failure(Phase::Connect, Diagnosis::ConnectTimedOut, true, limit).not_sent();
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
        let phase = if target.is_https() {
            Phase::Tls
        } else {
            Phase::Connect
        };
        return failure(phase, Diagnosis::ConnectionClosed, false, None).not_sent();
    }
    failure(Phase::Connect, Diagnosis::Other, false, None).not_sent()
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
            source: None,
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
}

impl ChainFacts {
    fn collect(error: &reqwest::Error) -> Self {
        let mut facts = ChainFacts::default();
        let mut current: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(source) = current {
            if let Some(io) = source.downcast_ref::<io::Error>() {
                facts.note_io(io);
            }
            if let Some(hyper) = source.downcast_ref::<hyper::Error>() {
                if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                    facts.connection_closed = true;
                }
            }
            facts.note_resolver_message(&source.to_string());
            current = source.source();
        }
        facts
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
