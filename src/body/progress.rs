use std::fmt;
use std::time::Duration;

use crate::format::{DisplayBytes, DisplayDuration, DisplayRate};

/// How far a body got before a failure: the response body for a failure in
/// [`Phase::Body`](crate::Phase::Body), the request body for one in
/// [`Phase::Send`](crate::Phase::Send).
///
/// Get it with [`Error::body_progress`](crate::Error::body_progress). It
/// displays as `640 KiB of 2 MiB in 312ms (2 MiB/s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyProgress {
    bytes: u64,
    expected_len: Option<u64>,
    elapsed: Duration,
}

impl BodyProgress {
    pub(crate) fn new(bytes: u64, expected_len: Option<u64>, elapsed: Duration) -> Self {
        BodyProgress {
            bytes,
            expected_len,
            elapsed,
        }
    }

    /// Returns how many body bytes were transferred: received for a response
    /// body, taken by the connection for a request body.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Returns the length the body was expected to have: the response's
    /// `Content-Length`, or the size of the request body, when known.
    pub fn expected_len(&self) -> Option<u64> {
        self.expected_len
    }

    /// Returns the time from the start of the transfer until the failure:
    /// from the arrival of the response headers, or from the start of the
    /// attempt for a request body.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Returns the average rate of the transfer, [`bytes`](Self::bytes) over
    /// [`elapsed`](Self::elapsed), in bytes per second; zero when no time
    /// has passed.
    pub fn bytes_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds == 0.0 {
            return 0.0;
        }
        self.bytes as f64 / seconds
    }
}

impl fmt::Display for BodyProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", DisplayBytes(self.bytes))?;
        if let Some(expected) = self.expected_len {
            write!(f, " of {}", DisplayBytes(expected))?;
        }
        write!(
            f,
            " in {} ({})",
            DisplayDuration(self.elapsed),
            DisplayRate(self.bytes_per_second())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_bytes_expected_time_and_rate() {
        let progress =
            BodyProgress::new(655_360, Some(2 * 1024 * 1024), Duration::from_millis(320));

        assert_eq!(progress.to_string(), "640 KiB of 2 MiB in 320ms (2 MiB/s)");
        assert_eq!(progress.bytes_per_second(), 2_048_000.0);
    }

    #[test]
    fn unknown_length_is_left_out() {
        let progress = BodyProgress::new(10, None, Duration::from_secs(2));

        assert_eq!(progress.to_string(), "10 B in 2s (5 B/s)");
    }

    #[test]
    fn zero_time_has_zero_rate() {
        let progress = BodyProgress::new(10, Some(100), Duration::ZERO);

        assert_eq!(progress.bytes_per_second(), 0.0);
    }
}
