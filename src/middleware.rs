use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::body::BodySettings;
use crate::budget::Budgets;
use crate::builder::TimeoutMiddlewareBuilder;
use crate::call::Call;
use crate::deadline::Deadline;
use crate::host_state::HostState;
use crate::host_table::HostTable;
use crate::overrides::{validate_request_timeout, RequestOverrides};
use crate::policy::{is_idempotent, IDEMPOTENCY_KEY};
use crate::replay::has_streamed_body;
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
    /// The connect timeout that [`TimeoutMiddleware::configure_client`]
    /// applies, set or derived from the attempt timeout.
    pub(crate) connect_timeout: Duration,
    /// Whether the wrapped client is known to have `connect_timeout`: the user
    /// set it explicitly, or called `configure_client`.
    pub(crate) connect_timeout_known: AtomicBool,
    pub(crate) active_probe: bool,
    /// The retry budget and response times of each host and port.
    pub(crate) hosts: HostTable<HostState>,
    pub(crate) budgets: Budgets,
    /// Streamed request bodies up to this many bytes are read into memory
    /// so that they can be sent again; 0 turns this off.
    pub(crate) buffer_request_streams: usize,
    pub(crate) body: BodySettings,
}

impl Config {
    pub(crate) fn known_connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout_known
            .load(Ordering::Relaxed)
            .then_some(self.connect_timeout)
    }
}

/// Marks the extensions of a call that an instance of the middleware
/// handles, so that a second instance further down the same chain passes
/// the call through instead of retrying too. It travels with copies of the
/// extensions, which a layer between two instances may send on.
#[derive(Debug, Clone, Copy)]
struct HandledByOuterLayer;

/// The extensions of a call that carry the mark. The mark is removed when
/// the call ends, finished or dropped, because a caller may send other calls
/// with these extensions later, such as a side call that keeps one
/// `Extensions` for all its calls.
pub(crate) struct MarkedExtensions<'a>(pub(crate) &'a mut Extensions);

impl Drop for MarkedExtensions<'_> {
    fn drop(&mut self) {
        self.0.remove::<HandledByOuterLayer>();
    }
}

tokio::task_local! {
    /// Set while an instance of the middleware polls a call. A second
    /// instance is called from within that poll, so it passes a call through
    /// only when this is set and the call's extensions carry the mark.
    ///
    /// A call removes its mark when it ends, finished or dropped, and this
    /// value ends with it too, so an outer retry layer that sends the same
    /// extensions again gets limits each time. A separate call made from
    /// inside the chain, such as a middleware fetching a token, keeps its own
    /// limits when it has extensions of its own.
    ///
    /// NOTE: a separate call that sends the outer call's extensions, or a
    /// copy of them, carries the mark and is passed through, so only the
    /// outer limits apply to it. Copies must carry the mark, because a layer
    /// between two instances that sends a copy is still the same call. A
    /// layer that builds new extensions between two instances multiplies
    /// the retries.
    static CALL_IN_PROGRESS: ();
}

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
/// before the total deadline and the request's own timeout. One timer per
/// attempt enforces that limit until the headers arrive. After that, the body
/// guard enforces it while the caller reads the body, and the time the caller
/// spends between reads counts too. A [`timeout`](reqwest::ClientBuilder::timeout) set on the
/// `reqwest::Client` still applies to each attempt, and when it fires first
/// the error names it as the client's own timeout.
///
/// The response is returned once its headers arrive, with its body under a
/// guard: when the body stalls, breaks off or runs past a limit while the
/// caller reads it, the caller gets a [`reqwest::Error`] that
/// [`Error::find`](crate::Error::find) turns into a diagnosed error in
/// [`Phase::Body`](crate::Phase::Body). In buffered mode
/// ([`buffer_response_body`](TimeoutMiddlewareBuilder::buffer_response_body)) the middleware
/// reads the body within the attempt instead, so that such failures are
/// retried.
///
/// A failed attempt is retried when the failure is transient (a timeout, a
/// refused or reset connection, a transient DNS failure, or the status 408,
/// 429, 500, 502, 503 or 504), retries are left, the wait fits before the
/// deadline, the body can be cloned, and sending again is safe: `POST` and
/// `PATCH` are sent again only when the failure proves that the server never
/// received them. When retries end on a status, the caller gets that
/// response, with [`Attempts`](crate::Attempts) in its extensions.
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

    /// Sets the middleware's connect timeout on a `reqwest` client builder,
    /// so that errors can tell a connect that never completed from a server
    /// that never sent a response.
    ///
    /// A middleware cannot read the wrapped client's settings. Without a
    /// connect timeout below the attempt timeout, a stalled connect and a
    /// stalled server both end with the attempt timeout and look the same.
    /// With it, a stalled connect ends early with its own error, and the
    /// middleware then has the value and drops the second possible cause
    /// from its messages. The connect timeout covers DNS, the TCP connect and
    /// the TLS handshake.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reqwest_timeout::TimeoutMiddleware;
    ///
    /// let middleware = TimeoutMiddleware::builder()
    ///     .attempt_timeout(Duration::from_secs(5))
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// let client = middleware
    ///     .configure_client(reqwest::Client::builder())
    ///     .build()
    ///     .expect("a valid client configuration");
    /// let client = reqwest_middleware::ClientBuilder::new(client)
    ///     .with(middleware)
    ///     .build();
    /// # Ok::<(), reqwest_timeout::ConfigError>(())
    /// ```
    pub fn configure_client(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.config
            .connect_timeout_known
            .store(true, Ordering::Relaxed);
        builder.connect_timeout(self.config.connect_timeout)
    }

    /// Returns the attempt timeout; see
    /// [`TimeoutMiddlewareBuilder::attempt_timeout`].
    pub fn attempt_timeout(&self) -> Duration {
        self.config.attempt_timeout
    }

    /// Returns the total timeout; see
    /// [`TimeoutMiddlewareBuilder::total_timeout`].
    pub fn total_timeout(&self) -> Duration {
        self.config.total_timeout
    }

    /// Returns the maximum number of retries; see
    /// [`TimeoutMiddlewareBuilder::max_retries`].
    pub fn max_retries(&self) -> u32 {
        self.config.max_retries
    }

    /// Returns the connect timeout that
    /// [`configure_client`](Self::configure_client) applies; see
    /// [`TimeoutMiddlewareBuilder::connect_timeout`].
    pub fn connect_timeout(&self) -> Duration {
        self.config.connect_timeout
    }
}

