use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Extensions, Method, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;
use tracing::Instrument;

use crate::attempt::{AttemptOutcome, AttemptRecord, Attempts, StopReason};
use crate::backoff::{Backoff, Schedule};
use crate::body::{self, AttemptContext, BodySettings};
use crate::builder::TimeoutMiddlewareBuilder;
use crate::classify::{classify_error, classify_timeout, Classified};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::overrides::RequestOverrides;
use crate::retry_after::parse_retry_after;
use crate::target::Target;

/// The settings of a built middleware, checked by the builder.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) attempt_timeout: Duration,
    pub(crate) total_timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_retry_after: Duration,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) body: BodySettings,
}

/// Marks a call that an instance of the middleware already handles, so that
/// a second instance further down the same chain does not retry too.
#[derive(Debug, Clone, Copy)]
struct HandledByOuterLayer;

/// A `reqwest-middleware` middleware that limits each attempt and the whole
/// call, retries transient failures and explains the failures it returns.
///
/// Build it with [`TimeoutMiddleware::builder`] and add it to a
/// [`reqwest_middleware::ClientBuilder`]. Clones share one configuration.
///
/// ```
/// use std::time::Duration;
/// use reqwest_timeout::TimeoutMiddleware;
///
/// let middleware = TimeoutMiddleware::builder()
///     .attempt_timeout(Duration::from_secs(5))
///     .total_timeout(Duration::from_secs(20))
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware)
///     .build();
/// # Ok::<(), reqwest_timeout::ConfigError>(())
/// ```
///
/// # How a call runs
///
/// Each attempt runs under the smallest of the attempt timeout, the time left
/// before the total deadline and the request's own timeout. The middleware
/// passes that limit to reqwest as the request's timeout, so it also covers
/// reading the response body after the middleware has returned; note that a
/// request timeout replaces the `reqwest::Client`'s own
/// [`timeout`](reqwest::ClientBuilder::timeout) for that request.
///
/// The response is returned once its headers arrive, with its body under a
/// guard: when the body stalls, breaks off or runs past a limit while the
/// caller reads it, the caller gets a [`reqwest::Error`] that
/// [`Error::find`](crate::Error::find) turns into a diagnosed error in
/// [`Phase::Body`](crate::Phase::Body). In buffered mode
/// ([`buffer_body`](TimeoutMiddlewareBuilder::buffer_body)) the middleware
/// reads the body within the attempt instead, so that such failures are
/// retried.
///
/// A failed attempt is retried when the failure is transient (a timeout, a
/// refused or reset connection, a transient DNS failure, or the status 408,
/// 429, 500, 502, 503 or 504), retries are left, the wait fits before the
/// deadline, the body can be cloned, and sending again is safe: `POST` and
/// `PATCH` are sent again only when the failure proves that the server never
/// received them. When retries end on a status, the caller gets that
/// response, with [`Attempts`] in its extensions.
#[derive(Debug, Clone)]
pub struct TimeoutMiddleware {
    config: Arc<Config>,
}

impl TimeoutMiddleware {
    /// Returns a builder with the default settings.
    pub fn builder() -> TimeoutMiddlewareBuilder {
        TimeoutMiddlewareBuilder::default()
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Self {
        TimeoutMiddleware { config }
    }
}

#[async_trait]
impl Middleware for TimeoutMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if extensions.get::<HandledByOuterLayer>().is_some() {
            // The outer instance sets the timeouts and makes the retries;
            // doing both here too would multiply the attempts.
            return next.run(request, extensions).await;
        }
        extensions.insert(HandledByOuterLayer);

        let overrides = extensions
            .get::<RequestOverrides>()
            .cloned()
            .unwrap_or_default();
        overrides
            .validate()
            .map_err(reqwest_middleware::Error::middleware)?;
        let config = &self.config;
        let total_timeout = overrides.total_timeout.unwrap_or(config.total_timeout);

