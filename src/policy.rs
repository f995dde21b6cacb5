//! Rules for the statuses and methods that allow another attempt.

use http::{Method, StatusCode};

/// Statuses that show the server could not respond now but may soon: request
/// timeout, too many requests and the transient server errors.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
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
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The header of the IETF draft "The Idempotency-Key HTTP Header Field": a
/// server that honours it applies a repeated request only once.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
