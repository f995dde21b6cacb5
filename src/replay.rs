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

/// Returns whether `request` has a streamed body, which
/// `Request::try_clone` cannot copy. Asking the body is cheaper than a copy
/// made only to see whether it fails.
pub(crate) fn has_streamed_body(request: &Request) -> bool {
    request.body().is_some_and(|body| body.as_bytes().is_none())
}

/// Reads a streamed request body into memory when it is at most `max_bytes`
/// long, so that the request can be cloned. A longer body, one with trailers,
/// one that fails, or one that does not end within `time_limit` is sent as it
/// is, with the frames read so far put back in front. Such a request stays
/// one-shot. An error from the stream is returned by the new body after the
/// data read before it, so the send fails as it would without buffering.
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
        last: None,
    };
    let outcome = tokio::time::timeout(time_limit, read.until_end_or(max_bytes)).await;
    let body = match outcome {
        Ok(true) => Body::from(read.concatenated()),
        _ => Body::wrap(Prefixed {
            prefix: read.prefix.into_iter(),
            last: read.last,
            rest: Some(read.body),
        }),
    };
    *request.body_mut() = Some(body);
    request
}

/// A trailers frame or a stream error, which only a streamed body can carry.
type LastFrame = Result<Frame<Bytes>, BoxError>;

/// A streamed body and the frames already read from it.
struct ReadPrefix {
    body: Body,
    prefix: Vec<Bytes>,
    prefix_len: usize,
    /// The trailers or the error that ended the reading.
    last: Option<LastFrame>,
}

impl ReadPrefix {
    /// Reads chunks until the body ends (true) or more than `max_bytes`
    /// have been read (false). A trailers frame or an error ends the reading
    /// too (false) and is kept in `last`, since a buffered body cannot carry
    /// either.
    async fn until_end_or(&mut self, max_bytes: usize) -> bool {
        while self.prefix_len <= max_bytes {
            let frame = match self.body.frame().await {
                None => return true,
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    self.last = Some(Err(Box::new(error)));
                    return false;
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    self.prefix_len += data.len();
                    self.prefix.push(data);
                }
                Err(trailers) => {
                    self.last = Some(Ok(trailers));
                    return false;
                }
            }
        }
        false
    }

    fn concatenated(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.prefix_len);
        for chunk in &self.prefix {
            all.extend_from_slice(chunk);
        }
        all.freeze()
    }
}

/// The frames read while trying to buffer a body, followed by the rest of
/// the stream.
struct Prefixed {
    prefix: std::vec::IntoIter<Bytes>,
    /// The trailers or the error read after the prefix.
    last: Option<LastFrame>,
    /// The rest of the stream, or `None` once the body has returned an
    /// error, so that the caller's stream is not polled after its error.
    rest: Option<Body>,
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
        if let Some(last) = self.last.take() {
            if last.is_err() {
                self.rest = None;
            }
            return Poll::Ready(Some(last));
        }
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        Pin::new(rest)
            .poll_frame(cx)
            .map_err(|error| Box::new(error) as BoxError)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix: usize = self.prefix.as_slice().iter().map(Bytes::len).sum();
        let Some(rest) = &self.rest else {
            return SizeHint::with_exact(prefix as u64);
        };
        let rest = rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(prefix as u64));
        // While trailers or an error wait behind the prefix, the upper bound
        // stays open. Given an exact length, hyper sends a Content-Length
        // body, which cannot carry trailers, and stops polling once that many
        // bytes are sent, so it would never see an error that follows them.
        if let (Some(upper), None) = (rest.upper(), &self.last) {
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

    /// A streamed body that yields the frames or errors it was given, then
    /// ends. Its size hint is the exact length of the data frames left.
    struct Frames(std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.0.next())
        }

        fn size_hint(&self) -> SizeHint {
            let data_len: usize = self
                .0
                .as_slice()
                .iter()
                .filter_map(|frame| frame.as_ref().ok()?.data_ref().map(Bytes::len))
                .sum();
            SizeHint::with_exact(data_len as u64)
        }
    }

    #[tokio::test]
    async fn failing_stream_keeps_its_error() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"first-half|"))),
            Err(std::io::Error::other("disk read failed")),
        ];
        let request = request_with(Body::wrap(Frames(frames.into_iter())));

        let mut request = buffer_small_body(request, 1024, Duration::from_secs(1)).await;

        assert!(request.try_clone().is_none());
        let mut body = request.body_mut().take().expect("the request has a body");
        // An exact length would let hyper end the body before the error.
        assert_eq!(body.size_hint().upper(), None);
        let first = body.frame().await.expect("a first frame").unwrap();
        assert_eq!(
            first.into_data().unwrap(),
            Bytes::from_static(b"first-half|")
        );
        let second = body.frame().await.expect("the stream's error, not the end");
        let error = second.expect_err("the stream's error");
        assert!(
            crate::format::error_chain_text(&error).contains("disk read failed"),
            "{error:?}"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn trailers_are_passed_on() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("checksum", http::HeaderValue::from_static("abc"));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let request = request_with(Body::wrap(Frames(frames.into_iter())));

        let mut request = buffer_small_body(request, 1024, Duration::from_secs(1)).await;

        assert!(request.try_clone().is_none());
        let body = request.body_mut().take().expect("the request has a body");
        // A Content-Length body cannot carry trailers.
        assert_eq!(body.size_hint().upper(), None);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"));
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