        let target = Target::from_url(request.url());
        let span = tracing::debug_span!(
            "reqwest_timeout",
            http.request.method = %request.method(),
            server.address = target.host(),
            server.port = target.port(),
        );
        let may_resend = is_idempotent(request.method())
            || request.headers().contains_key(IDEMPOTENCY_KEY)
            || overrides
                .retry_non_idempotent
                .unwrap_or(config.retry_non_idempotent);
        let call = Call {
            config,
            attempt_timeout: overrides.attempt_timeout.unwrap_or(config.attempt_timeout),
            max_retries: overrides.max_retries.unwrap_or(config.max_retries),
            may_resend,
            deadline: Deadline::new(Instant::now(), total_timeout),
            method: request.method().clone(),
            request_timeout: request.timeout().copied(),
            target,
            history: Vec::new(),
            schedule: config.backoff.schedule(),
        };
        call.run(request, extensions, next).instrument(span).await
    }
}

/// The state of one call through the middleware.
struct Call<'c> {
    config: &'c Config,
    attempt_timeout: Duration,
    max_retries: u32,
    /// Whether the request may be sent again after it may have reached the
    /// server: its method is idempotent, it has an `Idempotency-Key`, or the
    /// user opted in.
    may_resend: bool,
    deadline: Deadline,
    method: Method,
    request_timeout: Option<Duration>,
    target: Target,
    history: Vec<AttemptRecord>,
    schedule: Schedule,
}

/// What to do after an attempt.
enum Decision {
    /// Wait, then send this copy of the request.
    Retry {
        wait: Duration,
        request: Box<Request>,
    },
    Stop(StopReason),
}

impl Call<'_> {
    async fn run(
        mut self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut pending = request;
        loop {
            let retry = self.retries_so_far();
            let started = Instant::now();
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
            };

            let result = match result {
                Ok(Ok(Ok(response))) => {
                    record.outcome = AttemptOutcome::Response(response.status());
                    record.retry_after = self.retry_after(&response);
                    let context = AttemptContext::new(
                        &self.method,
                        &self.target,
                        &self.history,
                        &record,
                        self.deadline.start(),
                        started,
                        limit,
                    );
                    body::deliver(response, &self.config.body, context).await
                }
                Ok(Ok(Err(error))) => Err(classify_error(error, &limit, duration, &self.target)),
                Ok(Err(header_timeout)) => Err(header_timeout.classify()),
                Err(_elapsed) => Err(classify_timeout(&limit)),
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
                            self.history.push(record);
                            response
                                .extensions_mut()
                                .insert(Attempts::new(self.history, stop));
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
                    let elapsed = self.deadline.elapsed(Instant::now());
                    let error = Error::new(
                        self.method,
                        self.target,
                        classified.failure,
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

    fn retries_so_far(&self) -> u32 {
        u32::try_from(self.history.len()).unwrap_or(u32::MAX)
    }

    fn retry_after(&self, response: &Response) -> Option<Duration> {
        if !matches!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
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
        if !is_retryable_status(status) {
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
            if wait > self.config.max_retry_after || !self.deadline.fits_wait(now, wait) {
                return Decision::Stop(StopReason::RetryAfterTooLong(wait));
            }
            return Decision::Retry {
                wait,
                request: Box::new(request),
            };
        }
        self.backoff_or_stop(now, request)
    }

    fn decide_after_error(&mut self, classified: &Classified, spare: Option<Request>) -> Decision {
        if !classified.retryable {
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
        if self.deadline.fits_wait(now, wait) {
            Decision::Retry {
                wait,
                request: Box::new(request),
            }
        } else {
            Decision::Stop(StopReason::Deadline)
        }
    }
}

/// Statuses that say the server could not answer now but may soon: request
/// timeout, too many requests and the transient server errors.
fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Methods that RFC 9110 defines as idempotent: sending them twice has the
/// same effect as sending them once.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The header of the IETF draft "The Idempotency-Key HTTP Header Field": a
/// server that honours it applies a repeated request only once.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
