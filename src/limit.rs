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
    /// cannot read that setting, so the value is how long the attempt ran
    /// before it fired.
    ClientConnectTimeout(Duration),
}

impl Limit {
    /// Returns the value of the limit (for
    /// [`ClientConnectTimeout`](Limit::ClientConnectTimeout), the time it took
    /// to fire).
    pub fn value(&self) -> Duration {
        match *self {
            Limit::AttemptTimeout(value)
            | Limit::TotalTimeout(value)
            | Limit::RequestTimeout(value)
            | Limit::ClientConnectTimeout(value) => value,
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
            Limit::ClientConnectTimeout(value) => write!(
                f,
                "client connect timeout (fired after {})",
                DisplayDuration(value)
            ),
        }
    }
}
