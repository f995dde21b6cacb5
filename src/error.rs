use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::attempt::{AttemptRecord, StopReason};
use crate::body::BodyProgress;
use crate::diagnosis::Diagnosis;
use crate::format::{error_chain_text, DisplayDuration};
use crate::limit::Limit;
use crate::phase::Phase;
use crate::probe::ProbeReport;
use crate::redact::without_url_secrets;
use crate::report::Report;
use crate::target::Target;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An attempt's error, kept by the failure and by the attempt's record,
/// which makes its text only when it is read.
pub(crate) type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// A failed call, with the phase it failed in, the limit that fired, every
/// attempt made and the most likely cause.
///
/// The middleware returns it inside
/// [`reqwest_middleware::Error::Middleware`]. When the response body fails
/// while the caller reads it, the caller gets a [`reqwest::Error`] instead,
/// with this error inside an [`io::Error`] in its sources. [`Error::find`]
/// gets it back from either.
///
/// Its [`source`](StdError::source) is the error of the last attempt:
/// - reqwest's error, without its URL, with the errors below it as they are;
/// - when another middleware further down the chain failed, a copy of that
///   middleware's error text without the userinfo, query and fragment of any
///   URL in it, so it cannot be downcast to that middleware's type;
/// - when the middleware's own timer ended the attempt, an error that states
///   it, or none when the deadline left no time for a first attempt.
///
/// NOTE: text that reqwest's sources, such as hyper's or an `io::Error`,
/// wrote into their own messages stays as it is. The message, `Debug`,
/// [`report`](Error::report) and the attempts'
/// [`error`](crate::AttemptRecord::error) texts remove the userinfo, query
/// and fragment of every URL in it.
///
/// The message is one line. It names the method, host, port and path (never
/// the userinfo or the query string), what failed and the limit that fired.
/// Then it gives how far the body got, the attempts, the time spent, why no
/// further attempt was made and what to check next.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    method: Method,
    target: Target,
    phase: Phase,
    diagnosis: Diagnosis,
    limit: Option<Limit>,
    timed_out: bool,
    retryable: bool,
    history: Vec<AttemptRecord>,
    elapsed: Duration,
    stop: StopReason,
    note: Option<AmbiguityNote>,
    evidence: Vec<String>,
    probe: Option<ProbeReport>,
    source: Option<SharedError>,
    progress: Option<BodyProgress>,
}

/// Another cause that the error of the last attempt cannot rule out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AmbiguityNote {
    /// A request timeout fired before the headers: unless the middleware
    /// has a client `connect_timeout` shorter than the limit, a connect
    /// that never completed looks the same.
    ConnectOrHeaders,
    /// As [`ConnectOrHeaders`](Self::ConnectOrHeaders), when the middleware
    /// has the client's connect timeout, but the limit that fired was not
    /// longer: the total deadline or a short request timeout cut the
    /// attempt before the connect timeout could fire.
    ConnectTimeoutNotShorter,
    /// A limit fired before the response headers of an `https://` request,
    /// and the active probe's TCP connects succeeded: a TLS handshake that
    /// never completed looks the same as a stalled server.
    TlsOrHeaders,
    /// The client's connect timeout fired, and the error does not name the
    /// TCP connect: reqwest's timer around the whole connect fired before
    /// hyper-util's timer for one address. A TCP connect that never
    /// completed looks the same as the stage the diagnosis names.
    StalledConnect,
    /// As [`StalledConnect`](Self::StalledConnect), for an `https://`
    /// request to a host name, where the DNS lookup could have stalled too.
    StalledLookupOrConnect,
}

impl AmbiguityNote {
    /// Returns the note for a limit of `limit` that fired before the
    /// response headers, when the attempt may not have got past the connect:
    /// none when the client's `connect_timeout`, if known, would have
    /// ended a stalled connect first.
    pub(crate) fn before_headers(
        connect_timeout: Option<Duration>,
        limit: Duration,
    ) -> Option<Self> {
        match connect_timeout {
            None => Some(AmbiguityNote::ConnectOrHeaders),
            Some(connect) if connect < limit => None,
            Some(_) => Some(AmbiguityNote::ConnectTimeoutNotShorter),
        }
    }

