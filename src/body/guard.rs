//! The response body guard: a wrapper around a response body that enforces
//! the idle and throughput limits while the body is read, and turns every
//! failure of the body into a diagnosed failure in [`Phase::Body`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::settings::BodySettings;
use super::watch::{BodyWatch, EndedEarly, Stall};
use crate::attempt::{AttemptOutcome, AttemptRecord, ErrorText, StopReason};
use crate::classify::{self, classify_error, classify_timeout, Classified};
use crate::deadline::AttemptLimit;
use crate::diagnosis::Diagnosis;
use crate::error::{Error, Failure};
use crate::format::DisplayDuration;
use crate::phase::Phase;
use crate::target::Target;

/// Facts about the call and the attempt, from which the guard builds a
/// diagnosed error when a body fails after the middleware returned the
/// response.
#[derive(Debug)]
pub(crate) struct BodyContext {
    method: Method,
    target: Target,
    /// Every attempt of the call, this one last; shared with the
    /// response's [`Attempts`](crate::Attempts).
    history: Arc<[AttemptRecord]>,
    call_started: Instant,
    attempt_started: Instant,
    limit: AttemptLimit,
    /// Whether the request may be sent again after it reached the server,
    /// which decides whether a later call is safe after the body failed.
    may_resend: bool,
    /// The middleware's span for the call, so that a failure logged while
    /// the caller reads the body names the call.
    span: tracing::Span,
}

impl BodyContext {
    /// Returns what the classifier needs to know about this attempt, which
    /// ran for `elapsed`.
    fn classify_context(&self, elapsed: std::time::Duration) -> classify::AttemptContext<'_> {
        classify::AttemptContext {
            limit: &self.limit,
            elapsed,
            target: &self.target,
            // Body failures happen after the connection was open.
            connect_timeout: None,
        }
    }

    pub(crate) fn new(
        method: &Method,
        target: &Target,
        history: Arc<[AttemptRecord]>,
        call_started: Instant,
        attempt_started: Instant,
        limit: AttemptLimit,
        may_resend: bool,
    ) -> Self {
        BodyContext {
            method: method.clone(),
            target: target.clone(),
            history,
            call_started,
            attempt_started,
            limit,
            may_resend,
            span: tracing::Span::current(),
        }
    }

    /// Returns whether the request is a `HEAD` request, whose response has
    /// no body.
    pub(crate) fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// Returns when the attempt's limit ends, or `None` when that is beyond
    /// what an `Instant` can hold.
    pub(crate) fn attempt_end(&self) -> Option<Instant> {
        self.attempt_started.checked_add(self.limit.budget)
    }
}

/// A response body under the guard.
///
/// Reading it yields the body's frames, or a [`Classified`] failure in
/// [`Phase::Body`] with the body's progress. After a failure the inner body
/// is dropped, which releases its connection, and the body ends.
#[derive(Debug)]
pub(crate) struct GuardedBody {
    inner: Option<reqwest::Body>,
    watch: BodyWatch,
    /// When the attempt's limit ends, or `None` when that is beyond what an
    /// `Instant` can hold.
    attempt_end: Option<Instant>,
    /// Fires at the attempt's end or at the next check of the idle or
    /// throughput limit, whichever comes first. Made at the first wait for
    /// data, so that a body that is there when the caller reads it costs no
    /// timer, and reset, not re-created, after each check. The attempt's end
    /// is also checked for each piece of data.
    timer: Option<Pin<Box<Sleep>>>,
    /// Set while buffered mode reads the body within the attempt, when the
    /// reader is the middleware rather than the caller.
    pub(crate) buffering: bool,
    context: BodyContext,
}

impl GuardedBody {
    /// Wraps `inner`, a body whose headers arrived at `now`.
    pub(crate) fn new(
        inner: reqwest::Body,
        settings: &BodySettings,
        expected_len: Option<u64>,
        context: BodyContext,
        now: Instant,
    ) -> Self {
        GuardedBody {
            inner: Some(inner),
            watch: BodyWatch::new(settings, expected_len, now),
            attempt_end: context.attempt_end(),
            timer: None,
            buffering: false,
            context,
        }
    }

