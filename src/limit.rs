use std::fmt;
use std::time::Duration;

use crate::format::DisplayDuration;

/// The time limit that ended an attempt.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The middleware's attempt timeout, with its configured value.
    AttemptTimeout(Duration),
    /// The middleware's total timeout, with its configured value. It fires
    /// when the last attempt was cut short by the end of the call's budget.
    TotalTimeout(Duration),
    /// The timeout that the caller set on the request itself with
    /// [`reqwest::RequestBuilder::timeout`], when it was the shortest.
    RequestTimeout(Duration),
    /// The connect timeout of the wrapped `reqwest::Client`. A middleware
    /// cannot read that setting from the client, so the value is the one
    /// given to [`TimeoutMiddlewareBuilder::connect_timeout`] when the
    /// middleware knows it, and otherwise how long the attempt ran before the
    /// timeout fired.
    ///
    /// [`TimeoutMiddlewareBuilder::connect_timeout`]: crate::TimeoutMiddlewareBuilder::connect_timeout
    ClientConnectTimeout(Duration),
    /// A timeout of the wrapped `reqwest::Client` that fired before the
    /// middleware's limit, such as its
    /// [`read_timeout`](reqwest::ClientBuilder::read_timeout). The value is
    /// how long the attempt ran before it fired.
    ClientTimeout(Duration),
}

impl Limit {
    /// Returns the value of the limit; for a client timeout that the
    /// middleware does not know, the time it took to fire.
    pub fn value(&self) -> Duration {
        match *self {
            Limit::AttemptTimeout(value)
            | Limit::TotalTimeout(value)
            | Limit::RequestTimeout(value)
            | Limit::ClientConnectTimeout(value)
            | Limit::ClientTimeout(value) => value,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::AttemptTimeout(value) => {
                write!(f, "attempt timeout of {}", DisplayDuration(value))
            }
            Limit::TotalTimeout(value) => write!(f, "total timeout of {}", DisplayDuration(value)),
            Limit::RequestTimeout(value) => {
                write!(f, "request timeout of {}", DisplayDuration(value))
            }
            Limit::ClientConnectTimeout(value) => {
                write!(f, "client connect timeout of {}", DisplayDuration(value))
            }
            Limit::ClientTimeout(value) => write!(
                f,
                "client's own timeout (fired after {})",
                DisplayDuration(value)
            ),
        }
    }
}