    /// Returns whether the note leaves a stalled connect possible after a
    /// limit fired before the response headers.
    pub(crate) fn is_before_headers(self) -> bool {
        matches!(
            self,
            AmbiguityNote::ConnectOrHeaders | AmbiguityNote::ConnectTimeoutNotShorter
        )
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            AmbiguityNote::ConnectOrHeaders => {
                "or a connect that never completed, which looks the same unless the middleware knows a client connect_timeout shorter than this limit (see configure_client)"
            }
            AmbiguityNote::ConnectTimeoutNotShorter => {
                "or a connect that never completed: the client's connect_timeout is not shorter than this limit, so it could not fire first"
            }
            AmbiguityNote::TlsOrHeaders => {
                "or a TLS handshake that never completed: the probe's TCP connects succeeded, and a stalled handshake looks the same"
            }
            AmbiguityNote::StalledConnect => {
                "or a TCP connect that never completed: reqwest's connect timeout covers both and does not say which stage stalled"
            }
            AmbiguityNote::StalledLookupOrConnect => {
                "or a DNS lookup or TCP connect that never completed: reqwest's connect timeout covers all three and does not say which stage stalled"
            }
        }
    }
}

/// The facts about the last attempt that an [`Error`] is built from.
pub(crate) struct Failure {
    pub(crate) phase: Phase,
    pub(crate) diagnosis: Diagnosis,
    pub(crate) timed_out: bool,
    pub(crate) limit: Option<Limit>,
    /// Whether the failure may pass, so that another attempt can succeed.
    pub(crate) retryable: bool,
    pub(crate) note: Option<AmbiguityNote>,
    /// Facts that support the diagnosis, each one lowercase clause.
    pub(crate) evidence: Vec<String>,
    pub(crate) probe: Option<ProbeReport>,
    pub(crate) source: Option<SharedError>,
    /// How far the request body (in `Phase::Send`) or the response body (in
    /// `Phase::Body`) got.
    pub(crate) progress: Option<BodyProgress>,
    /// The address of the TCP connect that failed, when the error names it.
    pub(crate) connect_addr: Option<SocketAddr>,
    /// Whether the failure happened at an address other than the request's
    /// own host and port, such as a redirect's target or a proxy.
    pub(crate) redirected: bool,
}

impl Error {
    pub(crate) fn new(
        method: Method,
        target: Target,
        failure: Failure,
        history: Vec<AttemptRecord>,
        elapsed: Duration,
        stop: StopReason,
    ) -> Self {
        Error {
            inner: Box::new(Inner {
                method,
                target,
                phase: failure.phase,
                diagnosis: failure.diagnosis,
                limit: failure.limit,
                timed_out: failure.timed_out,
                retryable: failure.retryable,
                history,
                elapsed,
                stop,
                note: failure.note,
                evidence: failure.evidence,
                probe: failure.probe,
                source: failure.source,
                progress: failure.progress,
            }),
        }
    }