    /// Polls the next frame of the body, checking the limits while the
    /// caller waits for data.
    pub(crate) fn poll_guarded(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Classified>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    // Checked for every piece, because a body whose data is
                    // always there when the caller reads it never waits, so
                    // the timer alone would never end it.
                    let now = Instant::now();
                    if self.attempt_end.is_some_and(|end| now >= end) {
                        return Poll::Ready(Some(Err(self.fail_attempt_limit(now, true))));
                    }
                    if self.watch.is_waiting() {
                        self.watch.end_wait(now);
                    }
                    self.watch.record(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(self.fail_with(error)))),
            // hyper ends a body cleanly when the server ends its HTTP/2
            // stream with NO_ERROR, by a reset or a GOAWAY, even when the body
            // is incomplete.
            Poll::Ready(None) => match self.watch.ended_early() {
                Some(ended_early) => Poll::Ready(Some(Err(self.fail_ended_early(ended_early)))),
                None => Poll::Ready(None),
            },
            Poll::Pending => self.poll_limits(cx),
        }
    }

    /// Starts or continues a wait for data and fires a limit that is due.
    fn poll_limits(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Classified>>> {
        if !self.watch.is_waiting() {
            let now = Instant::now();
            self.watch.start_wait(now);
            if self.timer.is_none() {
                let Some(first) = earliest(self.watch.next_check(now), self.attempt_end) else {
                    return Poll::Pending;
                };
                self.timer = Some(Box::pin(tokio::time::sleep_until(first)));
            }
        }
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        // The timer may fire for a check that is no longer due, for instance
        // because data arrived since it was set. Then the check returns the
        // next instant, and the timer is reset to it.
        let (stall, now) = loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if self.attempt_end.is_some_and(|end| now >= end) {
                return Poll::Ready(Some(Err(self.fail_attempt_limit(now, false))));
            }
            match self.watch.check(now) {
                Ok(next) => match earliest(next, self.attempt_end) {
                    Some(next) => timer.as_mut().reset(next),
                    None => return Poll::Pending,
                },
                Err(stall) => break (stall, now),
            }
        };
        Poll::Ready(Some(Err(self.fail_stalled(stall, now))))
    }

    /// Classifies an error of the inner body: a broken connection, or a
    /// timeout of reqwest, such as the client's own `timeout`.
    fn fail_with(&mut self, error: reqwest::Error) -> Classified {
        self.inner = None;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.context.attempt_started);
        let attempt = self.context.classify_context(elapsed);
        let mut classified = classify_error(reqwest_middleware::Error::Reqwest(error), &attempt);
        if classified.failure.timed_out {
            self.diagnose_timeout(&mut classified.failure, now, false);
        }
        self.finish(classified, now)
    }

    /// Returns the failure for the attempt's limit ending the body read at
    /// `now`, at a poll that found data when `data_ready` is set.
    fn fail_attempt_limit(&mut self, now: Instant, data_ready: bool) -> Classified {
        self.inner = None;
        let elapsed = now.saturating_duration_since(self.context.attempt_started);
        let mut classified = classify_timeout(&self.context.classify_context(elapsed));
        self.diagnose_timeout(&mut classified.failure, now, data_ready);
        self.finish(classified, now)
    }

    /// Returns the failure for a body that ended before its announced
    /// length.
    fn fail_ended_early(&mut self, ended_early: EndedEarly) -> Classified {
        self.inner = None;
        let classified = Classified {
            failure: Failure {
                phase: Phase::Body,
                diagnosis: Diagnosis::ConnectionClosed,
                timed_out: false,
                limit: None,
                note: None,
                source: Some(Arc::new(ended_early)),
                progress: None,
                connect_addr: None,
                redirected: false,
                retryable: true,
                evidence: vec![
                    "the server ended the response before the length in its Content-Length header: over HTTP/2, a stream reset or GOAWAY with NO_ERROR ends a body without an error".to_owned(),
                ],
                probe: None,
            },
            not_sent: false,
        };
        self.finish(classified, Instant::now())
    }

    fn fail_stalled(&mut self, stall: Stall, now: Instant) -> Classified {
        self.inner = None;
        let classified = Classified {
            failure: Failure {
                phase: Phase::Body,
                diagnosis: Diagnosis::BodyStalled,
                timed_out: true,
                limit: Some(stall.limit()),
                note: None,
                source: Some(Arc::new(stall)),
                progress: None,
                connect_addr: None,
                redirected: false,
                retryable: true,
                evidence: Vec::new(),
                probe: None,
            },
            not_sent: false,
        };
        self.finish(classified, now)
    }

    /// Sets the diagnosis of a limit that fired at `now`, at a poll that found
    /// data when `data_ready` is set.
    ///
    /// It is `TimeoutTooShort` when no read of the caller's was waiting for data.
    /// It is also `TimeoutTooShort` when data came as the limit fired or still
    /// flowed steadily, because then the limit was too short for the transfer at
    /// the pace it was read. It is `BodyStalled` when the body went silent while
    /// the caller waited. A poll that finds data long after the guard's timer
    /// fired is ambiguous: the caller may have dropped its read, as
    /// `tokio::time::timeout` and `select!` do, or a busy runtime may have woken
    /// it late. The evidence then names both causes, and the diagnosis follows
    /// the body's progress before the limit.
    fn diagnose_timeout(&self, failure: &mut Failure, now: Instant, data_ready: bool) {
        // In buffered mode the middleware itself reads, so the caller is
        // never away.
        if !self.buffering && !self.watch.is_waiting() {
            failure.diagnosis = Diagnosis::TimeoutTooShort;
            failure.evidence.push(
                "the limit ran out while the caller was not reading the body, so its data may have been waiting to be read"
                    .to_owned(),
            );
            return;
        }
        let late = self.time_since_timer(now).filter(|late| *late > ABSENCE);
        failure.diagnosis = if (data_ready && late.is_none()) || self.watch.was_flowing(now) {
            Diagnosis::TimeoutTooShort
        } else {
            Diagnosis::BodyStalled
        };
        if let Some(late) = late.filter(|_| data_ready) {
            let cause = if self.buffering {
                "the runtime was too busy to read it"
            } else {
                "the caller had stopped reading, or the runtime was too busy to wake it"
            };
            failure.evidence.push(format!(
                "data was waiting when the body was read again, {} after the limit fired: {cause}",
                DisplayDuration(late)
            ));
        }
    }

    /// Returns how long ago the guard's timer fired, or `None` when it has no
    /// timer or the timer is not due.
    fn time_since_timer(&self, now: Instant) -> Option<Duration> {
        let deadline = self.timer.as_ref()?.deadline();
        now.checked_duration_since(deadline)
    }

    /// Marks a failure as one of the response body, with its progress. The
    /// server received the request, since it sent a response.
    fn finish(&self, mut classified: Classified, now: Instant) -> Classified {
        classified.failure.phase = Phase::Body;
        classified.failure.note = None;
        classified.failure.progress = Some(self.watch.progress(now));
        classified.not_sent = false;
        classified
    }

    /// Turns a failure of a body that the caller reads into the error the
    /// caller gets: an [`io::Error`] around the diagnosed [`Error`], of kind
    /// `TimedOut` when a limit fired, which reqwest's `is_timeout` looks for.
    fn caller_error(&self, classified: Classified) -> io::Error {
        let now = Instant::now();
        let context = &self.context;
        let failure = classified.failure;
        let mut history = context.history.to_vec();
        if let Some(last) = history.last_mut() {
            last.outcome = AttemptOutcome::Failed {
                phase: failure.phase,
                diagnosis: failure.diagnosis,
                timed_out: failure.timed_out,
            };
            last.duration = now.saturating_duration_since(context.attempt_started);
            last.fired = failure.limit.filter(|_| failure.timed_out);
            last.error = failure.source.clone().map(ErrorText::new);
        }
        let kind = if failure.timed_out {
            io::ErrorKind::TimedOut
        } else {
            io::ErrorKind::Other
        };
        // The server responded, so it received the request. Another call
        // is safe only for a request that may be sent twice.
        let stop = if context.may_resend {
            StopReason::Streaming
        } else {
            StopReason::NotIdempotent(context.method.clone())
        };
        let error = Error::new(
            context.method.clone(),
            context.target.clone(),
            failure,
            history,
            now.saturating_duration_since(context.call_started),
            stop,
        );
        tracing::debug!(
            parent: &context.span,
            reason = error.diagnosis().code(),
            phase = error.phase().as_str(),
            bytes = error.body_progress().map(|progress| progress.bytes()),
            "response body failed after the response was returned"
        );
        io::Error::new(kind, error)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }
}

