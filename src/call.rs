//! The attempt loop of one call: run an attempt, classify its outcome,
//! then retry after a wait or stop.

use std::future::Future;
use std::iter;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::Next;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, Timeout};

use crate::attempt::{AttemptOutcome, AttemptRecord, Attempts, ErrorText, StopReason};
use crate::backoff::Schedule;
use crate::body::{self, HeaderTimedOut, UploadProgress};
use crate::classify::{classify_error, classify_timeout, AttemptContext, Classified};
use crate::deadline::{AttemptLimit, Deadline};
use crate::diagnosis::Diagnosis;
use crate::error::{AmbiguityNote, Error, Failure};
use crate::first_hop::{self, Failed, Hop};
use crate::format::DisplayDuration;
use crate::host_state::HostState;
use crate::limit::Limit;
use crate::middleware::{Config, MarkedExtensions};
use crate::phase::Phase;
use crate::policy::is_retryable_status;
use crate::replay::{buffer_small_body, has_streamed_body};
use crate::retry_after::parse_retry_after;
use crate::target::Target;
use crate::{pattern, probe};

/// The state of one call through the middleware.
pub(crate) struct Call<'c> {
    pub(crate) config: &'c Config,
    pub(crate) attempt_timeout: Duration,
    pub(crate) max_retries: u32,
    /// Whether the request may be sent again after it may have reached the
    /// server: its method is idempotent, it has an `Idempotency-Key`, or the
    /// user opted in.
    pub(crate) may_resend: bool,
    pub(crate) deadline: Deadline,
    pub(crate) method: Method,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) target: Target,
    /// The state of the target's host and port, shared with other calls.
    pub(crate) host: Arc<HostState>,
    pub(crate) history: Vec<AttemptRecord>,
    /// The waits between attempts, made at the first backoff.
    pub(crate) schedule: Option<Box<Schedule>>,
}

/// An attempt in flight: what the call needs once its exchange ends.
struct Attempt {
    /// The number of attempts before this one.
    retry: u32,
    started: Instant,
    limit: AttemptLimit,
    upload: Option<Arc<UploadProgress>>,
    /// Whether the request can be sent again after this attempt.
    resendable: bool,
}

impl Attempt {
    /// Returns `exchange` under the attempt's limit, counted from the
    /// attempt's start.
    fn limit_timer<F: Future>(&self, exchange: F) -> Timeout<F> {
        match self.started.checked_add(self.limit.budget) {
            Some(end) => tokio::time::timeout_at(end, exchange),
            None => tokio::time::timeout(self.limit.budget, exchange),
        }
    }
}

/// The end of an attempt in buffered mode: the reading of the response
/// body, then the result and the record of the attempt.
type BufferedEnd<'c> =
    Pin<Box<dyn Future<Output = (Result<Response, Classified>, AttemptRecord)> + Send + 'c>>;

/// The call's next step after an attempt, as its future takes it.
enum After<'s> {
    /// A wait of this long before the next attempt.
    Wait(Duration),
    /// The response that ends the call.
    Respond(Response),
    /// The slow path of a failure, which places the failure at its hop when
    /// needed, decides, and explains the failure when the call ends with it.
    /// It returns the wait before the next attempt or the call's error.
    /// Boxed, because the lookup's and the probe's state would otherwise
    /// enlarge every call's future past the sizes that the allocator serves
    /// fastest.
    Explain(Pin<Box<dyn Future<Output = reqwest_middleware::Result<Duration>> + Send + 's>>),
}

/// The call's next step after a failed attempt.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per failed attempt and taken apart at once; a box would only add an allocation"
)]
enum AfterFailure {
    /// A wait of this long before the next attempt.
    Retry(Duration),
    /// The failure that ends the call, and the reason no attempt follows.
    GiveUp(Failure, StopReason),
}

/// The retry decision after an attempt, which [`Call::conclude`] turns into
/// an [`After`].
enum Decision {
    /// Wait, then send the request again.
    Retry {
        wait: Duration,
    },
    Stop(StopReason),
}

