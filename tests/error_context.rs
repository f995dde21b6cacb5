//! The context every diagnosed error carries, and the secrets it must never
//! show: the URL's password and query string, in the message, the `Debug`
//! output, the source chain and the debug logs.

mod support;

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use support::{
    client_builder, closed_port, diagnosed, diagnosed_body, timeouts, with_timeouts, Blackhole,
    CapturedLogs, PlainOnTls, StallHead, StaticResolver, TruncatedHead,
};

const MS: Duration = Duration::from_millis(1);
const CANARY: &str = "c4nary-s3cret";

/// A URL whose password and query string carry the canary.
fn secret_url(scheme: &str, host: &str, port: u16) -> String {
    format!("{scheme}://alice:{CANARY}@{host}:{port}/v1/items?token={CANARY}&page=2")
}

fn client(connect_timeout: bool) -> ClientWithMiddleware {
    let builder = if connect_timeout {
        client_builder().connect_timeout(200 * MS)
    } else {
        client_builder()
    };
    with_timeouts(builder, timeouts(300 * MS, 1_000 * MS, 1))
}

/// Sends `url` and checks the error's context and that the canary appears in
/// none of its text, nor in the logs of the call.
async fn assert_context_without_secret(
    client: &ClientWithMiddleware,
    url: String,
    addr: SocketAddr,
) {
    let (captured, _guard) = CapturedLogs::install();

    let err = client.get(&url).send().await.unwrap_err();

    let error = diagnosed(&err);
    let message = error.to_string();
    let debug = format!("{error:?}");
    let report = error.report().to_string();
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(format!("{cause} / {cause:?}"));
        source = cause.source();
    }
    let logs = captured.text();

    assert!(!message.contains(CANARY), "message: {message}");
    assert!(!debug.contains(CANARY), "debug: {debug}");
    assert!(!report.contains(CANARY), "report: {report}");
    assert!(!chain.concat().contains(CANARY), "chain: {chain:?}");
    assert!(!logs.contains(CANARY), "logs: {logs}");
    assert!(!logs.is_empty(), "the call logged nothing");

    assert_eq!(error.host(), addr.ip().to_string());
    assert_eq!(error.port(), Some(addr.port()));
    assert!(error.attempts() >= 1);
    assert!(error.elapsed() > Duration::ZERO);
    assert!(error.source().is_some(), "no source: {debug}");
    assert!(
        message.starts_with(&format!("GET http://{addr}/v1/items: "))
            || message.starts_with(&format!("GET https://{addr}/v1/items: ")),
        "{message}"
    );
    assert!(
        message.contains(&format!("{} attempt", error.attempts())),
        "{message}"
    );
    assert_eq!(message.matches("likely cause:").count(), 1, "{message}");
    assert!(message.contains(error.diagnosis().code()), "{message}");
    if let Some(limit) = error.limit() {
        assert!(message.contains(&limit.to_string()), "{message}");
    }
    assert!(!message.ends_with('.'), "{message}");
}

#[tokio::test]
async fn refused_error_has_context_and_no_secret() {
    let addr = closed_port();

    assert_context_without_secret(
        &client(false),
        secret_url("http", "127.0.0.1", addr.port()),
        addr,
    )
    .await;
}

#[tokio::test]
async fn connect_timeout_error_has_context_and_no_secret() {
    let blackhole = Blackhole::start().await;
    let addr = blackhole.addr();

    assert_context_without_secret(
        &client(true),
        secret_url("http", "127.0.0.1", addr.port()),
        addr,
    )
    .await;
}

#[tokio::test]
async fn header_stall_error_has_context_and_no_secret() {
    let server = StallHead::start().await;
    let addr = server.addr();

    assert_context_without_secret(
        &client(false),
        secret_url("http", "127.0.0.1", addr.port()),
        addr,
    )
    .await;
}

