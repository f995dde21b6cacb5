//! Buffered mode: reading the whole response body within the attempt, so
//! that a failure of the body can be retried.

use std::mem;

use bytes::{Bytes, BytesMut};

use super::guard::GuardedBody;
use crate::classify::Classified;

/// The delivery of a response body in buffered mode: read in full, or
/// streamed because it was too large. Every response in that mode carries one
/// in its extensions.
///
/// ```no_run
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// use reqwest_timeout::BodyBuffering;
///
/// let response = client.get("http://localhost:8080/report").send().await?;
/// if let Some(BodyBuffering::Streamed { max_len, .. }) = response.extensions().get::<BodyBuffering>() {
///     eprintln!("the body is larger than {max_len} bytes, so a failure reading it is not retried");
/// }
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyBuffering {
    /// The middleware read the whole body within the attempt; reading it
    /// from the response cannot fail.
    Buffered {
        /// The length of the body, in bytes.
        len: u64,
    },
    /// The body was larger than the maximum, so it is streamed to the caller
    /// as without buffered mode, and a failure while reading it is not
    /// retried.
    Streamed {
        /// The configured
        /// [`max_buffered_response_len`](crate::TimeoutMiddlewareBuilder::max_buffered_response_len).
        max_len: u64,
        /// The response's `Content-Length`, when it had one. Without one, the
        /// middleware read past the maximum before it gave up buffering; the
        /// caller still reads the body from its first byte.
        content_length: Option<u64>,
    },
}

/// The outcome of reading a body in buffered mode.
#[derive(Debug)]
pub(crate) enum Buffered {
    /// The whole body.
    Complete(Bytes),
    /// The body is larger than the maximum; the bytes read before that was
    /// clear, if any, come first when the body is streamed.
    TooLarge(Option<Bytes>),
}

/// The largest buffer reserved before the body's bytes arrive.
const MAX_INITIAL_CAPACITY: usize = 1024 * 1024;

/// Reads the guarded body to the end, unless it is larger than `max_len`.
///
/// The guard ends a read that runs past the attempt's limit.
///
/// NOTE: trailers, which HTTP/1.1 allows after a chunked body, are dropped;
/// `reqwest::Response` offers no way to read them.
pub(crate) async fn buffer(
    guard: &mut GuardedBody,
    max_len: u64,
    expected_len: Option<u64>,
) -> Result<Buffered, Classified> {
    if expected_len.is_some_and(|len| len > max_len) {
        return Ok(Buffered::TooLarge(None));
    }
    // The server's Content-Length only sizes the first allocation, up to a
    // cap: a hostile length must not reserve memory before data arrives.
    let capacity = expected_len
        .map_or(0, |len| usize::try_from(len).unwrap_or(usize::MAX))
        .min(MAX_INITIAL_CAPACITY);
    let mut data = BytesMut::with_capacity(capacity);
    guard.buffering = true;
    let buffered = read_to_end(guard, &mut data, max_len).await;
    guard.buffering = false;
    buffered
}

/// Reads the rest of the guarded body into `data`, unless it grows larger
/// than `max_len`.
async fn read_to_end(
    guard: &mut GuardedBody,
    data: &mut BytesMut,
    max_len: u64,
) -> Result<Buffered, Classified> {
    loop {
        let frame = match std::future::poll_fn(|cx| guard.poll_guarded(cx)).await {
            None => return Ok(Buffered::Complete(mem::take(data).freeze())),
            Some(Err(failure)) => return Err(failure),
            Some(Ok(frame)) => frame,
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        data.extend_from_slice(&chunk);
        if data.len() as u64 > max_len {
            return Ok(Buffered::TooLarge(Some(mem::take(data).freeze())));
        }
    }
}