impl<'c> Call<'c> {
    /// Returns the future that runs the call's attempts. When `buffer_body`
    /// is set, the future first reads a streamed request body of at most
    /// that many bytes, within that time, so that the request can be sent
    /// again.
    ///
    /// The future is an `async move` block rather than an `async fn`, which
    /// would keep each argument twice: as captured and as a local. `request`
    /// stays where it was captured for the whole call, and each attempt but
    /// the last one allowed sends a copy. The work between two `await`s is
    /// in plain methods, so that its locals take no room in the future.
    pub(crate) fn run<'a>(
        mut self,
        mut request: Request,
        buffer_body: Option<(usize, Duration)>,
        extensions: MarkedExtensions<'a>,
        next: Next<'a>,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'a
    where
        'c: 'a,
    {
        async move {
            if let Some((max_bytes, time_limit)) = buffer_body {
                request = Box::pin(buffer_small_body(request, max_bytes, time_limit)).await;
            }
            loop {
                let now = Instant::now();
                if self.deadline.remaining(now).is_zero() {
                    // Reading a streamed body into memory, or a total
                    // timeout of a few milliseconds on a busy runtime, can
                    // use up the budget before the first attempt. Retries
                    // always leave time to run.
                    let buffered = buffer_body.is_some();
                    return Err(self
                        .deadline_spent_before_first_attempt(now, buffered)
                        .into());
                }
                let (attempt, sent) = self.start_attempt(&mut request, now);
                let exchange = body::within_header_timeout(
                    self.config.body.response_header_timeout,
                    attempt.started,
                    attempt.upload.as_deref(),
                    next.clone().run(sent, &mut *extensions.0),
                );
                let outcome = attempt.limit_timer(exchange).await;
                // A block, so that the attempt's end takes no room in the
                // future while it waits before the next attempt.
                let wait = {
                    let (result, record) = if self.config.body.buffer {
                        self.end_buffered(outcome, &attempt).await
                    } else {
                        self.end_exchange(outcome, &attempt)
                    };
                    // Matched apart from the `await`, so that the response
                    // takes no room in the future while a failure is
                    // explained.
                    let slow = match self.conclude(result, record, &attempt) {
                        After::Wait(wait) => Ok(wait),
                        After::Respond(response) => return Ok(response),
                        After::Explain(slow) => Err(slow),
                    };
                    match slow {
                        Ok(wait) => wait,
                        Err(slow) => slow.await?,
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Starts an attempt: sets its limit on a copy of `request`, or on
    /// `request` itself when no retry may follow, and tracks the upload of
    /// its body. Returns the attempt and the request to send.
    fn start_attempt(&self, request: &mut Request, started: Instant) -> (Attempt, Request) {
        let limit =
            self.deadline
                .attempt_limit(started, self.attempt_timeout, self.request_timeout);
        let last = self.retries_so_far() >= self.max_retries;
        let (mut sent, resendable) = take_attempt(request, last);
        if sent.timeout().is_some() {
            // The request's own timeout is part of the limit, and lowering
            // it keeps reqwest from firing after the attempt ends. The check
            // comes first because `timeout_mut` inserts an extension.
            *sent.timeout_mut() = Some(limit.budget);
        }
        let upload = body::track_upload(&mut sent, &self.config.body, started);
        let attempt = Attempt {
            retry: self.retries_so_far(),
            started,
            limit,
            upload,
            resendable,
        };
        (attempt, sent)
    }

    /// Returns whether a failure before the request was written has to be
    /// placed at the first hop or elsewhere. A request that may not be sent
    /// twice needs that proof, and a failed address is worth naming.
    fn must_locate(&self, classified: &Classified) -> bool {
        let needs_proof = !self.may_resend && classified.failure.retryable;
        classified.not_sent && (needs_proof || classified.failure.connect_addr.is_some())
    }

    /// Returns what the call does after an attempt that ended with `result`,
    /// once the attempt is recorded.
    fn conclude<'s>(
        &'s mut self,
        result: Result<Response, Classified>,
        mut record: AttemptRecord,
        attempt: &'s Attempt,
    ) -> After<'s> {
        if self.config.body.buffer {
            // In buffered mode the attempt includes reading the body.
            record.duration = attempt.started.elapsed();
        }
        let failed = match result {
            Ok(response) => return self.after_response(response, record, attempt),
            Err(classified) if self.must_locate(&classified) => {
                return After::Explain(Box::pin(async move {
                    let mut classified = classified;
                    self.locate_failure(&mut classified).await;
                    match self.after_failure(classified, record, attempt) {
                        AfterFailure::Retry(wait) => Ok(wait),
                        AfterFailure::GiveUp(failure, stop) => {
                            Err(self.give_up(failure, stop).await)
                        }
                    }
                }));
            }
            Err(classified) => self.after_failure(classified, record, attempt),
        };
        match failed {
            AfterFailure::Retry(wait) => After::Wait(wait),
            AfterFailure::GiveUp(failure, stop) => {
                After::Explain(Box::pin(
                    async move { Err(self.give_up(failure, stop).await) },
                ))
            }
        }
    }

    /// Places a failure before the request was written at the request's own
    /// host and port or elsewhere. Only the first place keeps it as proof
    /// that nothing was sent.
    async fn locate_failure(&self, classified: &mut Classified) {
        let failure = &mut classified.failure;
        let budget = self
            .deadline
            .remaining(Instant::now())
            .min(self.attempt_timeout);
        let failed = match (failure.connect_addr, failure.limit) {
            (Some(addr), _) => Failed::Connect(addr),
            (None, Some(Limit::ClientConnectTimeout(connect_timeout))) => {
                Failed::ConnectTimeout(connect_timeout)
            }
            (None, _) if failure.phase == Phase::Dns => Failed::Lookup,
            (None, _) => Failed::Other,
        };
        let hop = first_hop::locate(&self.target, failed, budget).await;
        classified.not_sent = hop == Hop::First;
        let evidence = match (hop, failed) {
            (Hop::First, _) => return,
            (Hop::Redirected(addr), _) => {
                failure.redirected = true;
                match addr {
                    Some(addr) => format!(
                        "the connection that failed went to {addr}, not to the request's host and port: a redirect sent the request there after the server had received it, or the client connects through a proxy at that address"
                    ),
                    None => "the name lookup that failed was not for the request's host: a redirect sent the request to another host after the server had received it, or the client connects through a proxy".to_owned(),
                }
            }
            (Hop::Unknown, Failed::Connect(addr)) => {
                failure.redirected = true;
                format!(
                    "the connection that failed went to {addr}, which the middleware could not match to the request's host with the system resolver: a redirect or a proxy may have sent the request there, or the client resolves the name its own way"
                )
            }
            (Hop::Unknown, _) if !self.may_resend => "the failure may have come after a redirect, which the client follows within an attempt, so the server may have received the request".to_owned(),
            (Hop::Unknown, _) => return,
        };
        tracing::debug!(hop = ?hop, "placed a failure before the request was written");
        failure.evidence.insert(0, evidence);
    }

    /// Returns the response or the classified failure of an attempt whose
    /// exchange ended with `outcome`, and the attempt's record.
    fn end_exchange(
        &self,
        outcome: Result<ExchangeResult, Elapsed>,
        attempt: &Attempt,
    ) -> (Result<Response, Classified>, AttemptRecord) {
        let duration = attempt.started.elapsed();
        let mut record = AttemptRecord {
            number: attempt.retry + 1,
            started_after: self.deadline.elapsed(attempt.started),
            duration,
            limit: attempt.limit.budget,
            fired: None,
            outcome: AttemptOutcome::Response(StatusCode::OK),
            retry_after: None,
            wait_after: None,
            error: None,
        };
        let result = match outcome {
            Ok(Ok(Ok(response))) => {
                self.host.latency.record(duration);
                record.outcome = AttemptOutcome::Response(response.status());
                record.retry_after = self.retry_after(&response);
                // Without buffering, the guard goes around the body in
                // `deliver`, once the call is known to return this response.
                Ok(response)
            }
            Ok(Ok(Err(error))) => Err(classify_error(
                error,
                &self.attempt_context(&attempt.limit, duration),
            )),
            Ok(Err(header_timeout)) => {
                Err(header_timeout.classify(self.config.known_connect_timeout()))
            }
            Err(_elapsed) => Err(classify_timeout(
                &self.attempt_context(&attempt.limit, duration),
            )),
        };
        (result, record)
    }

    /// Returns what [`end_exchange`](Self::end_exchange) returns, in buffered
    /// mode, where a response's body is read within the attempt. Boxed, so
    /// that the buffering state does not enlarge the future of every call
    /// that streams its body.
    fn end_buffered(
        &self,
        outcome: Result<ExchangeResult, Elapsed>,
        attempt: &Attempt,
    ) -> BufferedEnd<'c> {
        let (result, record) = self.end_exchange(outcome, attempt);
        let response = match result {
            Ok(response) => response,
            Err(classified) => return Box::pin(std::future::ready((Err(classified), record))),
        };
        let history = self
            .history
            .iter()
            .cloned()
            .chain(iter::once(record.clone()))
            .collect();
        let context = self.body_context(history, attempt.started, attempt.limit);
        let config: &'c Config = self.config;
        Box::pin(async move {
            let result = body::buffer_within_attempt(response, &config.body, context).await;
            (result, record)
        })
    }

    /// Records an attempt that ended with a response, and decides whether
    /// the call returns it or waits and tries again.
    fn after_response(
        &mut self,
        response: Response,
        mut record: AttemptRecord,
        attempt: &Attempt,
    ) -> After<'static> {
        let status = response.status();
        match self.decide_after_status(status, record.retry_after, attempt.resendable) {
            Decision::Retry { wait } => {
                tracing::debug!(
                    http.request.resend_count = attempt.retry + 1,
                    http.response.status_code = status.as_u16(),
                    wait_ms = duration_ms(wait),
                    "retrying after a retryable status"
                );
                record.wait_after = Some(wait);
                self.history.push(record);
                After::Wait(wait)
            }
            Decision::Stop(stop) => After::Respond(self.deliver(response, record, stop, attempt)),
        }
    }

    /// Records a failed attempt and decides whether the call tries again.
    fn after_failure(
        &mut self,
        classified: Classified,
        mut record: AttemptRecord,
        attempt: &Attempt,
    ) -> AfterFailure {
        let classified = body::refine_after_upload(classified, attempt.upload.as_deref());
        record.outcome = AttemptOutcome::Failed {
            phase: classified.failure.phase,
            diagnosis: classified.failure.diagnosis,
            timed_out: classified.failure.timed_out,
        };
        record.error = classified.failure.source.clone().map(ErrorText::new);
        record.fired = classified
            .failure
            .limit
            .filter(|_| classified.failure.timed_out);
        match self.decide_after_error(&classified, attempt.resendable) {
            Decision::Retry { wait } => {
                tracing::debug!(
                    http.request.resend_count = attempt.retry + 1,
                    reason = classified.failure.diagnosis.code(),
                    phase = classified.failure.phase.as_str(),
                    wait_ms = duration_ms(wait),
                    "retrying after a failed attempt"
                );
                record.wait_after = Some(wait);
                self.history.push(record);
                AfterFailure::Retry(wait)
            }
            Decision::Stop(stop) => {
                self.history.push(record);
                AfterFailure::GiveUp(classified.failure, stop)
            }
        }
    }

    /// Returns the response that ends the call, with its attempts in its
    /// extensions and, unless buffered mode read it, its body under the
    /// guard.
    fn deliver(
        &mut self,
        mut response: Response,
        record: AttemptRecord,
        stop: StopReason,
        attempt: &Attempt,
    ) -> Response {
        let duration = record.duration;
        // Collected from an exact-size iterator, so this is the history's
        // only allocation on the success path.
        let history: Arc<[AttemptRecord]> =
            self.history.drain(..).chain(iter::once(record)).collect();
        let attempts = Attempts::new(Arc::clone(&history), stop);
        // Guarding first lets the insert below reuse the extension map of the
        // guard's rebuilt response.
        if !self.config.body.buffer {
            let context = self.body_context(history, attempt.started, attempt.limit);
            let headers_at = attempt.started.checked_add(duration);
            response = body::guard(response, &self.config.body, context, headers_at);
        }
        response.extensions_mut().insert(attempts);
        response
    }

    /// Returns the error that ends the call, after adding what the attempts
    /// and the active probe show.
    async fn give_up(
        &mut self,
        mut failure: Failure,
        stop: StopReason,
    ) -> reqwest_middleware::Error {
        let phase_of_last_attempt = failure.phase;
        self.explain(&mut failure).await;
        let moved_before_sending = failure.phase != phase_of_last_attempt
            && matches!(failure.phase, Phase::Dns | Phase::Connect | Phase::Tls);
        if moved_before_sending && matches!(stop, StopReason::NotIdempotent(_)) {
            // A failure in these phases usually proves that nothing was
            // sent, so the stop reason needs its own explanation here.
            failure.evidence.push(
                "the last attempt ended on a timer before the response headers, which does not prove that the request never reached the server, so it was not sent again"
                    .to_owned(),
            );
        }
        let elapsed = self.deadline.elapsed(Instant::now());
        let error = Error::new(
            self.method.clone(),
            self.target.clone(),
            failure,
            mem::take(&mut self.history),
            elapsed,
            stop,
        );
        tracing::debug!(
            reason = error.diagnosis().code(),
            attempts = error.attempts(),
            elapsed_ms = duration_ms(elapsed),
            "giving up"
        );
        error.into()
    }

    /// Adds what the attempts show together, and what the active probe
    /// finds, to the failure that ends the call.
    async fn explain(&self, failure: &mut Failure) {
        let recent = self.host.latency.slowest();
        let finding = pattern::assess(&self.history, recent);
        if let Some(diagnosis) = finding.diagnosis {
            failure.diagnosis = diagnosis;
        }
        if let Some(phase) = finding.phase {
            // The earlier attempts place the stall before the headers.
            failure.phase = phase;
            failure.note = None;
        }
        let probed = self.probe(failure).await;
        match finding.diagnosis {
            // The probe's diagnosis replaces the one this evidence was for.
            _ if probed == Probed::Rediagnosed => {}
            // The evidence for a new diagnosis comes first.
            Some(_) => {
                failure.evidence.splice(0..0, finding.evidence);
            }
            None => failure.evidence.extend(finding.evidence),
        }
    }

    /// Runs the active probe when it is on and can add to `failure`, and
    /// applies what it finds.
    async fn probe(&self, failure: &mut Failure) -> Probed {
        if !self.config.active_probe || !worth_probing(failure) {
            return Probed::No;
        }
        // The failed address, when it is not the request's own.
        let (host, port) = match (failure.redirected, failure.connect_addr) {
            (false, _) => match self.target.port() {
                Some(port) => (self.target.host().to_owned(), port),
                None => return Probed::No,
            },
            (true, Some(addr)) => (addr.ip().to_string(), addr.port()),
            (true, None) => return Probed::No,
        };
        let budget = self
            .deadline
            .remaining(Instant::now())
            .min(self.attempt_timeout);
        if budget < MIN_PROBE_TIME {
            return Probed::No;
        }
        let report = probe::probe(&host, port, budget).await;
        tracing::debug!(probe = %report, "probed the request's host and port");
        let before_headers = failure.note.is_some_and(AmbiguityNote::is_before_headers);
        if report.all_connected() && before_headers {
            // The server accepts connections, so a stalled TCP connect is
            // unlikely. A TLS handshake, which the probe does not try, may
            // still have stalled. A stalled connect to a redirect's target
            // stays possible for the other notes.
            failure.note = self
                .target
                .is_https()
                .then_some(AmbiguityNote::TlsOrHeaders);
        }
        let stalled_connect = matches!(
            failure.note,
            Some(AmbiguityNote::StalledConnect | AmbiguityNote::StalledLookupOrConnect)
        );
        // The probe's connects had at least the client's connect timeout,
        // so their timing out is as strong a sign as the client's.
        let probe_as_long = matches!(
            failure.limit,
            Some(Limit::ClientConnectTimeout(connect_timeout)) if budget >= connect_timeout
        );
        // The probe waited for its connects about as long as the last
        // attempt ran, which a client's own timeout may have ended early.
        // The time past the attempt's limit is the timer's lateness.
        let probe_as_long_as_attempt = self.history.last().is_some_and(|record| {
            let waited = record.duration.min(record.limit);
            budget.as_secs_f64() >= waited.as_secs_f64() * PROBE_AS_LONG_AS_ATTEMPT
        });
        let evidence = if stalled_connect && probe_as_long && report.connect_stalled() {
            "the probe's connects to the host timed out too, so the TCP connect stalled, not the other stages"
                .to_owned()
        } else if before_headers && probe_as_long_as_attempt && report.connect_stalled() {
            format!(
                "the probe's connects to the host did not complete within {} either, so the attempts most likely stalled while connecting, not while waiting for the response headers",
                DisplayDuration(budget)
            )
        } else {
            failure.probe = Some(report);
            return Probed::Ran;
        };
        failure.phase = Phase::Connect;
        failure.diagnosis = Diagnosis::ConnectTimedOut;
        failure.note = None;
        failure.evidence.push(evidence);
        failure.probe = Some(report);
        Probed::Rediagnosed
    }

    /// Returns the error of a call whose total timeout ran out before its
    /// first attempt could start, with nothing sent.
    fn deadline_spent_before_first_attempt(self, now: Instant, buffered: bool) -> Error {
        let evidence = if buffered {
            "the total timeout ran out while the request's streamed body was read into memory, before anything was sent"
        } else {
            "the total timeout ran out before the first attempt could start, so nothing was sent"
        };
        let failure = Failure {
            phase: Phase::Send,
            diagnosis: Diagnosis::Other,
            timed_out: true,
            limit: Some(Limit::TotalTimeout(self.deadline.total())),
            retryable: true,
            note: None,
            evidence: vec![evidence.to_owned()],
            probe: None,
            source: None,
            progress: None,
            connect_addr: None,
            redirected: false,
        };
        let elapsed = self.deadline.elapsed(now);
        Error::new(
            self.method,
            self.target,
            failure,
            self.history,
            elapsed,
            StopReason::Deadline,
        )
    }

    /// Returns what the body guard needs to diagnose a failure of the body
    /// of the attempt that started at `started`.
    fn body_context(
        &self,
        history: Arc<[AttemptRecord]>,
        started: Instant,
        limit: AttemptLimit,
    ) -> body::BodyContext {
        body::BodyContext::new(
            &self.method,
            &self.target,
            history,
            self.deadline.start(),
            started,
            limit,
            self.may_resend,
        )
    }

    fn attempt_context<'a>(
        &'a self,
        limit: &'a AttemptLimit,
        elapsed: Duration,
    ) -> AttemptContext<'a> {
        AttemptContext {
            limit,
            elapsed,
            target: &self.target,
            connect_timeout: self.config.known_connect_timeout(),
        }
    }

    fn retries_so_far(&self) -> u32 {
        u32::try_from(self.history.len()).unwrap_or(u32::MAX)
    }

    /// Returns the wait that a 429, 503 or 413 response requests. RFC 9110
    /// gives `Retry-After` on 413 for a condition that is temporary.
    fn retry_after(&self, response: &Response) -> Option<Duration> {
        if !matches!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            return None;
        }
        let value = response.headers().get(http::header::RETRY_AFTER)?;
        parse_retry_after(value, SystemTime::now())
    }

    fn decide_after_status(
        &mut self,
        status: StatusCode,
        retry_after: Option<Duration>,
        resendable: bool,
    ) -> Decision {
        let temporary_too_large = status == StatusCode::PAYLOAD_TOO_LARGE && retry_after.is_some();
        if !is_retryable_status(status) && !temporary_too_large {
            return Decision::Stop(StopReason::Completed);
        }
        // A status proves that the server received the request.
        if !self.may_resend {
            return Decision::Stop(StopReason::NotIdempotent(self.method.clone()));
        }
        if !resendable {
            return Decision::Stop(StopReason::OneShotBody);
        }
        let retry = self.retries_so_far();
        if retry >= self.max_retries {
            return Decision::Stop(StopReason::MaxRetries(self.max_retries));
        }
        let now = Instant::now();
        if let Some(requested) = retry_after {
            if !self.deadline.fits_wait(now, Duration::ZERO) {
                return Decision::Stop(StopReason::Deadline);
            }
            if requested > self.config.max_retry_after || !self.deadline.fits_wait(now, requested) {
                return Decision::Stop(StopReason::RetryAfterTooLong(requested));
            }
            // The server's value is a minimum. A zero, a date in the past or
            // a clock ahead of the server's would otherwise send every retry
            // at once. When the longer wait does not fit before the deadline,
            // the server's own wait, which does, is used instead, unless it
            // is zero.
            let mut wait = requested.max(self.next_backoff());
            if !self.deadline.fits_wait(now, wait) {
                if requested.is_zero() {
                    return Decision::Stop(StopReason::Deadline);
                }
                wait = requested;
            }
            if !self.spend_budget(now) {
                return Decision::Stop(StopReason::Budget);
            }
            return Decision::Retry { wait };
        }
        self.backoff_or_stop(now)
    }

    fn decide_after_error(&mut self, classified: &Classified, resendable: bool) -> Decision {
        if !classified.failure.retryable {
            return Decision::Stop(StopReason::NotRetryable);
        }
        // These two come before the deadline, because they tell an outer
        // retry layer that sending the request again is unsafe.
        let now = Instant::now();
        if !classified.not_sent && !self.may_resend {
            return Decision::Stop(StopReason::NotIdempotent(self.method.clone()));
        }
        if !resendable {
            return Decision::Stop(StopReason::OneShotBody);
        }
        // With no time left, the deadline stops the call whatever the
        // retry count allows.
        if !self.deadline.fits_wait(now, Duration::ZERO) {
            return Decision::Stop(StopReason::Deadline);
        }
        let retry = self.retries_so_far();
        if retry >= self.max_retries {
            return Decision::Stop(StopReason::MaxRetries(self.max_retries));
        }
        self.backoff_or_stop(now)
    }

    /// Returns the next wait of the backoff schedule.
    fn next_backoff(&mut self) -> Duration {
        // Made at the first backoff, so that a call that needs none carries
        // no schedule.
        self.schedule
            .get_or_insert_with(|| Box::new(self.config.backoff.schedule()))
            .next_wait()
    }

    fn backoff_or_stop(&mut self, now: Instant) -> Decision {
        let wait = self.next_backoff();
        if !self.deadline.fits_wait(now, wait) {
            return Decision::Stop(StopReason::Deadline);
        }
        if !self.spend_budget(now) {
            return Decision::Stop(StopReason::Budget);
        }
        Decision::Retry { wait }
    }

    /// Spends one retry from the host's budget; returns `false` when it is
    /// empty.
    fn spend_budget(&self, now: Instant) -> bool {
        let allowed = self.config.budgets.try_withdraw(&self.host.budget, now);
        if !allowed {
            tracing::debug!("retry budget spent; not retrying");
        }
        allowed
    }
}

