//! Buffering of small streamed request bodies, so that a request whose body
//! is a stream can be sent again.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use reqwest::{Body, Request};

use crate::error::BoxError;

/// Reads a streamed request body into memory when it is at most `max_bytes`
/// long, so that the request can be cloned. A longer body, one that fails,
/// or one that does not end within `time_limit` is sent as it is, with the
/// bytes read so far put back in front; such a request stays one-shot.
pub(crate) async fn buffer_small_body(
    mut request: Request,
    max_bytes: usize,
    time_limit: Duration,
) -> Request {
    let Some(body) = request.body_mut().take() else {
        return request;
    };
    if body.as_bytes().is_some() {
        *request.body_mut() = Some(body);
        return request;
    }

    let mut read = ReadPrefix {
        body,
        prefix: Vec::new(),
        prefix_len: 0,
    };
    let outcome = tokio::time::timeout(time_limit, read.until_end_or(max_bytes)).await;
    let body = match outcome {
        Ok(Ok(true)) => Body::from(read.concatenated()),
        _ => Body::wrap(Prefixed {
            prefix: read.prefix.into_iter(),
            rest: read.body,
        }),
    };
    *request.body_mut() = Some(body);
    request
}

/// A streamed body and the chunks already read from it.
struct ReadPrefix {
    body: Body,
    prefix: Vec<Bytes>,
    prefix_len: usize,
}

impl ReadPrefix {
    /// Reads chunks until the body ends (`Ok(true)`) or more than
    /// `max_bytes` have been read (`Ok(false)`). Trailers end the reading
    /// too, since a buffered body cannot carry them.
    async fn until_end_or(&mut self, max_bytes: usize) -> Result<bool, BoxError> {
        while self.prefix_len <= max_bytes {
            let Some(frame) = self.body.frame().await else {
                return Ok(true);
            };
            match frame?.into_data() {
                Ok(data) => {
                    self.prefix_len += data.len();
                    self.prefix.push(data);
                }
                Err(_trailers) => return Ok(false),
            }
        }
        Ok(false)
    }

    fn concatenated(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.prefix_len);
        for chunk in &self.prefix {
            all.extend_from_slice(chunk);
        }
        all.freeze()
    }
}

/// The chunks read while trying to buffer a body, followed by the rest of
/// the stream.
struct Prefixed {
    prefix: std::vec::IntoIter<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(chunk) = self.prefix.next() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map_err(|error| Box::new(error) as BoxError)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix: usize = self.prefix.as_slice().iter().map(Bytes::len).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(prefix as u64));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(prefix as u64));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed body made of fixed chunks.
    struct Chunks(std::vec::IntoIter<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.0.next().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn streamed(chunks: &[&'static [u8]]) -> Body {
        let chunks: Vec<Bytes> = chunks
            .iter()
            .map(|chunk| Bytes::from_static(chunk))
            .collect();
        Body::wrap(Chunks(chunks.into_iter()))
    }

    fn request_with(body: Body) -> Request {
        let mut request = Request::new(http::Method::PUT, "http://localhost/".parse().unwrap());
        *request.body_mut() = Some(body);
        request
    }

    async fn body_bytes(mut request: Request) -> Bytes {
        let body = request.body_mut().take().expect("the request has a body");
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn small_stream_becomes_cloneable() {
        let request = request_with(streamed(&[b"hello ", b"world"]));

        let request = buffer_small_body(request, 64, Duration::from_secs(1)).await;

        assert!(request.try_clone().is_some());
        assert_eq!(
            body_bytes(request).await,
            Bytes::from_static(b"hello world")
        );
    }

    #[tokio::test]
    async fn large_stream_stays_one_shot_and_complete() {
        let request = request_with(streamed(&[b"0123456789", b"abcdefghij", b"KLMNOPQRST"]));

        let request = buffer_small_body(request, 12, Duration::from_secs(1)).await;

        assert!(request.try_clone().is_none());
        assert_eq!(
            body_bytes(request).await,
            Bytes::from_static(b"0123456789abcdefghijKLMNOPQRST")
        );
    }

    #[tokio::test]
    async fn bytes_body_is_left_alone() {
        let request = request_with(Body::from("already bytes"));

        let request = buffer_small_body(request, 4, Duration::from_secs(1)).await;

        assert!(request.try_clone().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_stream_is_sent_as_it_is_after_time_limit() {
        let request = request_with(Body::wrap(http_body_util::StreamBody::new(Pending)));

        let request = buffer_small_body(request, 64, Duration::from_millis(50)).await;

        assert!(request.try_clone().is_none());
    }

    /// A stream that never yields.
    struct Pending;

    impl futures_core::Stream for Pending {
        type Item = Result<Frame<Bytes>, std::io::Error>;

        fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }
}
