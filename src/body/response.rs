//! Putting the guard around a response's body, or reading the body in
//! buffered mode, while the response keeps its URL, remote address and
//! extensions.

use std::mem;

use http::StatusCode;
use reqwest::{ResponseBuilderExt, Url};
use tokio::time::Instant;

use super::buffered::{buffer, BodyBuffering, Buffered};
use super::guard::{BodyContext, GuardedBody, StreamedBody};
use super::settings::BodySettings;
use crate::classify::Classified;

/// Puts the guard around the body of `response`, which the caller reads
/// after the middleware returns it. The guard counts from `headers_at`,
/// when the headers arrived, or from now when that is `None`.
pub(crate) fn guard(
    response: reqwest::Response,
    settings: &BodySettings,
    context: BodyContext,
    headers_at: Option<Instant>,
) -> reqwest::Response {
    let expected_len = response.content_length();
    if expected_len == Some(0) || has_no_body(&response, &context) {
        // An empty body cannot stall or break off.
        return response;
    }
    let now = headers_at.unwrap_or_else(Instant::now);
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let guard = GuardedBody::new(body, settings, expected_len, context, now);
    rebuild(
        parts,
        reqwest::Body::wrap(StreamedBody::new(guard, None)),
        url,
    )
}

/// Reads the body of `response` within the attempt, in buffered mode, or
/// guards it as [`guard`] does when it is larger than the maximum.
///
/// # Errors
///
/// The failure of the body, in `Phase::Body`.
pub(crate) async fn buffer_within_attempt(
    mut response: reqwest::Response,
    settings: &BodySettings,
    context: BodyContext,
) -> Result<reqwest::Response, Classified> {
    let expected_len = response.content_length();
    if expected_len == Some(0) || has_no_body(&response, &context) {
        // An empty body cannot stall or break off.
        response
            .extensions_mut()
            .insert(BodyBuffering::Buffered { len: 0 });
        return Ok(response);
    }

    let now = Instant::now();
    let url = response.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let mut guard = GuardedBody::new(body, settings, expected_len, context, now);

    let body = match buffer(&mut guard, settings.max_buffered_len, expected_len).await? {
        Buffered::Complete(bytes) => {
            parts.extensions.insert(BodyBuffering::Buffered {
                len: bytes.len() as u64,
            });
            reqwest::Body::from(bytes)
        }
        Buffered::TooLarge(prefix) => {
            parts.extensions.insert(BodyBuffering::Streamed {
                max_len: settings.max_buffered_len,
                content_length: expected_len,
            });
            reqwest::Body::wrap(StreamedBody::new(guard, prefix))
        }
    };
    Ok(rebuild(parts, body, url))
}

/// Returns whether `response` has no body, whatever length its headers
/// announce: it is the response to a `HEAD` request, or its status carries no body
/// (1xx, 204, 304). A `304` may repeat the `Content-Length` of the resource,
/// and hyper then reports that length as the body's over HTTP/2.
fn has_no_body(response: &reqwest::Response, context: &BodyContext) -> bool {
    let status = response.status();
    context.is_head()
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Builds a `reqwest::Response` from the parts of one and a new body.
///
/// The conversion to `http::Response` in reqwest 0.13 drops the URL. The
/// conversion back reads it from an extension that only
/// [`ResponseBuilderExt::url`] can set, and without it the URL would be
/// reqwest's placeholder. The response's own extensions pass through the
/// builder, so the URL goes into that map instead of a new one. The remote
/// address and the other extensions stay in it.
fn rebuild(mut parts: http::response::Parts, body: reqwest::Body, url: Url) -> reqwest::Response {
    let mut builder = http::Response::builder();
    if let Some(slot) = builder.extensions_mut() {
        mem::swap(slot, &mut parts.extensions);
    }
    // `Builder::body` fails only after an invalid status or header, and
    // this builder sets neither.
    if let Ok(carrier) = builder.url(url).body(()) {
        parts.extensions = carrier.into_parts().0.extensions;
    }
    reqwest::Response::from(http::Response::from_parts(parts, body))
}
