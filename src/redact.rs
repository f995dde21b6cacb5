//! The removal of URLs, and of the secrets they carry, from the text of
//! errors that this crate cannot inspect by type.

/// Returns `text` without the URLs that reqwest adds to its messages, and
/// without the userinfo, query and fragment of any other URL in it, which
/// may carry credentials. Other URLs are found by their `scheme://`, also
/// in its escaped form `scheme:\/\/` from JSON, or by the fields of a
/// `Url`'s `Debug` output.
///
/// NOTE: a URL written without its scheme, such as `//user:pw@host` or
/// `user:pw@host`, cannot be distinguished from other text and is left as
/// it is.
pub(crate) fn without_url_secrets(text: &str) -> String {
    without_secret_parts(&without_debug_secrets(&without_urls(text)))
}

/// Removes the " for url (...)" part that reqwest adds to its messages.
///
/// A serialized URL has no spaces, because `Url` percent-encodes them, so
/// the URL ends at the first `"): "` after it, where the message of the next
/// error in the chain starts, or at the end of the text. A `)` inside the
/// URL, such as in a query value, does not end it.
fn without_urls(text: &str) -> String {
    const MARKER: &str = " for url (";
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(MARKER) {
        result.push_str(&rest[..start]);
        let after = &rest[start + MARKER.len()..];
        rest = match after.find("): ") {
            Some(end) => &after[end + 1..],
            None => "",
        };
    }
    result.push_str(rest);
    result
}

/// Removes the userinfo, query and fragment of each URL in `text`, keeping
/// its scheme, host, port and path.
///
/// A URL starts at its `://`, or at that separator with each `/` escaped
/// (see [`find_separator`]), and ends at the first character that the
/// `url` crate always escapes: whitespace, a control character, `"`, `<` or
/// `>`. It leaves `'` and `` ` `` as they are in some parts, so those do not
/// end a URL. Everything up to its last `@` before the query is taken for
/// userinfo, so a path segment with an `@` is removed too, which shows less
/// but never a password. A `/` inside the userinfo does not end it either,
/// escaped or not. Backslashes just before a closing `"` escape that quote,
/// as in `Debug` output, so they stay with it.
fn without_secret_parts(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, separator_len)) = find_separator(rest) {
        let (before, after) = rest.split_at(start + separator_len);
        result.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>'))
            .unwrap_or(after.len());
        let end = if after[end..].starts_with('"') {
            after[..end].trim_end_matches('\\').len()
        } else {
            end
        };
        let url = &after[..end];
        let without_query = url.find(['?', '#']).map_or(url, |cut| &url[..cut]);
        let visible = without_query
            .rfind('@')
            .map_or(without_query, |at| &without_query[at + 1..]);
        result.push_str(visible);
        rest = &after[end..];
    }
    result.push_str(rest);
    result
}

/// Finds the first `://` in `text`, or the same separator with each `/`
/// escaped by the same number of backslashes: `:\/\/` as JSON writes it,
/// and `:\\/\\/` once `Debug` escapes that JSON again. Returns the
/// separator's offset and length.
fn find_separator(text: &str) -> Option<(usize, usize)> {
    text.match_indices(':').find_map(|(start, _)| {
        let after_colon = &text[start + 1..];
        let after_backslashes = after_colon.trim_start_matches('\\');
        let backslashes = &after_colon[..after_colon.len() - after_backslashes.len()];
        let after_separator = after_backslashes
            .strip_prefix('/')?
            .strip_prefix(backslashes)?
            .strip_prefix('/')?;
        Some((start, text.len() - start - after_separator.len()))
    })
}

/// The fields of a `Url`'s `Debug` output that may carry credentials.
const DEBUG_FIELDS: [&str; 4] = ["username:", "password:", "query:", "fragment:"];

/// Shown in place of a secret value in `Debug` output.
const REMOVED: &str = "[removed]";