/// The output of an exchange: the rest of the chain's result, or the
/// response header timeout.
type ExchangeResult = Result<reqwest_middleware::Result<Response>, HeaderTimedOut>;

/// Returns the request for one attempt, and whether `request` could be sent
/// again after it.
///
/// The attempt gets a copy, and `request` stays for the next one. The
/// `last` attempt that the retry limit allows sends `request` itself,
/// because a copy costs several allocations and would never be sent. A
/// streamed body cannot be copied, so such a request is sent itself, once.
/// A stand-in without a body takes the place of a request sent itself.
fn take_attempt(request: &mut Request, last: bool) -> (Request, bool) {
    if !last {
        if let Some(copy) = request.try_clone() {
            return (copy, true);
        }
    }
    let copyable = !has_streamed_body(request);
    let stand_in = Request::new(request.method().clone(), request.url().clone());
    (mem::replace(request, stand_in), copyable)
}

/// The effect of the active probe on a failure that ends a call.
#[derive(Debug, PartialEq, Eq)]
enum Probed {
    /// It did not run: it is off, adds nothing, or has no time.
    No,
    /// It ran and added its report.
    Ran,
    /// It ran and changed the diagnosis.
    Rediagnosed,
}

/// The share of the last attempt's duration that the probe's connects must
/// have waited for their timing out to count as a stalled connect. Below 1,
/// because the time left before the deadline often gives the probe a few
/// milliseconds less than an attempt.
const PROBE_AS_LONG_AS_ATTEMPT: f64 = 0.9;