#[tokio::test]
async fn closed_connection_error_has_context_and_no_secret() {
    let server = TruncatedHead::always().await;
    let addr = server.addr();

    assert_context_without_secret(
        &client(false),
        secret_url("http", "127.0.0.1", addr.port()),
        addr,
    )
    .await;
}

#[tokio::test]
async fn tls_error_has_context_and_no_secret() {
    let server = PlainOnTls::start().await;
    let addr = server.addr();

    assert_context_without_secret(
        &client(false),
        secret_url("https", "127.0.0.1", addr.port()),
        addr,
    )
    .await;
}

#[tokio::test]
async fn dns_error_has_context_and_no_secret() {
    let resolver = StaticResolver::not_found();
    let client = with_timeouts(
        client_builder().dns_resolver(resolver),
        timeouts(300 * MS, 1_000 * MS, 1),
    );

    let err = client
        .get(secret_url("http", "missing.test", 8080))
        .send()
        .await
        .unwrap_err();

    let error = diagnosed(&err);
    let text = format!("{error} {error:?} {:?}", error.source());
    assert!(!text.contains(CANARY), "{text}");
    assert_eq!(error.host(), "missing.test");
    assert_eq!(error.port(), Some(8080));
}

/// Writes a request's URL into an error's text, in one of the ways a
/// hand-written layer might.
type Describe = fn(&reqwest::Request) -> String;

fn url_display(request: &reqwest::Request) -> String {
    request.url().to_string()
}

/// Writes the URL as JSON escapes it, with `\/` for each `/`.
fn url_json_escaped(request: &reqwest::Request) -> String {
    request.url().as_str().replace('/', "\\/")
}

/// Writes each `Debug` form of a request and its URL, one line and pretty.
fn debug_forms(request: &reqwest::Request) -> String {
    format!(
        "{:?} {:#?} {request:?} {request:#?}",
        request.url(),
        request.url()
    )
}

/// Where a layer below the one under test fails with free text naming the
/// request's full URL.
#[derive(Clone, Copy)]
enum Fails {
    /// In the error it returns, as a rate limiter might.
    Send,
    /// In the body of the response it returns, as a cache layer might.
    Body,
}

/// A middleware below the one under test that fails every request in the
/// way that [`Fails`] names, describing the URL with its [`Describe`].
struct NamesUrl(Fails, Describe);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for NamesUrl {
    async fn handle(
        &self,
        request: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let NamesUrl(fails, describe) = self;
        match fails {
            Fails::Send => {
                let text = format!("rate limiter rejected {}", describe(&request));
                Err(reqwest_middleware::Error::middleware(
                    std::io::Error::other(text),
                ))
            }
            Fails::Body => {
                let text = format!("cache read failed for {}", describe(&request));
                let body = FailingBody(Some(std::io::Error::other(text)));
                Ok(reqwest::Response::from(http::Response::new(
                    reqwest::Body::wrap(body),
                )))
            }
        }
    }
}

/// Returns a client with the middleware under test above `layer`.
fn client_above(layer: NamesUrl) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client_builder().build().unwrap())
        .with(timeouts(300 * MS, 1_000 * MS, 1).build().unwrap())
        .with(layer)
        .build()
}

#[tokio::test]
async fn lower_middleware_text_has_no_secret() {
    let addr = closed_port();
    let client = client_above(NamesUrl(Fails::Send, url_display));

    assert_context_without_secret(&client, secret_url("http", "127.0.0.1", addr.port()), addr)
        .await;

    let err = client
        .get(secret_url("http", "127.0.0.1", addr.port()))
        .send()
        .await
        .unwrap_err();
    let history = diagnosed(&err).history().to_vec();
    let text = history[0].error().unwrap_or_default();
    assert_eq!(
        text,
        format!(
            "rate limiter rejected http://127.0.0.1:{}/v1/items",
            addr.port()
        )
    );
}

/// A body that fails at once with free text naming a URL.
struct FailingBody(Option<std::io::Error>);

impl http_body::Body for FailingBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.0.take().map(Err))
    }
}

