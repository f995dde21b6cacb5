//! The attempt loop of one call: run an attempt, classify its outcome,
//! then retry after a wait or stop.

use std::iter;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Extensions, Method, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::Next;
use tokio::time::Instant;

use crate::attempt::{AttemptOutcome, AttemptRecord, Attempts, StopReason};
use crate::backoff::Schedule;
use crate::body;
use crate::classify::{classify_error, classify_timeout, AttemptContext, Classified};
use crate::deadline::{AttemptLimit, Deadline};
use crate::diagnosis::Diagnosis;
use crate::error::{Error, Failure};
use crate::format::error_chain_text;
use crate::limit::Limit;
use crate::middleware::Config;
use crate::phase::Phase;
use crate::policy::is_retryable_status;
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
    pub(crate) history: Vec<AttemptRecord>,
    pub(crate) schedule: Schedule,
}

/// The decision after an attempt: retry after a wait, or stop.
enum Decision {
    /// Wait, then send this copy of the request.
    Retry {
        wait: Duration,
        request: Box<Request>,
    },
    Stop(StopReason),
}

impl Call<'_> {
    pub(crate) async fn run(
        mut self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut pending = request;
        loop {
            let retry = self.retries_so_far();
            let started = Instant::now();
            if self.deadline.remaining(started).is_zero() {
                // Only reading a streamed body into memory before the first
                // attempt can use up the whole budget; retries always leave
                // time to run.
                return Err(self.deadline_spent_before_first_attempt(started).into());
            }
            let limit =
                self.deadline
                    .attempt_limit(started, self.attempt_timeout, self.request_timeout);

            // Keep the original for the next attempt; a streamed body cannot
            // be cloned, so such a request is sent as it is, once.
            let (mut attempt, spare) = match pending.try_clone() {
                Some(copy) => (copy, Some(pending)),
                None => (pending, None),
            };
            *attempt.timeout_mut() = Some(limit.budget);
            let upload = body::track_upload(&mut attempt, &self.config.body, started);

            let exchange = body::within_header_timeout(
                self.config.body.response_header_timeout,
                started,
                upload.as_deref(),
                next.clone().run(attempt, extensions),
            );
            let result = tokio::time::timeout(limit.budget, exchange).await;
            let duration = started.elapsed();
            let mut record = AttemptRecord {
                number: retry + 1,
                started_after: self.deadline.elapsed(started),
                duration,
                limit: limit.budget,
                outcome: AttemptOutcome::Response(StatusCode::OK),
                retry_after: None,
                wait_after: None,
                error: None,
            };

            let result = match result {
                Ok(Ok(Ok(response))) => {
                    self.config.recent_latency.record(
                        self.target.host(),
                        self.target.port(),
                        duration,
                    );
                    record.outcome = AttemptOutcome::Response(response.status());
                    record.retry_after = self.retry_after(&response);
                    if self.config.body.buffer {
                        let history = self
                            .history
                            .iter()
                            .cloned()
                            .chain(iter::once(record.clone()))
                            .collect();
                        let context = self.body_context(history, started, limit);
                        // Boxed, so that the buffering state does not enlarge
                        // the future of every call that streams its body.
                        Box::pin(body::buffer_within_attempt(
                            response,
                            &self.config.body,
                            context,
                        ))
                        .await
                    } else {
                        // The guard goes around the body below, once the
                        // call is known to return this response.
                        Ok(response)
                    }
                }
                Ok(Ok(Err(error))) => Err(classify_error(
                    error,
                    &self.attempt_context(&limit, duration),
                )),
                Ok(Err(header_timeout)) => Err(header_timeout.classify()),
                Err(_elapsed) => Err(classify_timeout(&self.attempt_context(&limit, duration))),
            };
            // In buffered mode the attempt includes reading the body.
            record.duration = started.elapsed();

            let classified = match result {
                Ok(mut response) => {
                    let status = response.status();
                    let decision = self.decide_after_status(status, record.retry_after, spare);
                    match decision {
                        Decision::Retry { wait, request } => {
                            tracing::debug!(
                                http.request.resend_count = retry + 1,
                                http.response.status_code = status.as_u16(),
                                wait_ms = duration_ms(wait),
                                "retrying after a retryable status"
                            );
                            record.wait_after = Some(wait);
                            self.history.push(record);
                            drop(response);
                            tokio::time::sleep(wait).await;
                            pending = *request;
                            continue;
                        }
                        Decision::Stop(stop) => {
                            // Collected from an exact-size iterator, so this
                            // is the history's only allocation on the success
                            // path.
                            let history: Arc<[AttemptRecord]> =
                                self.history.drain(..).chain(iter::once(record)).collect();
                            let attempts = Attempts::new(Arc::clone(&history), stop);
                            // Guarding first lets the extensions below reuse
                            // the map that the guard's rebuilt response has.
                            if !self.config.body.buffer {
                                let context = self.body_context(history, started, limit);
                                response = body::guard(response, &self.config.body, context);
                            }
                            response.extensions_mut().insert(attempts);
                            return Ok(response);
                        }
                    }
                }
                Err(classified) => body::refine_after_upload(classified, upload.as_deref()),
            };

            record.outcome = AttemptOutcome::Failed {
                phase: classified.failure.phase,
                diagnosis: classified.failure.diagnosis,
                timed_out: classified.failure.timed_out,
            };
            record.error = classified
                .failure
                .source
                .as_deref()
                .map(|source| error_chain_text(source));
            match self.decide_after_error(&classified, spare) {
                Decision::Retry { wait, request } => {
                    tracing::debug!(
                        http.request.resend_count = retry + 1,
                        reason = classified.failure.diagnosis.code(),
                        phase = classified.failure.phase.as_str(),
                        wait_ms = duration_ms(wait),
                        "retrying after a failed attempt"
                    );
                    record.wait_after = Some(wait);
                    self.history.push(record);
                    tokio::time::sleep(wait).await;
                    pending = *request;
                }
                Decision::Stop(stop) => {
                    self.history.push(record);
                    let mut failure = classified.failure;
                    // Boxed, because the probe's state would otherwise enlarge every
                    // call's future, failed or not.
                    Box::pin(self.explain(&mut failure)).await;
                    let elapsed = self.deadline.elapsed(Instant::now());
                    let error = Error::new(
                        self.method,
                        self.target,
                        failure,
                        self.history,
                        elapsed,
                        stop,
                    );
                    tracing::debug!(
                        reason = error.diagnosis().code(),
                        attempts = error.attempts(),
                        elapsed_ms = duration_ms(elapsed),
                        "giving up"
                    );
                    return Err(error.into());
                }
            }
        }
    }

    /// Adds what the attempts show together, and what the active probe
    /// finds, to the failure that ends the call.
    async fn explain(&self, failure: &mut Failure) {
        let recent = self
            .config
            .recent_latency
            .slowest(self.target.host(), self.target.port());
        let finding = pattern::assess(&self.history, recent);
        if let Some(diagnosis) = finding.diagnosis {
            failure.diagnosis = diagnosis;
        }
        failure.evidence.extend(finding.evidence);

        if !self.config.active_probe || !worth_probing(failure) {
            return;
        }
        let Some(port) = self.target.port() else {
            return;
        };
        let budget = self
            .deadline
            .remaining(Instant::now())
            .min(self.attempt_timeout);
        if budget < MIN_PROBE_TIME {
            return;
        }
        let report = probe::probe(self.target.host(), port, budget).await;
        tracing::debug!(probe = %report, "probed the request's host and port");
        if report.all_connected() && failure.note.is_some() {
            // The server accepts connections, so the other cause that the
            // note names is unlikely.
            failure.note = None;
        }
        failure.probe = Some(report);
    }

    /// Returns the error of a call whose total timeout ran out before its
    /// first attempt could start, with nothing sent.
    fn deadline_spent_before_first_attempt(self, now: Instant) -> Error {
        let failure = Failure {
            phase: Phase::Send,
            diagnosis: Diagnosis::Other,
            timed_out: true,
            limit: Some(Limit::TotalTimeout(self.deadline.total())),
            retryable: true,
            note: None,
            evidence: vec![
                "the total timeout ran out while the request's streamed body was read into memory, before anything was sent"
                    .to_owned(),
            ],
            probe: None,
            source: None,
            progress: None,
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
        spare: Option<Request>,
    ) -> Decision {
        let temporary_too_large = status == StatusCode::PAYLOAD_TOO_LARGE && retry_after.is_some();
        if !is_retryable_status(status) && !temporary_too_large {
            return Decision::Stop(StopReason::Completed);
        }
        // A status proves that the server received the request.
        if !self.may_resend {
            return Decision::Stop(StopReason::NotIdempotent(self.method.clone()));
        }
        let Some(request) = spare else {
            return Decision::Stop(StopReason::OneShotBody);
        };
        let retry = self.retries_so_far();
        if retry >= self.max_retries {
            return Decision::Stop(StopReason::MaxRetries(self.max_retries));
        }
        let now = Instant::now();
        if let Some(wait) = retry_after {
            if !self.deadline.fits_wait(now, Duration::ZERO) {
                return Decision::Stop(StopReason::Deadline);
            }
            if wait > self.config.max_retry_after || !self.deadline.fits_wait(now, wait) {
                return Decision::Stop(StopReason::RetryAfterTooLong(wait));
            }
            if !self.spend_budget(now) {
                return Decision::Stop(StopReason::Budget);
            }
            return Decision::Retry {
                wait,
                request: Box::new(request),
            };
        }
        self.backoff_or_stop(now, request)
    }

    fn decide_after_error(&mut self, classified: &Classified, spare: Option<Request>) -> Decision {
        if !classified.failure.retryable {
            return Decision::Stop(StopReason::NotRetryable);
        }
        if !classified.not_sent && !self.may_resend {
            return Decision::Stop(StopReason::NotIdempotent(self.method.clone()));
        }
        let Some(request) = spare else {
            return Decision::Stop(StopReason::OneShotBody);
        };
        let retry = self.retries_so_far();
        if retry >= self.max_retries {
            return Decision::Stop(StopReason::MaxRetries(self.max_retries));
        }
        self.backoff_or_stop(Instant::now(), request)
    }

    fn backoff_or_stop(&mut self, now: Instant, request: Request) -> Decision {
        let wait = self.schedule.next_wait();
        if !self.deadline.fits_wait(now, wait) {
            return Decision::Stop(StopReason::Deadline);
        }
        if !self.spend_budget(now) {
            return Decision::Stop(StopReason::Budget);
        }
        Decision::Retry {
            wait,
            request: Box::new(request),
        }
    }

    /// Spends one retry from the host's budget; returns `false` when it is
    /// empty.
    fn spend_budget(&self, now: Instant) -> bool {
        let allowed = self
            .config
            .budgets
            .try_withdraw(self.target.host(), self.target.port(), now);
        if !allowed {
            tracing::debug!("retry budget spent; not retrying");
        }
        allowed
    }
}

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
