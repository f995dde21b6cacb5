//! The multi-line report of a failed call, with its attempts as a timeline.

use std::fmt;

use crate::error::Error;
use crate::format::DisplayDuration;

/// A multi-line report of an [`Error`]: what failed, the likely cause, the
/// evidence, what to check next, and every attempt with its timing.
///
/// Made by [`Error::report`]; the alternate form `{:#}` of the error prints
/// the same.
///
/// ```text
/// GET http://127.0.0.1:41715/: could not connect
///   cause      the connection was refused (connect-refused)
///   evidence   all 3 attempts were refused within 1ms: the server is not running, or the port is wrong
///   next step  check that the server is running and listens on the host and port that refused the connection
///   phase      connect
///   limit      none fired
///   stopped    max retries (2) reached
///   attempts   3 in 521ms
///     #1  +0ms     failed in connect (connect-refused) after 230µs, limit 600ms, then waited 131ms
///                   error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    error: &'a Error,
}

impl<'a> Report<'a> {
    pub(crate) fn new(error: &'a Error) -> Self {
        Report { error }
    }
}

/// Writes one labelled line of the report.
fn line(f: &mut fmt::Formatter<'_>, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "  {label:<10} {value}")
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.error;
        write!(f, "{} {}: ", error.method(), error.target())?;
        error.describe_failure(f)?;
        writeln!(f)?;

        let diagnosis = error.diagnosis();
        line(
            f,
            "cause",
            format_args!("{} ({})", diagnosis.summary(), diagnosis.code()),
        )?;
        if let Some(note) = error.note() {
            line(f, "", note.text())?;
        }
        for (index, evidence) in error.evidence().iter().enumerate() {
            line(f, if index == 0 { "evidence" } else { "" }, evidence)?;
        }
        if let Some(probe) = error.probe() {
            line(f, "probe", probe)?;
        }
        line(f, "next step", diagnosis.hint())?;
        line(f, "phase", error.phase())?;
        match error.limit() {
            Some(limit) => line(f, "limit", limit)?,
            None => line(f, "limit", "none fired")?,
        }
        line(f, "stopped", error.stop_reason())?;
        line(
            f,
            "attempts",
            format_args!(
                "{} in {}",
                error.attempts(),
                DisplayDuration(error.elapsed())
            ),
        )?;

        for attempt in error.history() {
            write!(
                f,
                "    #{:<2} +{:<8} {} after {}, limit {}",
                attempt.number(),
                DisplayDuration(attempt.started_after()).to_string(),
                attempt.outcome(),
                DisplayDuration(attempt.duration()),
                DisplayDuration(attempt.limit()),
            )?;
            if let Some(fired) = attempt.other_limit_fired() {
                write!(f, ", ended by the {fired}")?;
            }
            if let Some(retry_after) = attempt.retry_after() {
                write!(f, ", retry-after {}", DisplayDuration(retry_after))?;
            }
            if let Some(wait) = attempt.wait_after() {
                write!(f, ", then waited {}", DisplayDuration(wait))?;
            }
            writeln!(f)?;
            if let Some(text) = attempt.error() {
                writeln!(f, "{:18}{text}", "")?;
            }
        }
        Ok(())
    }
}