/// How late after the guard's timer a poll that finds data must come for
/// the diagnosis to say that the caller may have stopped reading. Timers fire
/// within a few milliseconds, even with thousands of them at once.
const ABSENCE: Duration = Duration::from_millis(50);

/// Returns the earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A guarded body as the caller reads it, after the middleware returned the
/// response, optionally preceded by bytes that buffered mode read before it
/// gave up buffering.
#[derive(Debug)]
pub(crate) struct StreamedBody {
    prefix: Option<Bytes>,
    guard: GuardedBody,
}

impl StreamedBody {
    pub(crate) fn new(guard: GuardedBody, prefix: Option<Bytes>) -> Self {
        StreamedBody {
            prefix: prefix.filter(|prefix| !prefix.is_empty()),
            guard,
        }
    }
}

impl HttpBody for StreamedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match this.guard.poll_guarded(cx) {
            Poll::Ready(Some(Err(failure))) => {
                Poll::Ready(Some(Err(this.guard.caller_error(failure))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.guard.size_hint();
        let Some(prefix) = &self.prefix else {
            return hint;
        };
        let extra = prefix.len() as u64;
        let mut total = SizeHint::new();
        total.set_lower(hint.lower().saturating_add(extra));
        if let Some(upper) = hint.upper() {
            total.set_upper(upper.saturating_add(extra));
        }
        total
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.guard.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use reqwest::Url;
    use tokio::sync::mpsc;

    use super::*;
    use crate::body::settings::MinThroughput;
    use crate::limit::Limit;

    const MS: Duration = Duration::from_millis(1);

    /// A response body fed by the test, one chunk per message; it stays open
    /// while the sender lives.
    struct ChannelBody(mpsc::UnboundedReceiver<&'static [u8]>);

    impl HttpBody for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok(Frame::data(Bytes::from_static(chunk)))))
        }
    }

