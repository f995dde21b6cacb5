//! The response header timeout: a limit on the wait for the response headers
//! once the request is sent.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::upload::UploadProgress;
use crate::classify::Classified;
use crate::diagnosis::Diagnosis;
use crate::error::{AmbiguityNote, Failure};
use crate::format::DisplayDuration;
use crate::limit::Limit;
use crate::phase::Phase;

/// The response header timeout fired before the rest of the chain returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderTimedOut {
    timeout: Duration,
    /// Whether the timeout started after a tracked request body; otherwise
    /// it started with the attempt.
    after_upload: bool,
}

/// Runs `exchange`, the rest of the chain for one attempt, and ends it when
/// the response headers take longer than `timeout`.
///
/// The timeout starts when `upload` has been taken in full, or at `started`
/// when there is no tracked body. A body that is never taken in full leaves
/// the attempt timeout in charge.
pub(crate) async fn within_header_timeout<F: Future>(
    timeout: Option<Duration>,
    started: Instant,
    upload: Option<&UploadProgress>,
    exchange: F,
) -> Result<F::Output, HeaderTimedOut> {
    let Some(timeout) = timeout else {
        return Ok(exchange.await);
    };
    let mut exchange = pin!(exchange);
    // Boxed, so that its timer and its wait for the upload do not enlarge
    // the future of every attempt when no header timeout is set.
    let mut deadline = Box::pin(header_deadline(timeout, started, upload));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        deadline.as_mut().poll(cx).map(Err)
    })
    .await
}

async fn header_deadline(
    timeout: Duration,
    started: Instant,
    upload: Option<&UploadProgress>,
) -> HeaderTimedOut {
    let from = match upload {
        Some(upload) => upload.finished().await,
        None => started,
    };
    match from.checked_add(timeout) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
    HeaderTimedOut {
        timeout,
        after_upload: upload.is_some(),
    }
}

impl HeaderTimedOut {
    /// Classifies the timeout as a stall before the response headers, which
    /// is retried like any request timeout. `connect_timeout` is the
    /// client's, when the middleware has it.
    pub(crate) fn classify(self, connect_timeout: Option<Duration>) -> Classified {
        // Started with the attempt, the timeout also covers the connect,
        // unless the client's connect timeout would have ended a stalled
        // connect first.
        let note = if self.after_upload {
            None
        } else {
            AmbiguityNote::before_headers(connect_timeout, self.timeout)
        };
        Classified {
            failure: Failure {
                phase: Phase::Headers,
                diagnosis: Diagnosis::ServerStalled,
                timed_out: true,
                limit: Some(Limit::ResponseHeaderTimeout(self.timeout)),
                note,
                source: Some(Arc::new(self)),
                progress: None,
                connect_addr: None,
                redirected: false,
                retryable: true,
                evidence: Vec::new(),
                probe: None,
            },
            not_sent: false,
        }
    }
}

impl fmt::Display for HeaderTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = if self.after_upload {
            "the request body was sent"
        } else {
            "the attempt started"
        };
        write!(
            f,
            "no response headers within {} after {start}",
            DisplayDuration(self.timeout)
        )
    }
}

impl StdError for HeaderTimedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_timeout_from_the_attempt_start() {
        let started = Instant::now();

        let result =
            within_header_timeout(Some(200 * MS), started, None, std::future::pending::<()>())
                .await;

        let timed_out = result.unwrap_err();
        assert_eq!(started.elapsed(), 200 * MS);
        let classified = timed_out.classify(None);
        assert_eq!(classified.failure.phase, Phase::Headers);
        assert_eq!(
            classified.failure.limit,
            Some(Limit::ResponseHeaderTimeout(200 * MS))
        );
        assert_eq!(
            classified.failure.note,
            Some(AmbiguityNote::ConnectOrHeaders)
        );
        assert!(classified.failure.retryable);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_in_time_win() {
        let started = Instant::now();
        let exchange = async {
            tokio::time::sleep(150 * MS).await;
            "response"
        };

        let result = within_header_timeout(Some(200 * MS), started, None, exchange).await;

        assert_eq!(result, Ok("response"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_waits_for_the_exchange() {
        let started = Instant::now();
        let exchange = async {
            tokio::time::sleep(10_000 * MS).await;
            "response"
        };

        let result = within_header_timeout(None, started, None, exchange).await;

        assert_eq!(result, Ok("response"));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_starts_when_the_upload_ends() {
        let started = Instant::now();
        let upload = std::sync::Arc::new(UploadProgress::new(started, Some(10)));
        let finisher = tokio::spawn({
            let upload = std::sync::Arc::clone(&upload);
            async move {
                tokio::time::sleep(300 * MS).await;
                upload.finish(Instant::now());
            }
        });

        let result = within_header_timeout(
            Some(200 * MS),
            started,
            Some(&upload),
            std::future::pending::<()>(),
        )
        .await;

        finisher.await.unwrap();
        assert_eq!(started.elapsed(), 500 * MS);
        assert_eq!(result.unwrap_err().classify(None).failure.note, None);
    }

    #[test]
    fn message_says_when_the_timeout_started() {
        let after_upload = HeaderTimedOut {
            timeout: 2_000 * MS,
            after_upload: true,
        };

        assert_eq!(
            after_upload.to_string(),
            "no response headers within 2s after the request body was sent"
        );
        assert_eq!(after_upload.classify(None).failure.note, None);
    }

    #[test]
    fn shorter_connect_timeout_rules_out_a_stalled_connect() {
        let timed_out = HeaderTimedOut {
            timeout: 500 * MS,
            after_upload: false,
        };

        let known_shorter = timed_out.classify(Some(100 * MS));
        let known_longer = timed_out.classify(Some(800 * MS));
        let unknown = timed_out.classify(None);

        assert_eq!(known_shorter.failure.note, None);
        assert_eq!(known_shorter.failure.diagnosis, Diagnosis::ServerStalled);
        assert_eq!(
            known_longer.failure.note,
            Some(AmbiguityNote::ConnectTimeoutNotShorter)
        );
        assert_eq!(unknown.failure.note, Some(AmbiguityNote::ConnectOrHeaders));
    }
}