#[tokio::test]
async fn lower_layer_body_error_text_has_no_secret() {
    let addr = closed_port();
    let client = client_above(NamesUrl(Fails::Body, url_display));
    let response = client
        .get(secret_url("http", "127.0.0.1", addr.port()))
        .send()
        .await
        .unwrap();

    let err = response.bytes().await.unwrap_err();

    let error = diagnosed_body(&err);
    let attempt_text = first_attempt_text(error);
    assert_no_secret_shown(error);
    assert_eq!(error.phase(), reqwest_timeout::Phase::Body);
    assert!(
        attempt_text.contains("cache read failed for http://127.0.0.1:"),
        "{attempt_text}"
    );
}

#[tokio::test]
async fn lower_layer_url_debug_output_has_no_secret() {
    let addr = closed_port();
    let url = secret_url("http", "127.0.0.1", addr.port());
    let failing = client_above(NamesUrl(Fails::Send, debug_forms));
    let failing_body = client_above(NamesUrl(Fails::Body, debug_forms));

    let send_error = failing.get(&url).send().await.unwrap_err();
    let response = failing_body.get(&url).send().await.unwrap();
    let body_error = response.bytes().await.unwrap_err();

    for error in [diagnosed(&send_error), diagnosed_body(&body_error)] {
        assert_no_secret_shown(error);
        let attempt_text = first_attempt_text(error);
        assert!(attempt_text.contains("[removed]"), "{attempt_text}");
    }
}

#[tokio::test]
async fn lower_layer_escaped_url_has_no_secret() {
    let addr = closed_port();
    let url = secret_url("http", "127.0.0.1", addr.port());
    let failing = client_above(NamesUrl(Fails::Send, url_json_escaped));
    let failing_body = client_above(NamesUrl(Fails::Body, url_json_escaped));

    assert_context_without_secret(&failing, url.clone(), addr).await;
    let send_error = failing.get(&url).send().await.unwrap_err();
    let response = failing_body.get(&url).send().await.unwrap();
    let body_error = response.bytes().await.unwrap_err();

    let send_error = diagnosed(&send_error);
    let body_error = diagnosed_body(&body_error);
    assert_no_secret_shown(send_error);
    assert_no_secret_shown(body_error);
    assert_eq!(
        first_attempt_text(send_error),
        format!(
            "rate limiter rejected http:\\/\\/127.0.0.1:{}\\/v1\\/items",
            addr.port()
        )
    );
    assert!(
        first_attempt_text(body_error).contains(&format!(
            "cache read failed for http:\\/\\/127.0.0.1:{}\\/v1\\/items",
            addr.port()
        )),
        "{}",
        first_attempt_text(body_error)
    );
}

fn first_attempt_text(error: &reqwest_timeout::Error) -> String {
    let history = error.history().to_vec();
    history[0].error().unwrap_or_default().to_owned()
}

/// Checks that the canary shows in none of the texts that the error
/// offers: the message, the report both ways, `Debug` both ways and the
/// first attempt's error text.
fn assert_no_secret_shown(error: &reqwest_timeout::Error) {
    let outputs = [
        error.to_string(),
        format!("{error:#}"),
        format!("{error:?}"),
        format!("{error:#?}"),
        error.report().to_string(),
        first_attempt_text(error),
    ];
    for output in &outputs {
        assert!(!output.contains(CANARY), "{output}");
    }
}

#[tokio::test]
async fn debug_log_names_host_and_retry_fields() {
    let addr = closed_port();
    let (captured, _guard) = CapturedLogs::install();

    let _ = client(false).get(format!("http://{addr}/")).send().await;

    let logs = captured.text();
    assert!(logs.contains("retrying after a failed attempt"), "{logs}");
    assert!(logs.contains("http.request.resend_count=1"), "{logs}");
    assert!(logs.contains("reason=\"connect-refused\""), "{logs}");
    assert!(logs.contains("wait_ms=50"), "{logs}");
    assert!(logs.contains("server.address=\"127.0.0.1\""), "{logs}");
}
