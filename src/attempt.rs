use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};

use crate::diagnosis::Diagnosis;
use crate::error::SharedError;
use crate::format::{error_chain_text, DisplayDuration};
use crate::limit::Limit;
use crate::phase::Phase;
use crate::redact::without_url_secrets;

/// The outcome of one attempt.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The attempt received response headers with this status.
    Response(StatusCode),
    /// The attempt failed: before the response headers arrived, or while
    /// its response body was read.
    Failed {
        /// The phase the attempt had reached.
        phase: Phase,
        /// The most likely cause.
        diagnosis: Diagnosis,
        /// Whether a time limit ended the attempt.
        timed_out: bool,
    },
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptOutcome::Response(status) => write!(f, "status {}", status.as_u16()),
            AttemptOutcome::Failed {
                phase,
                diagnosis,
                timed_out: true,
            } => write!(f, "timed out in {phase} ({diagnosis})"),
            AttemptOutcome::Failed {
                phase, diagnosis, ..
            } => write!(f, "failed in {phase} ({diagnosis})"),
        }
    }
}

/// The record of one attempt of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub(crate) number: u32,
    pub(crate) started_after: Duration,
    pub(crate) duration: Duration,
    pub(crate) limit: Duration,
    /// The timeout that ended the attempt, when one did.
    pub(crate) fired: Option<Limit>,
    pub(crate) outcome: AttemptOutcome,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) wait_after: Option<Duration>,
    pub(crate) error: Option<ErrorText>,
}

/// The error of a failed attempt, with its text made when first read, so
/// that a failure no one reads costs no formatting. The text has no URL
/// secrets, even those that another layer wrote into its own message.
#[derive(Clone)]
pub(crate) struct ErrorText {
    error: SharedError,
    text: OnceLock<String>,
}

impl ErrorText {
    pub(crate) fn new(error: SharedError) -> Self {
        ErrorText {
            error,
            text: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.text
            .get_or_init(|| without_url_secrets(&error_chain_text(&*self.error)))
    }
}

impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for ErrorText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ErrorText {}

// The error is only read through `&`, and a `Display` that panics leaves the
// text unset, so a record seen after a panic is as consistent as before.
// The `String` that this type replaced had both traits.
impl std::panic::UnwindSafe for ErrorText {}
impl std::panic::RefUnwindSafe for ErrorText {}

impl AttemptRecord {
    /// Returns the attempt's number, starting at 1.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Returns when the attempt started, counted from the start of the call.
    pub fn started_after(&self) -> Duration {
        self.started_after
    }

    /// Returns how long the attempt ran until it received the response
    /// headers (in buffered mode, the whole body) or failed.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Returns the time limit the attempt ran under: the smallest of the
    /// attempt timeout, the time left before the total deadline and the
    /// request's own timeout.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Returns the timeout that ended the attempt, when one did. It is the
    /// limit of [`limit`](Self::limit), or a shorter one such as the
    /// response header timeout or the client's connect timeout.
    pub fn fired_limit(&self) -> Option<Limit> {
        self.fired
    }

    /// Returns a timeout that ended the attempt before its own limit, such
    /// as the response header timeout, for the attempt's line in messages.
    pub(crate) fn other_limit_fired(&self) -> Option<Limit> {
        self.fired.filter(|limit| {
            !matches!(
                limit,
                Limit::AttemptTimeout(_) | Limit::TotalTimeout(_) | Limit::RequestTimeout(_)
            )
        })
    }

    /// Returns what the attempt ended with.
    pub fn outcome(&self) -> AttemptOutcome {
        self.outcome
    }

    /// Returns the wait that the response's `Retry-After` header asked for,
    /// if it had a valid one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Returns the wait before the next attempt, or `None` for the last one.
    pub fn wait_after(&self) -> Option<Duration> {
        self.wait_after
    }

    /// Returns the error the attempt failed with and its causes, as one
    /// line without the URL, or `None` when it received a response.
    pub fn error(&self) -> Option<&str> {
        self.error.as_ref().map(ErrorText::as_str)
    }
}

impl fmt::Display for AttemptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attempt {} at +{}: {} after {} (limit {})",
            self.number,
            DisplayDuration(self.started_after),
            self.outcome,
            DisplayDuration(self.duration),
            DisplayDuration(self.limit),
        )?;
        if let Some(fired) = self.other_limit_fired() {
            write!(f, ", ended by the {fired}")?;
        }
        if let Some(retry_after) = self.retry_after {
            write!(f, ", retry-after {}", DisplayDuration(retry_after))?;
        }
        if let Some(wait) = self.wait_after {
            write!(f, ", then waited {}", DisplayDuration(wait))?;
        }
        Ok(())
    }
}