    /// Finds the middleware's error in `error` or in its chain of sources.
    ///
    /// `error` is typically the [`reqwest_middleware::Error`] that a call
    /// returned, or the [`reqwest::Error`] from reading a response body. The
    /// search also looks inside the `Middleware` variant and inside
    /// [`io::Error`]s, which both hide the error they wrap from a plain walk
    /// of the sources.
    ///
    /// ```no_run
    /// # async fn run(client: reqwest_middleware::ClientWithMiddleware) {
    /// match client.get("http://localhost:8080/").send().await {
    ///     Ok(response) => println!("status {}", response.status()),
    ///     Err(err) => match reqwest_timeout::Error::find(&err) {
    ///         Some(diagnosed) => eprintln!("{} after {} attempts", diagnosed.diagnosis(), diagnosed.attempts()),
    ///         None => eprintln!("{err}"),
    ///     },
    /// }
    /// # }
    /// ```
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Error> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(found) = error.downcast_ref::<Error>() {
                return Some(found);
            }
            // `reqwest_middleware::Error::Middleware` and `io::Error` both
            // skip the error they wrap when asked for their source, so look
            // inside them explicitly.
            if let Some(reqwest_middleware::Error::Middleware(wrapped)) =
                error.downcast_ref::<reqwest_middleware::Error>()
            {
                if let Some(found) = wrapped.chain().find_map(Error::find) {
                    return Some(found);
                }
                #[cfg(feature = "reqwest-retry")]
                if let Some(found) = crate::interop::find_in_retry_error(wrapped) {
                    return Some(found);
                }
            }
            // The body guard puts this error inside an `io::Error`.
            if let Some(inner) = error
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                if let Some(found) = Error::find(inner) {
                    return Some(found);
                }
            }
            current = error.source();
        }
        None
    }

    /// Returns how many attempts were made, the first included.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.inner.history.len()).unwrap_or(u32::MAX)
    }

    /// Returns the time from the start of the call until it failed.
    pub fn elapsed(&self) -> Duration {
        self.inner.elapsed
    }

    /// Returns whether a time limit ended the last attempt.
    pub fn is_timeout(&self) -> bool {
        self.inner.timed_out
    }

    /// Returns whether a later call may succeed where this one failed: the
    /// failure is transient (a timeout, a refused or closed connection, a
    /// transient DNS failure) and sending the request again is safe.
    ///
    /// It is `false` for failures that a retry does not fix, such as a name
    /// that does not exist or a TLS failure. It is also `false` for a request
    /// that was not retried because it may have reached the server, because
    /// its body was a one-shot stream, or because the host's retry budget is
    /// spent.
    pub fn is_retryable(&self) -> bool {
        self.inner.retryable
            && !matches!(
                self.inner.stop,
                StopReason::NotIdempotent(_)
                    | StopReason::OneShotBody
                    | StopReason::NotRetryable
                    | StopReason::Budget
            )
    }

    /// Returns the phase that the last attempt failed in.
    pub fn phase(&self) -> Phase {
        self.inner.phase
    }

    /// Returns the most likely cause of the failure.
    pub fn diagnosis(&self) -> Diagnosis {
        self.inner.diagnosis
    }

    /// Returns the limit that ended the last attempt, if one did.
    pub fn limit(&self) -> Option<Limit> {
        self.inner.limit
    }

    /// Returns every attempt in order.
    pub fn history(&self) -> &[AttemptRecord] {
        &self.inner.history
    }

    /// Returns why no further attempt was made.
    pub fn stop_reason(&self) -> &StopReason {
        &self.inner.stop
    }

    /// Returns the facts behind the diagnosis, such as the pattern across
    /// attempts ("all 4 attempts were refused within 1ms") or what the
    /// server sent instead of a TLS handshake.
    pub fn evidence(&self) -> &[String] {
        &self.inner.evidence
    }

    /// Returns what the active probe found, when it ran; see
    /// [`TimeoutMiddlewareBuilder::active_probe`](crate::TimeoutMiddlewareBuilder::active_probe).
    pub fn probe(&self) -> Option<&ProbeReport> {
        self.inner.probe.as_ref()
    }

    /// Returns a multi-line report of the failure with every attempt as a
    /// timeline; the alternate form `{:#}` prints the same.
    pub fn report(&self) -> Report<'_> {
        Report::new(self)
    }

    /// Returns the request's method.
    pub fn method(&self) -> &Method {
        &self.inner.method
    }

    /// Returns the request's host, as written in its URL.
    pub fn host(&self) -> &str {
        self.inner.target.host()
    }

    /// Returns the request's port, or the scheme's default port.
    pub fn port(&self) -> Option<u16> {
        self.inner.target.port()
    }

    /// Returns how far the body got: the response body for a failure in
    /// [`Phase::Body`], the request body for one in [`Phase::Send`]. `None`
    /// for failures in other phases, and for a request body the middleware
    /// did not track.
    pub fn body_progress(&self) -> Option<BodyProgress> {
        self.inner.progress
    }

    /// Writes the likely cause with its code, and the other cause that the
    /// error cannot rule out, if any.
    pub(crate) fn describe_cause(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diagnosis = self.inner.diagnosis;
        write!(
            f,
            "; likely cause: {} ({})",
            diagnosis.summary(),
            diagnosis.code()
        )?;
        if let Some(note) = self.inner.note {
            write!(f, ", {}", note.text())?;
        }
        Ok(())
    }

    pub(crate) fn note(&self) -> Option<AmbiguityNote> {
        self.inner.note
    }

    pub(crate) fn target(&self) -> String {
        self.inner.target.to_string()
    }

    pub(crate) fn describe_failure(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.inner.timed_out, self.inner.phase) {
            (true, Phase::Dns) => "timed out resolving the host name",
            (true, Phase::Connect) => "timed out connecting",
            (true, Phase::Tls) => "timed out in the TLS handshake",
            (true, Phase::Send) => "timed out sending the request",
            (true, Phase::Headers) => "timed out waiting for the response headers",
            (true, Phase::Body) => "timed out reading the response body",
            (false, Phase::Dns) => "could not resolve the host name",
            (false, Phase::Connect) => "could not connect",
            (false, Phase::Tls) => "TLS handshake failed",
            (false, Phase::Send) => "failed sending the request",
            (false, Phase::Headers) => "failed before the response headers",
            (false, Phase::Body) => "failed reading the response body",
        };
        f.write_str(what)?;
        if let Some(limit) = self.inner.limit {
            write!(f, " after the {limit}")?;
        }
        if let Some(progress) = self.inner.progress {
            // A body's bytes count when they are read, by the caller or in
            // buffered mode, not when they reach the client's buffer.
            let verb = if self.inner.phase == Phase::Send {
                "sent"
            } else {
                "read"
            };
            write!(f, ", {verb} {progress}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return self.report().fmt(f);
        }
        let inner = &self.inner;
        write!(f, "{} {}: ", inner.method, inner.target)?;
        self.describe_failure(f)?;

        let attempts = self.attempts();
        let noun = if attempts == 1 { "attempt" } else { "attempts" };
        write!(
            f,
            "; {attempts} {noun} in {}, {}",
            DisplayDuration(inner.elapsed),
            inner.stop
        )?;

        self.describe_cause(f)?;
        for evidence in &inner.evidence {
            write!(f, "; {evidence}")?;
        }
        if let Some(probe) = &inner.probe {
            write!(f, "; probe: {probe}")?;
        }
        write!(f, "; {}", inner.diagnosis.hint())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("reqwest_timeout::Error")
            .field("method", &inner.method)
            .field("target", &format_args!("{}", inner.target))
            .field("phase", &inner.phase)
            .field("diagnosis", &inner.diagnosis)
            .field("limit", &inner.limit)
            .field("timed_out", &inner.timed_out)
            .field("attempts", &inner.history.len())
            .field("elapsed", &inner.elapsed)
            .field("stop", &inner.stop)
            .field("evidence", &inner.evidence)
            .field("probe", &inner.probe)
            .field("progress", &inner.progress)
            // The text that the attempts show, because the source's own
            // `Debug` escapes quotes that the redaction looks for.
            .field(
                "source",
                &inner
                    .source
                    .as_ref()
                    .map(|source| without_url_secrets(&error_chain_text(&**source))),
            )
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

impl From<Error> for reqwest_middleware::Error {
    fn from(error: Error) -> Self {
        reqwest_middleware::Error::middleware(error)
    }
}
