//! Parsing of the `Retry-After` response header (RFC 9110, section 10.2.3).

use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// Returns the wait that a `Retry-After` value requests, or `None` when the
/// value is neither a number of seconds nor an HTTP date.
///
/// Both forms saturate: a number of seconds too large for `u64` becomes the
/// largest duration instead of failing, and a date in the past means no wait.
/// `now` is the wall-clock time to measure an HTTP date against, because the
/// server's date is wall-clock time too.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, now: SystemTime) -> Option<Duration> {
        parse_retry_after(&HeaderValue::from_str(text).unwrap(), now)
    }

    #[test]
    fn delay_seconds_are_read() {
        let now = SystemTime::UNIX_EPOCH;

        assert_eq!(parse("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse("0", now), Some(Duration::ZERO));
    }

    #[test]
    fn huge_delay_saturates() {
        let now = SystemTime::UNIX_EPOCH;

        let parsed = parse("99999999999999999999999999999", now);

        assert_eq!(parsed, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn http_date_is_measured_from_now() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();

        let parsed = parse("Wed, 21 Oct 2015 07:28:30 GMT", now);

        assert_eq!(parsed, Some(Duration::from_secs(30)));
    }

    #[test]
    fn http_date_in_past_means_no_wait() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();

        let parsed = parse("Wed, 21 Oct 2015 07:00:00 GMT", now);

        assert_eq!(parsed, Some(Duration::ZERO));
    }

    #[test]
    fn garbage_is_ignored() {
        let now = SystemTime::UNIX_EPOCH;

        for text in [
            "soon",
            "-5",
            "1.5",
            "",
            "  ",
            "+3",
            "0x10",
            "Wed, 99 Foo 2015",
        ] {
            assert_eq!(parse(text, now), None, "value {text:?}");
        }
    }

    #[test]
    fn non_ascii_value_is_ignored() {
        let value = HeaderValue::from_bytes(b"\xff\xfe").unwrap();

        assert_eq!(parse_retry_after(&value, SystemTime::UNIX_EPOCH), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_header_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    let _ = parse_retry_after(&value, SystemTime::now());
                }
            }

            #[test]
            fn any_digits_saturate(digits in "[0-9]{1,40}") {
                let value = HeaderValue::from_str(&digits).unwrap();

                let parsed = parse_retry_after(&value, SystemTime::UNIX_EPOCH);

                let expected = digits.parse::<u64>().unwrap_or(u64::MAX);
                prop_assert_eq!(parsed, Some(Duration::from_secs(expected)));
            }

            #[test]
            fn any_date_is_at_most_its_distance(seconds in 0u64..4_000_000_000, now in 0u64..4_000_000_000) {
                let date = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
                let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap();

                let parsed = parse_retry_after(&value, now).unwrap();

                prop_assert_eq!(parsed, date.duration_since(now).unwrap_or(Duration::ZERO));
            }
        }
    }
}