/// Replaces the values of [`DEBUG_FIELDS`] in `text` with [`REMOVED`],
/// keeping an empty value as it is. A field's name that no quoted value
/// follows is left as it is.
fn without_debug_secrets(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, field)) = DEBUG_FIELDS
        .iter()
        .filter_map(|field| rest.find(field).map(|start| (start, field)))
        .min_by_key(|(start, _)| *start)
    {
        let after_name = start + field.len();
        let Some(opening) = opening_quote(&rest[after_name..]) else {
            result.push_str(&rest[..after_name]);
            rest = &rest[after_name..];
            continue;
        };
        let value_start = after_name + opening.end;
        result.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let value_len = if opening.backslashes == 0 {
            quoted_len(value)
        } else {
            // Inside another `Debug` string the quotes are escaped, and a
            // `Url` never contains a raw quote, so the next escaped one closes
            // the value.
            let closing = format!("{}\"", "\\".repeat(opening.backslashes));
            value.find(&closing).unwrap_or(value.len())
        };
        if value_len > 0 {
            result.push_str(REMOVED);
        }
        rest = &value[value_len..];
    }
    result.push_str(rest);
    result
}

/// The position of a field's quoted value, just after its opening quote.
struct OpeningQuote {
    /// The offset just after the opening quote.
    end: usize,
    /// How many backslashes escape the quote: none in plain `Debug` output,
    /// one or more when that output is inside another `Debug` string.
    backslashes: usize,
}

/// Finds the opening quote of a field's value at the start of `after`, the
/// text after the field's name: `"v"`, `Some("v")`, the pretty form
/// `Some(\n    "v",\n)`, and each of those with escaped quotes.
fn opening_quote(after: &str) -> Option<OpeningQuote> {
    let value = after.trim_start();
    let value = value.strip_prefix("Some(").map_or(value, str::trim_start);
    let quote = value.trim_start_matches('\\');
    let backslashes = value.len() - quote.len();
    quote.starts_with('"').then(|| OpeningQuote {
        end: after.len() - quote.len() + 1,
        backslashes,
    })
}

