use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::builder::TimeoutMiddlewareBuilder;
use crate::call::Call;
use crate::deadline::Deadline;
use crate::overrides::RequestOverrides;
use crate::policy::{is_idempotent, IDEMPOTENCY_KEY};
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
