//! The least work that any middleware with this crate's guarantees must do
//! on the success path, with nothing else, to measure beside it.
//!
//! A middleware that retries must keep a copy of the request before it sends
//! it. One that limits the attempt must arm a timer. One that limits and
//! diagnoses the body while the caller reads it must put a wrapper around
//! the body, and reqwest 0.13 lets a middleware do that only by converting
//! the response to `http::Response` and back. [`Floor`] does those three
//! steps and nothing more: no configuration, no classification, no record.

use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Extensions;
use http_body::{Body, Frame, SizeHint};
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};

/// The steps of [`Floor`] to take.
#[derive(Debug, Clone, Copy)]
pub enum Steps {
    /// Copy the request, as a retry layer keeps it for the next attempt.
    Copy,
    /// Wrap the response's body, as a body guard does.
    Wrap,
    /// Copy the request, run the rest of the chain under one timer, and
    /// wrap the body.
    All,
}

/// A middleware that takes only the unavoidable [`Steps`].
#[derive(Debug)]
pub struct Floor {
    pub steps: Steps,
    pub timer: Duration,
}

#[async_trait]
impl Middleware for Floor {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let copy = matches!(self.steps, Steps::Copy | Steps::All).then(|| request.try_clone());
        let response = match self.steps {
            Steps::All => tokio::time::timeout(self.timer, next.run(request, extensions))
                .await
                .map_err(reqwest_middleware::Error::middleware)??,
            Steps::Copy | Steps::Wrap => next.run(request, extensions).await?,
        };
        drop(copy);
        Ok(match self.steps {
            Steps::Copy => response,
            Steps::Wrap | Steps::All => wrap_body(response),
        })
    }
}

/// Puts [`PassThrough`] around the body of `response`, keeping its URL and
/// extensions, in the cheapest way known with reqwest 0.13's public API.
fn wrap_body(response: Response) -> Response {
    let url = response.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let body = reqwest::Body::wrap(PassThrough(body));
    let mut builder = http::Response::builder();
    if let Some(slot) = builder.extensions_mut() {
        mem::swap(slot, &mut parts.extensions);
    }
    if let Ok(carrier) = builder.url(url).body(()) {
        parts.extensions = carrier.into_parts().0.extensions;
    }
    Response::from(http::Response::from_parts(parts, body))
}

/// A body that hands on its inner body's frames unchanged.
struct PassThrough(reqwest::Body);

impl Body for PassThrough {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}