    fn guarded(settings: BodySettings) -> (mpsc::UnboundedSender<&'static [u8]>, GuardedBody) {
        guarded_with_len(settings, None)
    }

    /// Returns a guarded body of `expected_len` bytes, as the response's
    /// headers announce it, and the sender of its data.
    fn guarded_with_len(
        settings: BodySettings,
        expected_len: Option<u64>,
    ) -> (mpsc::UnboundedSender<&'static [u8]>, GuardedBody) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let now = Instant::now();
        let limit = AttemptLimit {
            budget: 10_000 * MS,
            fires_as: Limit::AttemptTimeout(10_000 * MS),
        };
        let record = AttemptRecord {
            number: 1,
            started_after: Duration::ZERO,
            duration: Duration::ZERO,
            limit: limit.budget,
            fired: None,
            outcome: AttemptOutcome::Response(http::StatusCode::OK),
            retry_after: None,
            wait_after: None,
            error: None,
        };
        let url = Url::parse("http://localhost:8080/download").unwrap();
        let context = BodyContext::new(
            &Method::GET,
            &Target::from_url(&url),
            Arc::from([record]),
            now,
            now,
            limit,
            true,
        );
        let body = reqwest::Body::wrap(ChannelBody(receiver));
        let guard = GuardedBody::new(body, &settings, expected_len, context, now);
        (sender, guard)
    }