// Written out instead of with `#[async_trait]`, because the macro's boxed
// future would keep the request twice: once as the captured argument and
// once as the local it is moved into. The setup below needs no `await`, so
// it runs before the future is boxed.
impl Middleware for TimeoutMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // The task-local check comes first: it is cheaper than the lookup
        // and fails for every call that no other instance is polling.
        let nested = CALL_IN_PROGRESS.try_with(|()| ()).is_ok()
            && extensions.get::<HandledByOuterLayer>().is_some();
        if nested {
            // The outer instance sets the timeouts and makes the retries;
            // doing both here too would multiply the attempts.
            return next.run(request, extensions);
        }

        let overrides = extensions
            .get::<RequestOverrides>()
            .cloned()
            .unwrap_or_default();
        let valid = overrides
            .validate()
            .and_then(|()| validate_request_timeout(request.timeout()));
        if let Err(error) = valid {
            return Box::pin(std::future::ready(Err(
                reqwest_middleware::Error::middleware(error),
            )));
        }
        extensions.insert(HandledByOuterLayer);
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
            || request
                .headers()
                .get(IDEMPOTENCY_KEY)
                .is_some_and(|key| !key.as_bytes().trim_ascii().is_empty())
            || overrides
                .retry_non_idempotent
                .unwrap_or(config.retry_non_idempotent);
        let started = Instant::now();
        let host = config.hosts.get(target.host(), target.port());
        config.budgets.deposit(&host.budget, started);
        let buffer_body = config.buffer_request_streams > 0 && has_streamed_body(&request);
        let call = Call {
            config,
            attempt_timeout: overrides.attempt_timeout.unwrap_or(config.attempt_timeout),
            max_retries: overrides.max_retries.unwrap_or(config.max_retries),
            may_resend,
            deadline: Deadline::new(started, total_timeout),
            method: request.method().clone(),
            request_timeout: request.timeout().copied(),
            target,
            host,
            history: Vec::new(),
            schedule: None,
        };
        // At most one attempt's worth of the budget goes to reading the
        // caller's stream, so that the first attempt keeps time to run.
        let buffer_limit = buffer_body.then(|| {
            let time_limit = call.attempt_timeout.min(total_timeout) / 2;
            (config.buffer_request_streams, time_limit)
        });
        let run = call
            .run(request, buffer_limit, MarkedExtensions(extensions), next)
            .instrument(span);
        Box::pin(CALL_IN_PROGRESS.scope((), run))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Records the size of the future that the rest of the chain returns,
    /// then drops it unpolled, so that nothing is sent.
    struct MeasureFuture(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Middleware for MeasureFuture {
        async fn handle(
            &self,
            request: Request,
            extensions: &mut Extensions,
            next: Next<'_>,
        ) -> reqwest_middleware::Result<Response> {
            let call = next.run(request, extensions);
            self.0
                .store(std::mem::size_of_val(&*call), Ordering::Relaxed);
            drop(call);
            Err(reqwest_middleware::Error::middleware(
                std::io::Error::other("measured"),
            ))
        }
    }

    /// glibc serves allocations of up to 1 032 bytes from a per-thread cache
    /// and larger ones from its bins, which takes more work. Each call
    /// boxes its future once, so the future has to stay below that size.
    #[tokio::test]
    async fn call_future_fits_the_allocators_fast_sizes() {
        let size = Arc::new(AtomicUsize::new(0));
        let middleware = TimeoutMiddleware::builder()
            .build()
            .expect("valid defaults");
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(MeasureFuture(Arc::clone(&size)))
            .with(middleware)
            .build();

        let result = client.get("http://127.0.0.1:9/").send().await;

        assert!(result.is_err(), "the measuring layer ends every call");
        let size = size.load(Ordering::Relaxed);
        assert!(size > 0, "the middleware returned no future");
        assert!(size <= 1024, "the call's future takes {size} bytes");
    }
}
