//! Small display helpers shared by messages and logs.

use std::error::Error as StdError;
use std::fmt;

/// Joins the messages of `error` and its sources with `": "`, because
/// reqwest's own message leaves the causes out.
pub(crate) fn error_chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        // Some wrappers repeat their source's message; print it once.
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Shows a duration the way people write it: `300ms`, `2s`, `1.5s`, `2m30s`.
///
/// Below one second it shows whole milliseconds, or microseconds below one
/// millisecond; up to a minute, seconds with up to three decimals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisplayDuration(pub(crate) std::time::Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        let millis = duration.as_millis();
        if duration.is_zero() {
            return f.write_str("0ms");
        }
        if millis == 0 {
            return write!(f, "{}µs", duration.as_micros());
        }
        if millis < 1_000 {
            return write!(f, "{millis}ms");
        }
        let secs = duration.as_secs();
        if secs < 60 {
            let text = format!("{:.3}", duration.as_secs_f64());
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return write!(f, "{text}s");
        }
        let (minutes, seconds) = (secs / 60, secs % 60);
        if minutes < 60 {
            return match seconds {
                0 => write!(f, "{minutes}m"),
                _ => write!(f, "{minutes}m{seconds}s"),
            };
        }
        let (hours, minutes) = (minutes / 60, minutes % 60);
        match minutes {
            0 => write!(f, "{hours}h"),
            _ => write!(f, "{hours}h{minutes}m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DisplayDuration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (Duration::ZERO, "0ms"),
            (Duration::from_micros(250), "250µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(912_345), "15m12s"),
            (Duration::from_secs(150), "2m30s"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::MAX, "5124095576030431h"),
        ];

        for (duration, expected) in cases {
            assert_eq!(DisplayDuration(duration).to_string(), expected);
        }
    }
}
