//! Retry, backoff, deadline and `Retry-After` behaviour on tokio's paused
//! clock. A scripted last middleware answers in place of a server, so no
//! socket is opened and virtual time advances only through the middleware's
//! own waits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_timeout::{
    AttemptOutcome, Attempts, Diagnosis, Error, Limit, Phase, RequestOverrides, RetryBudget,
    StopReason, TimeoutMiddleware, TimeoutMiddlewareBuilder,
};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);
const URL: &str = "http://localhost/resource";

/// One scripted reply of the fake server.
#[derive(Clone)]
enum Reply {
    Status(u16),
    StatusWithRetryAfter(u16, String),
    /// Never answers, like a server that stalls before the headers.
    Hang,
    /// Answers after this long.
    Delay(Duration, u16),
    /// Answers after this long with a `Retry-After` header.
    DelayWithRetryAfter(Duration, u16, String),
}

/// A last middleware that answers each call with the next scripted reply
/// (the last one repeats) and records when each call arrived.
#[derive(Clone)]
struct Script {
    replies: Arc<Vec<Reply>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(replies: Vec<Reply>) -> Self {
        Script {
            replies: Arc::new(replies),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Middleware for Script {
    async fn handle(
        &self,
        _request: Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len() - 1
        };
        let reply = self.replies[index.min(self.replies.len() - 1)].clone();
        let status = match reply {
            Reply::Status(status) => status,
            Reply::StatusWithRetryAfter(status, retry_after) => {
                let response = http::Response::builder()
                    .status(status)
                    .header(http::header::RETRY_AFTER, retry_after)
                    .body(Vec::new())
                    .unwrap();
                return Ok(Response::from(response));
            }
            Reply::Hang => std::future::pending().await,
            Reply::Delay(delay, status) => {
                tokio::time::sleep(delay).await;
                status
            }
            Reply::DelayWithRetryAfter(delay, status, retry_after) => {
                tokio::time::sleep(delay).await;
                let response = http::Response::builder()
                    .status(status)
                    .header(http::header::RETRY_AFTER, retry_after)
                    .body(Vec::new())
                    .unwrap();
                return Ok(Response::from(response));
            }
        };
        let response = http::Response::builder()
            .status(status)
            .body(Vec::new())
            .unwrap();
        Ok(Response::from(response))
    }
}

fn fixed_schedule() -> TimeoutMiddlewareBuilder {
    TimeoutMiddleware::builder()
        .attempt_timeout(300 * MS)
        .total_timeout(Duration::from_secs(120))
        .initial_backoff(100 * MS)
        .max_backoff(Duration::from_secs(10))
        .jitter(false)
}

fn client(builder: TimeoutMiddlewareBuilder, script: &Script) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(builder.build().unwrap())
        .with(script.clone())
        .build()
}

fn attempts(response: &Response) -> &Attempts {
    response
        .extensions()
        .get::<Attempts>()
        .expect("every response carries Attempts")
}

fn offsets(calls: &[Instant]) -> Vec<Duration> {
    calls.iter().map(|call| *call - calls[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_honoured_in_virtual_time() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(503, "30".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);
    let real_start = std::time::Instant::now();
    let virtual_start = Instant::now();

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(attempts(&response).count(), 2);
    assert_eq!(
        attempts(&response).history()[0].retry_after(),
        Some(Duration::from_secs(30))
    );
    assert!(virtual_start.elapsed() >= Duration::from_secs(30));
    assert!(real_start.elapsed() < Duration::from_secs(1));
    assert_eq!(offsets(&script.calls())[1], Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn retry_after_on_429_is_honoured() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(429, "2".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(offsets(&script.calls())[1], Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let in_five_seconds = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(503, in_five_seconds),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    // An HTTP date has whole seconds, and wall-clock time passes between
    // writing the date and parsing it, so the wait is a little under 5 s.
    let wait = offsets(&script.calls())[1];
    assert_eq!(response.status(), StatusCode::OK);
    assert!(wait > Duration::from_secs(3), "waited {wait:?}");
    assert!(wait <= Duration::from_secs(5), "waited {wait:?}");
}

#[tokio::test(start_paused = true)]
async fn zero_retry_after_keeps_backoff() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(503, "0".into()),
        Reply::StatusWithRetryAfter(503, "0".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    let offsets = offsets(&script.calls());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(offsets[1], 100 * MS);
    assert_eq!(offsets[2], 300 * MS);
    assert_eq!(
        attempts(&response).history()[0].retry_after(),
        Some(Duration::ZERO)
    );
}

#[tokio::test(start_paused = true)]
async fn short_total_alone_still_retries() {
    let script = Script::new(vec![Reply::Status(503), Reply::Status(200)]);
    let builder = TimeoutMiddleware::builder().total_timeout(100 * MS);
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    // The default backoff of 100 ms would never fit. A tenth of the total,
    // with jitter, does.
    let offsets = offsets(&script.calls());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(script.calls().len(), 2);
    assert!(offsets[1] < 50 * MS, "waited {:?}", offsets[1]);
}

#[tokio::test(start_paused = true)]
async fn backoff_past_deadline_yields_to_retry_after() {
    let script = Script::new(vec![
        Reply::DelayWithRetryAfter(600 * MS, 503, "1".into()),
        Reply::Status(200),
    ]);
    let builder = fixed_schedule()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(3))
        .initial_backoff(2_500 * MS)
        .max_backoff(2_500 * MS);
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    // A backoff of 2.5 s does not fit in the 2.4 s left, the server's 1 s
    // does, and the retry keeps 1.4 s to run.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(script.calls().len(), 2);
    assert_eq!(offsets(&script.calls())[1], 1_600 * MS);
}

#[tokio::test(start_paused = true)]
async fn zero_retry_after_with_backoff_past_deadline_stops() {
    let script = Script::new(vec![Reply::DelayWithRetryAfter(200 * MS, 503, "0".into())]);
    let builder = fixed_schedule()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(1))
        .initial_backoff(900 * MS)
        .max_backoff(900 * MS);
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    // A zero from the server does not replace a backoff that does not fit.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(attempts(&response).stop_reason(), &StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn past_retry_after_date_keeps_backoff() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(429, "Thu, 01 Jan 1970 00:00:00 GMT".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(offsets(&script.calls())[1], 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn short_retry_after_waits_backoff() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(503, "1".into()),
        Reply::Status(200),
    ]);
    let client = client(
        fixed_schedule().initial_backoff(Duration::from_secs(3)),
        &script,
    );

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(offsets(&script.calls())[1], Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn unparsable_retry_after_falls_back_to_backoff() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(503, "soon".into()),
        Reply::StatusWithRetryAfter(503, "-5".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(attempts(&response).history()[0].retry_after(), None);
    assert_eq!(
        offsets(&script.calls()),
        vec![Duration::ZERO, 100 * MS, 300 * MS]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_deadline_returns_response_at_once() {
    let script = Script::new(vec![Reply::StatusWithRetryAfter(503, "100".into())]);
    let client = client(
        fixed_schedule().total_timeout(Duration::from_secs(60)),
        &script,
    );
    let start = Instant::now();

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(attempts(&response).count(), 1);
    assert_eq!(
        attempts(&response).refused_retry_after(),
        Some(Duration::from_secs(100))
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_cap_returns_response_at_once() {
    let script = Script::new(vec![Reply::StatusWithRetryAfter(429, "30".into())]);
    let builder = fixed_schedule().max_retry_after(Duration::from_secs(10));
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(
        attempts(&response).stop_reason(),
        &StopReason::RetryAfterTooLong(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn huge_retry_after_does_not_overflow() {
    let script = Script::new(vec![Reply::StatusWithRetryAfter(
        503,
        "184467440737095516150000".into(),
    )]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        attempts(&response).refused_retry_after(),
        Some(Duration::from_secs(u64::MAX))
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_between_attempts() {
    let script = Script::new(vec![Reply::Status(500)]);
    let client = client(fixed_schedule().max_retries(3), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        offsets(&script.calls()),
        vec![Duration::ZERO, 100 * MS, 300 * MS, 700 * MS]
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_return_last_status() {
    let script = Script::new(vec![Reply::Status(503)]);
    let client = client(fixed_schedule().max_retries(2), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 3);
    assert_eq!(attempts(&response).count(), 3);
    assert_eq!(
        attempts(&response).stop_reason(),
        &StopReason::MaxRetries(2)
    );
    let waits: Vec<Option<Duration>> = attempts(&response)
        .history()
        .iter()
        .map(|attempt| attempt.wait_after())
        .collect();
    assert_eq!(waits, vec![Some(100 * MS), Some(200 * MS), None]);
}

#[tokio::test(start_paused = true)]
async fn zero_retries_means_one_attempt() {
    let script = Script::new(vec![Reply::Status(503)]);
    let client = client(fixed_schedule().max_retries(0), &script);

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(script.calls().len(), 1);
    assert_eq!(
        attempts(&response).stop_reason(),
        &StopReason::MaxRetries(0)
    );
}

#[tokio::test(start_paused = true)]
async fn each_transient_status_is_retried() {
    for status in [408, 429, 500, 502, 503, 504] {
        let script = Script::new(vec![Reply::Status(status), Reply::Status(200)]);
        let client = client(fixed_schedule(), &script);

        let response = client.get(URL).send().await.unwrap();

        assert_eq!(response.status(), StatusCode::OK, "after {status}");
        assert_eq!(script.calls().len(), 2, "after {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn other_statuses_are_returned_at_once() {
    for status in [200, 201, 301, 400, 401, 404, 409, 413, 501, 505] {
        let script = Script::new(vec![Reply::Status(status), Reply::Status(200)]);
        let client = client(fixed_schedule(), &script);

        let response = client.get(URL).send().await.unwrap();

        assert_eq!(response.status().as_u16(), status);
        assert_eq!(script.calls().len(), 1, "status {status}");
        assert_eq!(attempts(&response).stop_reason(), &StopReason::Completed);
    }
}

#[tokio::test(start_paused = true)]
async fn post_is_not_resent_after_status() {
    let script = Script::new(vec![Reply::Status(503), Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let response = client.post(URL).body("order").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(
        attempts(&response).stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
}

#[tokio::test(start_paused = true)]
async fn idempotent_methods_are_retried() {
    for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let script = Script::new(vec![Reply::Status(502), Reply::Status(200)]);
        let client = client(fixed_schedule(), &script);

        let response = client.request(method.clone(), URL).send().await.unwrap();

        assert_eq!(response.status(), StatusCode::OK, "{method}");
        assert_eq!(script.calls().len(), 2, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn one_shot_body_is_sent_once() {
    let script = Script::new(vec![Reply::Status(503), Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);
    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"stream"));

    let response = client
        .put(URL)
        .body(reqwest::Body::wrap(body))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(attempts(&response).stop_reason(), &StopReason::OneShotBody);
}

#[tokio::test(start_paused = true)]
async fn success_carries_one_attempt() {
    let script = Script::new(vec![Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let response = client.get(URL).send().await.unwrap();

    let attempts = attempts(&response);
    assert_eq!(attempts.count(), 1);
    assert_eq!(
        attempts.history()[0].outcome(),
        AttemptOutcome::Response(StatusCode::OK)
    );
    assert_eq!(attempts.stop_reason(), &StopReason::Completed);
}

#[tokio::test(start_paused = true)]
async fn no_wait_runs_past_deadline() {
    let script = Script::new(vec![Reply::Status(503)]);
    let builder = fixed_schedule()
        .initial_backoff(Duration::from_secs(1))
        .total_timeout(2_500 * MS)
        .max_retries(10);
    let client = client(builder, &script);
    let start = Instant::now();

    let response = client.get(URL).send().await.unwrap();

    // Waits of 1 s then 2 s: the second would end at 3 s, past the 2.5 s
    // deadline, so the call stops after the second attempt without waiting.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        offsets(&script.calls()),
        vec![Duration::ZERO, Duration::from_secs(1)]
    );
    assert_eq!(attempts(&response).stop_reason(), &StopReason::Deadline);
    // 1.5 s were left, so the reason names the next attempt, not an empty budget.
    assert_eq!(
        attempts(&response).stop_reason().to_string(),
        "too little time left before the total deadline for another attempt"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn last_attempt_is_clipped_to_deadline() {
    let script = Script::new(vec![Reply::Hang]);
    let builder = fixed_schedule()
        .total_timeout(Duration::from_secs(1))
        .max_retries(5);
    let client = client(builder, &script);
    let start = Instant::now();

    let err = client.get(URL).send().await.unwrap_err();

    // Attempts of 300 ms at 0 and 400 ms, then one clipped to the 100 ms
    // left at 900 ms.
    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(
        offsets(&script.calls()),
        vec![Duration::ZERO, 400 * MS, 900 * MS]
    );
    assert!(error.is_timeout());
    assert_eq!(error.attempts(), 3);
    assert_eq!(
        error.limit(),
        Some(Limit::TotalTimeout(Duration::from_secs(1)))
    );
    assert_eq!(error.history()[2].limit(), 100 * MS);
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
    assert_eq!(error.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_fires_on_stalled_attempt() {
    let script = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule().max_retries(1), &script);

    let err = client.get(URL).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert!(error.is_timeout());
    assert_eq!(error.phase(), Phase::Headers);
    assert_eq!(error.diagnosis(), Diagnosis::ServerStalled);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(1));
}

#[tokio::test(start_paused = true)]
async fn shorter_request_timeout_wins() {
    let script = Script::new(vec![Reply::Delay(Duration::from_secs(10), 200)]);
    let client = client(fixed_schedule().max_retries(0), &script);

    let err = client.get(URL).timeout(120 * MS).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.limit(), Some(Limit::RequestTimeout(120 * MS)));
    assert_eq!(error.history()[0].limit(), 120 * MS);
    assert_eq!(error.elapsed(), 120 * MS);
}

#[tokio::test(start_paused = true)]
async fn sub_millisecond_request_timeout_fails_before_sending() {
    let script = Script::new(vec![Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let err = client
        .get(URL)
        .timeout(Duration::from_nanos(1))
        .send()
        .await
        .unwrap_err();

    assert!(script.calls().is_empty());
    assert!(
        err.to_string()
            .contains("the request's timeout is 1ns, below 1ms"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn post_timeout_is_not_resent() {
    let script = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule(), &script);

    let err = client.post(URL).body("payment").send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(script.calls().len(), 1);
    assert_eq!(
        error.stop_reason(),
        &StopReason::NotIdempotent(http::Method::POST)
    );
    assert!(error.to_string().contains("not retried"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn dropping_call_cancels_backoff_wait() {
    let script = Script::new(vec![Reply::Status(503)]);
    let builder = fixed_schedule()
        .initial_backoff(Duration::from_secs(5))
        .max_retries(3);
    let client = client(builder, &script);

    let cut_short = tokio::time::timeout(Duration::from_secs(1), client.get(URL).send()).await;
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert!(
        cut_short.is_err(),
        "the call should still be waiting at 1 s"
    );
    assert_eq!(
        script.calls().len(),
        1,
        "no attempt after the call was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn post_with_idempotency_key_is_resent() {
    let script = Script::new(vec![Reply::Status(503), Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let response = client
        .post(URL)
        .header("Idempotency-Key", "order-7")
        .body("order")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(script.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_is_resent_when_opted_in_globally() {
    let script = Script::new(vec![Reply::Hang, Reply::Status(200)]);
    let client = client(fixed_schedule().retry_non_idempotent(true), &script);

    let response = client.patch(URL).body("patch").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(script.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_is_resent_when_opted_in_for_request() {
    let script = Script::new(vec![Reply::Status(502), Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let response = client
        .post(URL)
        .with_extension(RequestOverrides::new().retry_non_idempotent(true))
        .body("order")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(script.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn request_override_replaces_timeouts_and_retries() {
    let script = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule().max_retries(5), &script);
    let start = Instant::now();

    let err = client
        .get(URL)
        .with_extension(
            RequestOverrides::new()
                .attempt_timeout(50 * MS)
                .total_timeout(Duration::from_secs(10))
                .max_retries(1),
        )
        .send()
        .await
        .unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(50 * MS)));
    assert_eq!(error.stop_reason(), &StopReason::MaxRetries(1));
    assert_eq!(
        start.elapsed(),
        200 * MS,
        "two 50 ms attempts and a 100 ms wait"
    );
}

#[tokio::test(start_paused = true)]
async fn request_override_total_timeout_clips_attempt() {
    let script = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule(), &script);

    let err = client
        .get(URL)
        .with_extension(RequestOverrides::new().total_timeout(120 * MS))
        .send()
        .await
        .unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.limit(), Some(Limit::TotalTimeout(120 * MS)));
    assert_eq!(error.stop_reason(), &StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn zero_override_fails_before_sending() {
    let script = Script::new(vec![Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let err = client
        .get(URL)
        .with_extension(RequestOverrides::new().attempt_timeout(Duration::ZERO))
        .send()
        .await
        .unwrap_err();

    assert!(script.calls().is_empty());
    assert!(
        err.to_string()
            .contains("attempt_timeout in RequestOverrides is zero"),
        "{err}"
    );
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("not a middleware error: {err:?}");
    };
    let config = inner
        .downcast_ref::<reqwest_timeout::ConfigError>()
        .expect("a ConfigError inside, as RequestOverrides documents");
    assert_eq!(config.setting(), "attempt_timeout");
}

#[tokio::test(start_paused = true)]
async fn sub_millisecond_override_fails_before_sending() {
    let script = Script::new(vec![Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let err = client
        .get(URL)
        .with_extension(RequestOverrides::new().total_timeout(Duration::from_nanos(1)))
        .send()
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(script.calls().is_empty());
    assert!(
        message.contains("total_timeout in RequestOverrides is 1ns, below 1ms"),
        "{message}"
    );
    assert!(
        message.contains("set at least 1ms or leave it unset"),
        "{message}"
    );
    assert!(!message.contains("streamed body"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn stacked_layers_do_not_multiply_retries() {
    let script = Script::new(vec![Reply::Status(429)]);
    let layer = || fixed_schedule().max_retries(3).build().unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer())
        .with(layer())
        .with(script.clone())
        .build();

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(script.calls().len(), 4, "not 16");
    assert_eq!(attempts(&response).count(), 4);
}

/// A middleware that, before passing its call on, makes a separate call of
/// its own through `side`, as a middleware that fetches a token does. It
/// keeps each side call's status, or the limit that ended it.
struct SideCall {
    side: ClientWithMiddleware,
    /// Whether every side call sends the same `Extensions`, kept between
    /// calls, instead of new ones.
    reuse_extensions: bool,
    stored: Mutex<Option<Extensions>>,
    outcomes: SideOutcomes,
}

/// The status of each side call, or the limit that ended it.
type SideOutcomes = Arc<Mutex<Vec<Result<u16, Option<Limit>>>>>;

impl SideCall {
    /// Returns the middleware and the outcomes that it records.
    fn new(side: ClientWithMiddleware, reuse_extensions: bool) -> (Self, SideOutcomes) {
        let outcomes = SideOutcomes::default();
        let middleware = SideCall {
            side,
            reuse_extensions,
            stored: Mutex::new(None),
            outcomes: Arc::clone(&outcomes),
        };
        (middleware, outcomes)
    }
}

#[async_trait]
impl Middleware for SideCall {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut side_extensions = if self.reuse_extensions {
            self.stored.lock().unwrap().take().unwrap_or_default()
        } else {
            Extensions::new()
        };
        let side_request = self.side.get(URL).build().unwrap();
        let sent = self
            .side
            .execute_with_extensions(side_request, &mut side_extensions)
            .await;
        if self.reuse_extensions {
            *self.stored.lock().unwrap() = Some(side_extensions);
        }
        let outcome = match sent {
            Ok(response) => Ok(response.status().as_u16()),
            Err(err) => Err(Error::find(&err).expect("a diagnosed error").limit()),
        };
        self.outcomes.lock().unwrap().push(outcome);
        next.run(request, extensions).await
    }
}

/// Returns a chain whose middleware makes a side call, with
/// `reuse_extensions` as [`SideCall`] takes it, to a server that never
/// responds, under a 100 ms attempt timeout. The chain's own calls get `200`.
fn chain_with_side_call(reuse_extensions: bool) -> (ClientWithMiddleware, SideOutcomes) {
    let hanging = Script::new(vec![Reply::Hang]);
    let side = client(
        fixed_schedule().attempt_timeout(100 * MS).max_retries(0),
        &hanging,
    );
    let (side_call, outcomes) = SideCall::new(side, reuse_extensions);
    let script = Script::new(vec![Reply::Status(200)]);
    let chain = ClientBuilder::new(reqwest::Client::new())
        .with(fixed_schedule().max_retries(0).build().unwrap())
        .with(side_call)
        .with(script)
        .build();
    (chain, outcomes)
}

#[tokio::test(start_paused = true)]
async fn separate_call_inside_the_chain_keeps_its_limits() {
    let (client, outcomes) = chain_with_side_call(false);
    let start = Instant::now();

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), 1, "the side call ran once");
    assert_eq!(outcomes[0], Err(Some(Limit::AttemptTimeout(100 * MS))));
    assert_eq!(start.elapsed(), 100 * MS);
}

/// A layer that sends the rest of the chain a copy of the extensions, as a
/// layer that sends hedged tries must.
struct CopyExtensions;

#[async_trait]
impl Middleware for CopyExtensions {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut copy = extensions.clone();
        next.run(request, &mut copy).await
    }
}

#[tokio::test(start_paused = true)]
async fn stacked_layers_with_copied_extensions_between() {
    let script = Script::new(vec![Reply::Status(503)]);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(fixed_schedule().max_retries(1).build().unwrap())
        .with(CopyExtensions)
        .with(fixed_schedule().max_retries(3).build().unwrap())
        .with(script.clone())
        .build();

    let response = client.get(URL).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 2, "not 8");
    assert_eq!(attempts(&response).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn side_call_reusing_its_extensions_keeps_limits() {
    let (client, outcomes) = chain_with_side_call(true);

    let first = client.get(URL).send().await.unwrap();
    let second = client.get(URL).send().await.unwrap();

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let timed_out = Err(Some(Limit::AttemptTimeout(100 * MS)));
    assert_eq!(*outcomes.lock().unwrap(), vec![timed_out, timed_out]);
}

#[tokio::test(start_paused = true)]
async fn caller_extensions_come_back_unmarked() {
    let hanging = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule().max_retries(0), &hanging);
    let mut extensions = Extensions::new();
    extensions.insert(42_u32);

    let request = client.get(URL).timeout(Duration::ZERO).build().unwrap();
    let rejected = client
        .execute_with_extensions(request, &mut extensions)
        .await;
    let after_rejected = extensions.len();
    let request = client.get(URL).build().unwrap();
    let timed_out = client
        .execute_with_extensions(request, &mut extensions)
        .await;
    let after_timeout = extensions.len();
    let request = client.get(URL).build().unwrap();
    let dropped = tokio::time::timeout(
        50 * MS,
        client.execute_with_extensions(request, &mut extensions),
    )
    .await;

    assert!(rejected.is_err());
    assert!(timed_out.is_err());
    assert!(dropped.is_err(), "the third call should be dropped");
    assert_eq!(after_rejected, 1);
    assert_eq!(after_timeout, 1);
    assert_eq!(extensions.len(), 1);
    assert_eq!(extensions.get::<u32>(), Some(&42));
}

#[tokio::test(start_paused = true)]
async fn stacked_outer_deadline_wins() {
    let script = Script::new(vec![Reply::Hang]);
    let outer = fixed_schedule()
        .attempt_timeout(100 * MS)
        .total_timeout(250 * MS)
        .build()
        .unwrap();
    let inner = fixed_schedule()
        .attempt_timeout(Duration::from_secs(30))
        .total_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(outer)
        .with(inner)
        .with(script.clone())
        .build();
    let start = Instant::now();

    let err = client.get(URL).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(start.elapsed(), 250 * MS);
    assert_eq!(error.limit(), Some(Limit::TotalTimeout(250 * MS)));
}

#[tokio::test(start_paused = true)]
async fn timeout_after_near_limit_response_is_timeout_too_short() {
    let script = Script::new(vec![Reply::Delay(280 * MS, 200), Reply::Hang]);
    let client = client(fixed_schedule().max_retries(1), &script);
    let first = client.get(URL).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);

    let err = client.get(URL).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.diagnosis(), Diagnosis::TimeoutTooShort);
    assert_eq!(
        error.evidence(),
        ["all 2 timed-out attempts ran until the 300ms limit, while responses from this host took up to 280ms"]
    );
    assert!(error.to_string().contains("timeout-too-short"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn report_shows_attempts_as_timeline() {
    let script = Script::new(vec![Reply::Hang]);
    let client = client(fixed_schedule().max_retries(1), &script);

    let err = client.get(URL).send().await.unwrap_err();

    let error = Error::find(&err).expect("a diagnosed error");
    let report = error.report().to_string();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "GET http://localhost:80/resource: timed out waiting for the response headers after the attempt timeout of 300ms"
    );
    assert!(lines.contains(&"  phase      headers"), "{report}");
    assert!(
        lines.contains(&"  limit      attempt timeout of 300ms"),
        "{report}"
    );
    assert!(
        lines.contains(&"  stopped    max retries (1) reached"),
        "{report}"
    );
    assert!(lines.contains(&"  attempts   2 in 700ms"), "{report}");
    assert!(
        lines.contains(&"    #1  +0ms      timed out in headers (server-stalled) after 300ms, limit 300ms, then waited 100ms"),
        "{report}"
    );
    assert!(
        lines.contains(&"                  the attempt did not finish within 300ms"),
        "{report}"
    );
    assert_eq!(format!("{error:#}"), report);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_limits_retries_during_outage() {
    let script = Script::new(vec![Reply::Status(503)]);
    let builder = fixed_schedule()
        .max_retries(3)
        .retry_budget(RetryBudget::new(0.2, 0));
    let client = client(builder, &script);
    let mut stopped_by_budget = 0;

    for _ in 0..100 {
        let response = client.get(URL).send().await.unwrap();
        if attempts(&response).stop_reason() == &StopReason::Budget {
            stopped_by_budget += 1;
        }
    }

    let requests = script.calls().len();
    assert!(requests <= 120, "{requests} requests for 100 calls");
    assert!(requests >= 110, "{requests} requests for 100 calls");
    assert!(
        stopped_by_budget > 50,
        "{stopped_by_budget} calls stopped by the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn unlimited_budget_retries_every_call() {
    let script = Script::new(vec![Reply::Status(503)]);
    let builder = fixed_schedule()
        .max_retries(3)
        .retry_budget(RetryBudget::unlimited());
    let client = client(builder, &script);

    for _ in 0..20 {
        client.get(URL).send().await.unwrap();
    }

    assert_eq!(script.calls().len(), 80);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_is_shared_by_clones() {
    let script = Script::new(vec![Reply::Hang]);
    let middleware = fixed_schedule()
        .max_retries(5)
        .retry_budget(RetryBudget::new(0.0, 1))
        .build()
        .unwrap();
    let first = ClientBuilder::new(reqwest::Client::new())
        .with(middleware.clone())
        .with(script.clone())
        .build();
    let second = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .with(script.clone())
        .build();

    let first_err = first.get(URL).send().await.unwrap_err();
    let second_err = second.get(URL).send().await.unwrap_err();

    // The one retry of the floor goes to the first call; the second call,
    // through a clone, finds the budget empty for the next few hundred ms.
    let first_error = Error::find(&first_err).expect("a diagnosed error");
    let second_error = Error::find(&second_err).expect("a diagnosed error");
    assert_eq!(first_error.stop_reason(), &StopReason::Budget);
    assert_eq!(second_error.stop_reason(), &StopReason::Budget);
    assert!(
        second_error
            .to_string()
            .contains("retry budget for this host is spent"),
        "{second_error}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_on_413_is_honoured() {
    let script = Script::new(vec![
        Reply::StatusWithRetryAfter(413, "3".into()),
        Reply::Status(200),
    ]);
    let client = client(fixed_schedule(), &script);

    let response = client.put(URL).body("large").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(offsets(&script.calls())[1], Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn retries_are_spread_by_jitter() {
    let mut replies = vec![Reply::Status(503); 20];
    replies.push(Reply::Status(200));
    let script = Script::new(replies);
    let builder = TimeoutMiddleware::builder()
        .attempt_timeout(300 * MS)
        .total_timeout(Duration::from_secs(10))
        .initial_backoff(100 * MS)
        .retry_budget(RetryBudget::unlimited());
    let client = client(builder, &script);
    let start = Instant::now();

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        calls.spawn(async move { client.get(URL).send().await });
    }
    let responses = calls.join_all().await;

    let retry_offsets: Vec<Duration> = script.calls()[20..]
        .iter()
        .map(|call| *call - start)
        .collect();
    let earliest = *retry_offsets.iter().min().unwrap();
    let latest = *retry_offsets.iter().max().unwrap();
    assert!(responses
        .iter()
        .all(|response| response.as_ref().unwrap().status() == 200));
    assert_eq!(retry_offsets.len(), 20);
    assert!(earliest >= 100 * MS, "earliest retry at {earliest:?}");
    assert!(
        latest - earliest >= 20 * MS,
        "20 retries all started within {:?}: {retry_offsets:?}",
        latest - earliest
    );
}

/// An outer layer that sends the same request and extensions twice through
/// the rest of the chain, as a retry middleware placed before ours does. The
/// first try is cut short after `first_try_limit`, if set, by dropping it.
struct SendTwice {
    first_try_limit: Option<Duration>,
}

#[async_trait]
impl Middleware for SendTwice {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let copy = request.try_clone().expect("a cloneable request");
        let first = next.clone().run(copy, extensions);
        match self.first_try_limit {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, first).await;
            }
            None => {
                let _ = first.await;
            }
        }
        next.run(request, extensions).await
    }
}

async fn second_try_through_outer_layer(first_try_limit: Option<Duration>) -> Duration {
    let script = Script::new(vec![Reply::Hang]);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(SendTwice { first_try_limit })
        .with(fixed_schedule().max_retries(0).build().unwrap())
        .with(script.clone())
        .build();
    let start = Instant::now();

    let outcome = tokio::time::timeout(Duration::from_secs(60), client.get(URL).send()).await;

    let err = outcome
        .expect("the second try hung: the middleware passed it through without limits")
        .unwrap_err();
    let error = Error::find(&err).expect("a diagnosed error");
    assert_eq!(error.limit(), Some(Limit::AttemptTimeout(300 * MS)));
    assert_eq!(script.calls().len(), 2);
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn outer_layer_resending_gets_limits_each_time() {
    let elapsed = second_try_through_outer_layer(None).await;

    assert_eq!(elapsed, 600 * MS);
}

#[tokio::test(start_paused = true)]
async fn outer_layer_resending_after_drop_gets_limits() {
    let elapsed = second_try_through_outer_layer(Some(100 * MS)).await;

    assert_eq!(elapsed, 400 * MS);
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_at_deadline_stops_for_deadline() {
    let script = Script::new(vec![Reply::DelayWithRetryAfter(995 * MS, 429, "0".into())]);
    let builder = fixed_schedule()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(1));
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    // 5 ms are left: too little for another attempt, whatever the server asks.
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(attempts(&response).stop_reason(), &StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn retry_with_too_little_time_left_is_not_started() {
    let script = Script::new(vec![Reply::Delay(985 * MS, 503)]);
    let builder = fixed_schedule()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(1))
        .initial_backoff(Duration::from_millis(10));
    let client = client(builder, &script);

    let response = client.get(URL).send().await.unwrap();

    // A 10 ms wait would leave 5 ms, under the least time an attempt needs.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(attempts(&response).stop_reason(), &StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn empty_idempotency_key_does_not_allow_resend() {
    let script = Script::new(vec![Reply::Status(503), Reply::Status(200)]);
    let client = client(fixed_schedule(), &script);

    let response = client
        .post(URL)
        .header("Idempotency-Key", "  ")
        .body("order")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.calls().len(), 1);
}
