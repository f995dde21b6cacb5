use std::fmt;
use std::time::Duration;

use crate::body::MinThroughput;
use crate::format::DisplayDuration;

/// The limit that ended an attempt: a time limit, or the minimum body
/// throughput.
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
    /// middleware has been given it, and otherwise how long the attempt ran before the
    /// timeout fired.
    ///
    /// [`TimeoutMiddlewareBuilder::connect_timeout`]: crate::TimeoutMiddlewareBuilder::connect_timeout
    ClientConnectTimeout(Duration),
    /// A timeout of the wrapped `reqwest::Client` that fired before the
    /// middleware's limit, such as its
    /// [`read_timeout`](reqwest::ClientBuilder::read_timeout). The value is
    /// how long the attempt ran before it fired.
    ClientTimeout(Duration),
    /// The middleware's response header timeout, with its configured value.
    ResponseHeaderTimeout(Duration),
    /// The middleware's body idle timeout, with its configured value.
    BodyIdleTimeout(Duration),
    /// The middleware's minimum body throughput.
    MinBodyThroughput(MinThroughput),
}

impl Limit {
    /// Returns the value of the limit: for a client timeout that the
    /// middleware does not know, the time it took to fire, and for
    /// [`MinBodyThroughput`](Limit::MinBodyThroughput), the window the rate
    /// is measured over.
    pub fn value(&self) -> Duration {
        match *self {
            Limit::AttemptTimeout(value)
            | Limit::TotalTimeout(value)
            | Limit::RequestTimeout(value)
            | Limit::ClientConnectTimeout(value)
            | Limit::ClientTimeout(value)
            | Limit::ResponseHeaderTimeout(value)
            | Limit::BodyIdleTimeout(value) => value,
            Limit::MinBodyThroughput(min) => min.window(),
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
            Limit::ResponseHeaderTimeout(value) => {
                write!(f, "response header timeout of {}", DisplayDuration(value))
            }
            Limit::BodyIdleTimeout(value) => {
                write!(f, "body idle timeout of {}", DisplayDuration(value))
            }
            Limit::MinBodyThroughput(min) => write!(f, "minimum body throughput of {min}"),
        }
    }
}