/// Minimum time left before the deadline for the probe to run.
const MIN_PROBE_TIME: Duration = Duration::from_millis(5);

/// Returns whether a bare TCP connect adds information to `failure`: the
/// attempt did not get past opening the connection, or may not have.
fn worth_probing(failure: &Failure) -> bool {
    matches!(failure.phase, Phase::Dns | Phase::Connect | Phase::Tls) || failure.note.is_some()
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use http::Method;
    use reqwest::Url;

    use super::*;

    fn request_with_body(body: reqwest::Body) -> Request {
        let url = Url::parse("http://127.0.0.1:8080/items").unwrap();
        let mut request = Request::new(Method::PUT, url);
        *request.body_mut() = Some(body);
        request
    }

    #[test]
    fn bytes_body_is_copied() {
        let mut request = request_with_body(reqwest::Body::from("payload"));

        let (sent, resendable) = take_attempt(&mut request, false);

        assert!(resendable);
        assert_eq!(
            sent.body().and_then(reqwest::Body::as_bytes),
            Some(&b"payload"[..])
        );
        assert_eq!(
            request.body().and_then(reqwest::Body::as_bytes),
            Some(&b"payload"[..])
        );
    }

    #[test]
    fn streamed_body_is_sent_once() {
        let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"chunk"));
        let mut request = request_with_body(reqwest::Body::wrap(stream));

        let (sent, resendable) = take_attempt(&mut request, false);

        assert!(!resendable);
        assert!(sent.body().is_some());
        assert!(request.body().is_none());
        assert_eq!(request.url(), sent.url());
    }

    #[test]
    fn last_attempt_sends_the_request_itself() {
        let mut request = request_with_body(reqwest::Body::from("payload"));

        let (sent, resendable) = take_attempt(&mut request, true);

        assert!(resendable, "a bytes body could have been copied");
        assert_eq!(
            sent.body().and_then(reqwest::Body::as_bytes),
            Some(&b"payload"[..])
        );
        assert!(request.body().is_none(), "a stand-in stays behind");
        assert_eq!(request.url(), sent.url());
    }

    #[test]
    fn last_attempt_with_streamed_body_is_one_shot() {
        let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"chunk"));
        let mut request = request_with_body(reqwest::Body::wrap(stream));

        let (sent, resendable) = take_attempt(&mut request, true);

        assert!(!resendable);
        assert!(sent.body().is_some());
    }
}