    async fn next(guard: &mut GuardedBody) -> Option<Result<Frame<Bytes>, Classified>> {
        std::future::poll_fn(|cx| guard.poll_guarded(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_counts_from_the_last_data() {
        let settings = BodySettings {
            idle_timeout: Some(500 * MS),
            ..BodySettings::default()
        };
        let (sender, mut guard) = guarded(settings);
        let start = Instant::now();
        sender.send(b"abc").unwrap();
        let feeder = tokio::spawn({
            let sender = sender.clone();
            async move {
                tokio::time::sleep(300 * MS).await;
                sender.send(b"de").unwrap();
            }
        });

        let first = next(&mut guard).await;
        let second = next(&mut guard).await;
        let third = next(&mut guard).await;

        feeder.await.unwrap();
        assert!(matches!(first, Some(Ok(_))));
        assert!(matches!(second, Some(Ok(_))));
        let Some(Err(failure)) = third else {
            panic!("expected the idle timeout to fire");
        };
        assert_eq!(start.elapsed(), 800 * MS);
        assert_eq!(failure.failure.phase, Phase::Body);
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        assert_eq!(
            failure.failure.limit,
            Some(Limit::BodyIdleTimeout(500 * MS))
        );
        assert!(failure.failure.retryable);
        assert!(!failure.not_sent);
        let progress = failure.failure.progress.unwrap();
        assert_eq!(progress.bytes(), 5);
        assert_eq!(progress.elapsed(), 800 * MS);
        assert!(
            next(&mut guard).await.is_none(),
            "the body ends after a failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_limit_ends_silent_body() {
        let (sender, mut guard) = guarded(BodySettings::default());
        let start = Instant::now();
        sender.send(b"abc").unwrap();

        let first = next(&mut guard).await;
        let second = next(&mut guard).await;

        assert!(matches!(first, Some(Ok(_))));
        let Some(Err(failure)) = second else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(start.elapsed(), 10_000 * MS);
        assert_eq!(failure.failure.phase, Phase::Body);
        assert_eq!(
            failure.failure.limit,
            Some(Limit::AttemptTimeout(10_000 * MS))
        );
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        assert_eq!(failure.failure.progress.unwrap().bytes(), 3);
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_limit_ends_slow_reader() {
        let (sender, mut guard) = guarded(BodySettings::default());
        let start = Instant::now();
        let mut pieces = 0;

        // The data is always there when the caller reads, but the caller
        // spends 1 s on each piece.
        let failure = loop {
            sender.send(b"0123456789").unwrap();
            match next(&mut guard).await {
                Some(Ok(_)) => pieces += 1,
                Some(Err(failure)) => break failure,
                None => panic!("the body ended without a failure"),
            }
            tokio::time::sleep(1_000 * MS).await;
        };

        assert_eq!(start.elapsed(), 10_000 * MS);
        assert_eq!(pieces, 10);
        assert_eq!(
            failure.failure.limit,
            Some(Limit::AttemptTimeout(10_000 * MS))
        );
        assert_eq!(failure.failure.phase, Phase::Body);
        assert_eq!(failure.failure.diagnosis, Diagnosis::TimeoutTooShort);
        assert!(
            failure.failure.evidence[0].contains("not reading the body"),
            "{:?}",
            failure.failure.evidence
        );
        assert_eq!(failure.failure.progress.unwrap().bytes(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_read_then_absence_is_ambiguous() {
        let (sender, mut guard) = guarded(BodySettings::default());

        // One read finds no data and is cut short by its caller, who then
        // does something else for longer than the attempt's limit.
        let cut_short = tokio::time::timeout(10 * MS, next(&mut guard)).await;
        sender.send(b"abc").unwrap();
        tokio::time::sleep(10_500 * MS).await;
        let failure = next(&mut guard).await;

        assert!(cut_short.is_err(), "the first read found data");
        let Some(Err(failure)) = failure else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(
            failure.failure.limit,
            Some(Limit::AttemptTimeout(10_000 * MS))
        );
        // A busy runtime that wakes a waiting caller late looks the same,
        // so the evidence names both causes.
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        assert_eq!(
            failure.failure.evidence,
            [
                "data was waiting when the body was read again, 510ms after the limit fired: \
              the caller had stopped reading, or the runtime was too busy to wake it"
            ]
        );
    }

    /// Polls `guard` once with a waker that does nothing, as a read that its
    /// caller then drops would.
    fn poll_once(guard: &mut GuardedBody) -> Poll<Option<Result<Frame<Bytes>, Classified>>> {
        guard.poll_guarded(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn late_poll_without_data_is_stalled() {
        let (sender, mut guard) = guarded(BodySettings::default());
        assert!(poll_once(&mut guard).is_pending());

        // A busy runtime polls the waiting caller long after the timer fired.
        tokio::time::advance(10_100 * MS).await;
        let polled = poll_once(&mut guard);

        let Poll::Ready(Some(Err(failure))) = polled else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        assert!(failure.failure.evidence.is_empty());
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn data_ready_after_limit_is_too_short() {
        let (sender, mut guard) = guarded(BodySettings::default());
        assert!(poll_once(&mut guard).is_pending());

        // The caller dropped its read; the data arrived, and the caller came
        // back just after the limit.
        sender.send(b"abc").unwrap();
        tokio::time::advance(10_030 * MS).await;
        let polled = poll_once(&mut guard);

        let Poll::Ready(Some(Err(failure))) = polled else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(failure.failure.diagnosis, Diagnosis::TimeoutTooShort);
        assert!(failure.failure.evidence.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn buffered_reader_is_never_away() {
        let (sender, mut guard) = guarded(BodySettings::default());
        guard.buffering = true;
        sender.send(b"abc").unwrap();

        tokio::time::advance(10_100 * MS).await;
        let polled = poll_once(&mut guard);

        let Poll::Ready(Some(Err(failure))) = polled else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(failure.failure.diagnosis, Diagnosis::TimeoutTooShort);
        assert!(
            failure.failure.evidence.is_empty(),
            "{:?}",
            failure.failure.evidence
        );
    }

    #[tokio::test(start_paused = true)]
    async fn buffered_late_poll_blames_no_caller() {
        let (sender, mut guard) = guarded(BodySettings::default());
        guard.buffering = true;
        assert!(poll_once(&mut guard).is_pending());

        // The server sends after the limit, and a busy runtime polls late.
        sender.send(b"abc").unwrap();
        tokio::time::advance(10_100 * MS).await;
        let polled = poll_once(&mut guard);

        let Poll::Ready(Some(Err(failure))) = polled else {
            panic!("expected the attempt limit to fire");
        };
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        assert_eq!(
            failure.failure.evidence,
            [
                "data was waiting when the body was read again, 100ms after the limit fired: \
              the runtime was too busy to read it"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn short_body_fails_as_closed() {
        let (sender, mut guard) = guarded_with_len(BodySettings::default(), Some(10));
        sender.send(b"abc").unwrap();
        drop(sender);

        let first = next(&mut guard).await;
        let end = next(&mut guard).await;
        let after = next(&mut guard).await;

        assert!(matches!(first, Some(Ok(_))));
        let Some(Err(failure)) = end else {
            panic!("expected the short body to fail");
        };
        assert_eq!(failure.failure.phase, Phase::Body);
        assert_eq!(failure.failure.diagnosis, Diagnosis::ConnectionClosed);
        assert!(failure.failure.retryable);
        assert!(!failure.failure.timed_out);
        assert_eq!(
            failure.failure.source.map(|source| source.to_string()),
            Some(
                "the response body ended after 3 of the 10 bytes that its length announced"
                    .to_owned()
            )
        );
        assert_eq!(
            failure.failure.progress.map(|progress| progress.bytes()),
            Some(3)
        );
        assert!(after.is_none(), "the body goes on after its failure");
    }

    #[tokio::test(start_paused = true)]
    async fn body_of_its_full_length_ends_cleanly() {
        let (sender, mut guard) = guarded_with_len(BodySettings::default(), Some(3));
        sender.send(b"abc").unwrap();
        drop(sender);

        let first = next(&mut guard).await;
        let end = next(&mut guard).await;

        assert!(matches!(first, Some(Ok(_))));
        assert!(end.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn body_that_never_waits_arms_no_timer() {
        let settings = BodySettings {
            idle_timeout: Some(500 * MS),
            ..BodySettings::default()
        };
        let (sender, mut guard) = guarded(settings);
        sender.send(b"abc").unwrap();
        drop(sender);

        let first = next(&mut guard).await;
        let end = next(&mut guard).await;

        assert!(matches!(first, Some(Ok(_))));
        assert!(end.is_none());
        assert!(guard.timer.is_none(), "a timer was armed for ready data");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_body_fails_min_throughput_after_grace() {
        let min = MinThroughput::new(1_000)
            .with_window(1_000 * MS)
            .with_grace_period(1_000 * MS);
        let settings = BodySettings {
            min_throughput: Some(min),
            ..BodySettings::default()
        };
        let (sender, mut guard) = guarded(settings);
        let start = Instant::now();
        // Ten bytes every 100 ms: 100 B/s.
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(100 * MS).await;
                if sender.send(b"0123456789").is_err() {
                    break;
                }
            }
        });

        let failure = loop {
            match next(&mut guard).await {
                Some(Ok(_)) => continue,
                Some(Err(failure)) => break failure,
                None => panic!("the body ended without a failure"),
            }
        };

        drop(guard);
        feeder.await.unwrap();
        assert_eq!(start.elapsed(), 1_000 * MS);
        assert_eq!(failure.failure.limit, Some(Limit::MinBodyThroughput(min)));
        assert_eq!(failure.failure.diagnosis, Diagnosis::BodyStalled);
        let source = failure.failure.source.unwrap().to_string();
        assert!(
            source.contains("below the minimum of 1000 B/s over 1s"),
            "{source}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fast_body_passes_min_throughput() {
        let min = MinThroughput::new(100)
            .with_window(200 * MS)
            .with_grace_period(Duration::ZERO);
        let settings = BodySettings {
            idle_timeout: Some(100 * MS),
            min_throughput: Some(min),
            ..BodySettings::default()
        };
        let (sender, mut guard) = guarded(settings);
        let feeder = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(50 * MS).await;
                sender.send(b"0123456789").unwrap();
            }
        });

        let mut received = 0;
        while let Some(frame) = next(&mut guard).await {
            let frame = frame
                .unwrap_or_else(|failure| panic!("200 B/s failed: {:?}", failure.failure.source));
            received += frame.into_data().map_or(0, |data| data.len());
        }

        feeder.await.unwrap();
        assert_eq!(received, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn streamed_failure_is_timed_out_io_error() {
        let settings = BodySettings {
            idle_timeout: Some(200 * MS),
            ..BodySettings::default()
        };
        let (sender, guard) = guarded(settings);
        sender.send(b"abc").unwrap();
        let body = reqwest::Body::wrap(StreamedBody::new(guard, Some(Bytes::from_static(b"12"))));

        let error = body.collect().await.unwrap_err();

        assert!(error.is_timeout(), "{error:?}");
        let found = Error::find(&error).expect("the diagnosed error is in the chain");
        assert_eq!(found.phase(), Phase::Body);
        assert_eq!(found.stop_reason(), &StopReason::Streaming);
        assert_eq!(
            found.body_progress().map(|progress| progress.bytes()),
            Some(3)
        );
        assert_eq!(
            found.history()[0].outcome(),
            AttemptOutcome::Failed {
                phase: Phase::Body,
                diagnosis: Diagnosis::BodyStalled,
                timed_out: true,
            }
        );
        drop(sender);
    }

    #[tokio::test]
    async fn prefix_comes_first_and_counts_in_the_size() {
        let (sender, guard) = guarded(BodySettings::default());
        sender.send(b"cd").unwrap();
        drop(sender);
        let body = StreamedBody::new(guard, Some(Bytes::from_static(b"ab")));
        let lower = body.size_hint().lower();

        let collected = body.collect().await.unwrap().to_bytes();

        assert_eq!(collected.as_ref(), b"abcd");
        assert_eq!(lower, 2);
    }
}