/// Returns the length of the `Debug`-escaped string at the start of
/// `value`, up to its closing quote, or all of `value` without one.
fn quoted_len(value: &str) -> usize {
    let mut escaped = false;
    for (index, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return index,
            _ => {}
        }
    }
    value.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_removed_from_reqwest_messages() {
        let text = "request failed after 2 retries: error sending request for url (http://u:secret@h/?token=x): connection closed";

        assert_eq!(
            without_urls(text),
            "request failed after 2 retries: error sending request: connection closed"
        );
    }

    #[test]
    fn url_with_parenthesis_is_removed_whole() {
        let text = "error sending request for url (http://u:p)w@h/x?token=a)SECRET): client error (Connect): refused";

        assert_eq!(
            without_urls(text),
            "error sending request: client error (Connect): refused"
        );
    }

    #[test]
    fn url_at_end_of_text_is_removed() {
        assert_eq!(
            without_urls("operation timed out for url (http://h/?k=a)b)"),
            "operation timed out"
        );
    }

    #[test]
    fn text_without_url_is_unchanged() {
        assert_eq!(without_urls("operation timed out"), "operation timed out");
    }

    #[test]
    fn userinfo_and_query_are_removed_from_free_text() {
        let text = "downstream failed for http://alice:pw@127.0.0.1:8080/p?token=tk#frag giving up";

        assert_eq!(
            without_url_secrets(text),
            "downstream failed for http://127.0.0.1:8080/p giving up"
        );
    }

    #[test]
    fn every_url_in_the_text_is_cleaned() {
        let text = "from https://u@a.test/x?k=1 to \"wss://b.test/y#f\"";

        assert_eq!(
            without_url_secrets(text),
            "from https://a.test/x to \"wss://b.test/y\""
        );
    }

    #[test]
    fn punctuation_after_a_query_goes_with_it() {
        // A comma may belong to the query, so it does not end the URL, and
        // a comma after the query is removed with it.
        let text = "failed for http://h.test/p?a=1,token=tk, then stopped";

        assert_eq!(
            without_url_secrets(text),
            "failed for http://h.test/p then stopped"
        );
    }

    #[test]
    fn slash_in_userinfo_does_not_show_the_password() {
        let text = "failed: http://user:pa/ss@h.test/path";

        assert_eq!(without_url_secrets(text), "failed: http://h.test/path");
    }

    #[test]
    fn json_escaped_url_loses_its_secrets() {
        let text =
            r#"upstream replied {"url":"http:\/\/user:pw@127.0.0.1:8080\/p?token=secret#frag"}"#;

        assert_eq!(
            without_url_secrets(text),
            r#"upstream replied {"url":"http:\/\/127.0.0.1:8080\/p"}"#
        );
    }

    #[test]
    fn escaped_slash_in_userinfo_hides_password() {
        let text = r"failed: http:\/\/user:pa\/ss@h.test\/path";

        assert_eq!(without_url_secrets(text), r"failed: http:\/\/h.test\/path");
    }

    #[test]
    fn json_in_debug_output_loses_its_secrets() {
        let json = r#"{"url":"https:\/\/user-c4n:pw-c4n@h.test\/p?token=c4n"}"#;
        let text = format!("cache entry {json:?}");

        let cleaned = without_url_secrets(&text);

        assert!(!cleaned.contains("c4n"), "{cleaned}");
        assert_eq!(
            cleaned,
            r#"cache entry "{\"url\":\"https:\\/\\/h.test\\/p\"}""#
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "connect to http://127.0.0.1:9/health failed: refused";

        assert_eq!(without_url_secrets(text), text);
    }

    #[test]
    fn quote_inside_url_keeps_it_whole() {
        let text = "rejected http://alice:pa'ss@h.test/p?q=`x`&api_key=k#x'f done";

        assert_eq!(without_url_secrets(text), "rejected http://h.test/p done");
    }

    #[test]
    fn url_debug_output_loses_its_secrets() {
        let url = reqwest::Url::parse("http://user-c4n:pw-c4n\"x@h.test:9/p?q-c4n#f-c4n").unwrap();
        let text = format!("cannot send {url:?}");

        let cleaned = without_url_secrets(&text);

        assert!(!cleaned.contains("c4n"), "{cleaned}");
        assert_eq!(cleaned.matches(REMOVED).count(), 4, "{cleaned}");
        assert!(
            cleaned.contains("host: Some(Domain(\"h.test\"))"),
            "{cleaned}"
        );
        assert!(cleaned.contains("path: \"/p\""), "{cleaned}");
    }

    #[test]
    fn empty_debug_values_stay_empty() {
        let url = reqwest::Url::parse("http://h.test/p").unwrap();
        let text = format!("{url:?}");

        assert_eq!(without_url_secrets(&text), text);
    }

    #[test]
    fn pretty_url_debug_output_loses_its_secrets() {
        let url = reqwest::Url::parse("http://user-c4n:pw-c4n@h.test:9/p?q-c4n#f-c4n").unwrap();
        let request = reqwest::Request::new(reqwest::Method::GET, url.clone());

        for text in [format!("{url:#?}"), format!("{request:#?}")] {
            let cleaned = without_url_secrets(&text);

            assert!(!cleaned.contains("c4n"), "{cleaned}");
            assert_eq!(cleaned.matches(REMOVED).count(), 4, "{cleaned}");
        }
    }

    #[test]
    fn escaped_url_debug_output_loses_its_secrets() {
        let url = reqwest::Url::parse("http://user-c4n:pw-c4n@h.test:9/p?q-c4n#f-c4n").unwrap();
        let once = format!("{:?}", format!("failed for {url:?}"));
        let twice = format!("{once:?}");

        for text in [once, twice] {
            let cleaned = without_url_secrets(&text);

            assert!(!cleaned.contains("c4n"), "{cleaned}");
        }
    }

    #[test]
    fn field_names_without_values_are_kept() {
        let text = "username: required; password: Some(x) query: é";

        assert_eq!(without_url_secrets(text), text);
    }
}