/// The reason the middleware made no further attempt.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The last attempt succeeded, or returned a status that is not retried.
    Completed,
    /// The configured number of retries was used up.
    MaxRetries(u32),
    /// Too little time was left before the total deadline for another
    /// attempt: the next wait would have ended less than 10 ms before it,
    /// or the last attempt ran until it.
    Deadline,
    /// The method is not idempotent and the request may have reached the
    /// server, so sending it again could repeat its effect.
    NotIdempotent(Method),
    /// The request body is a stream that was consumed by the first attempt.
    OneShotBody,
    /// The failure is one that a retry would not fix.
    NotRetryable,
    /// The server's `Retry-After` asked for a longer wait than the
    /// configured maximum or the time left allows.
    RetryAfterTooLong(Duration),
    /// The host's retry budget was spent; see
    /// [`RetryBudget`](crate::RetryBudget).
    Budget,
    /// The response body failed while the caller was reading it, after the
    /// middleware had returned the response, so no attempt could follow.
    /// Buffered mode reads the body within the attempt and retries such
    /// failures. A request that may not be sent twice, such as a `POST`
    /// without an `Idempotency-Key`, stops with
    /// [`NotIdempotent`](StopReason::NotIdempotent) instead, because the
    /// server that responded has received it.
    Streaming,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Completed => f.write_str("completed"),
            StopReason::MaxRetries(retries) => write!(f, "max retries ({retries}) reached"),
            StopReason::Deadline => {
                f.write_str("too little time left before the total deadline for another attempt")
            }
            StopReason::NotIdempotent(method) => write!(
                f,
                "not retried: the {method} may have reached the server and is not idempotent"
            ),
            StopReason::OneShotBody => f.write_str(
                "not retried: the body is a one-shot stream; use a body that can be cloned, such as bytes, to allow retries",
            ),
            StopReason::NotRetryable => f.write_str("not retried: a retry would not fix this failure"),
            StopReason::Budget => f.write_str(
                "not retried: the retry budget for this host is spent, because many calls to it are failing",
            ),
            StopReason::RetryAfterTooLong(wait) => write!(
                f,
                "not retried: retry-after of {} is beyond the maximum wait or the deadline",
                DisplayDuration(*wait)
            ),
            StopReason::Streaming => f.write_str(
                "not retried: the body failed after the response was returned, so only buffer_response_body(true) could retry it",
            ),
        }
    }
}

/// The attempts behind a response, stored in the extensions of every
/// response that went through the middleware.
///
/// ```no_run
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// use reqwest_timeout::Attempts;
///
/// let response = client.get("http://localhost:8080/").send().await?;
/// if let Some(attempts) = response.extensions().get::<Attempts>() {
///     println!("answered after {} attempt(s)", attempts.count());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Attempts {
    history: Arc<[AttemptRecord]>,
    stop: StopReason,
}

impl Attempts {
    pub(crate) fn new(history: Arc<[AttemptRecord]>, stop: StopReason) -> Self {
        Attempts { history, stop }
    }

    /// Returns how many attempts were made, the first included.
    pub fn count(&self) -> u32 {
        u32::try_from(self.history.len()).unwrap_or(u32::MAX)
    }

    /// Returns every attempt in order.
    pub fn history(&self) -> &[AttemptRecord] {
        &self.history
    }

    /// Returns why no further attempt was made.
    pub fn stop_reason(&self) -> &StopReason {
        &self.stop
    }

    /// Returns the last `Retry-After` wait that the middleware did not
    /// honour, because it was longer than the maximum or the time left.
    pub fn refused_retry_after(&self) -> Option<Duration> {
        match self.stop {
            StopReason::RetryAfterTooLong(wait) => Some(wait),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// An error that counts how often its message is formatted.
    #[derive(Debug, Default)]
    struct CountedError {
        formatted: AtomicU32,
    }

    impl fmt::Display for CountedError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.formatted.fetch_add(1, Ordering::Relaxed);
            f.write_str("connection reset")
        }
    }

    impl std::error::Error for CountedError {}

    #[test]
    fn error_text_is_made_once_when_read() {
        let error = Arc::new(CountedError::default());
        let text = ErrorText::new(Arc::clone(&error) as SharedError);

        let unread = error.formatted.load(Ordering::Relaxed);
        let first = text.as_str().to_owned();
        let second = text.clone();

        assert_eq!(unread, 0);
        assert_eq!(first, "connection reset");
        assert_eq!(second.as_str(), "connection reset");
        assert_eq!(error.formatted.load(Ordering::Relaxed), 1);
    }

    fn assert_shareable<
        T: Send + Sync + Clone + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    >() {
    }

    /// Compiles only while the records keep these traits, which callers
    /// may rely on to share them across threads and `catch_unwind`.
    #[test]
    fn records_are_shareable_and_unwind_safe() {
        assert_shareable::<AttemptRecord>();
        assert_shareable::<Attempts>();
    }
}
