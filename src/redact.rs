//! The removal of URLs, and of the secrets they carry, from the text of
//! errors that this crate cannot inspect by type.

/// Returns `text` without the URLs that reqwest adds to its messages, and
/// without the userinfo, query and fragment of any other URL in it, which
/// may carry credentials.
pub(crate) fn without_url_secrets(text: &str) -> String {
    without_secret_parts(&without_urls(text))
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
/// A URL starts at its `://` and ends at the first whitespace or quote.
/// Everything up to its last `@` before the query is taken for userinfo,
/// so a path segment with an `@` is removed too, which shows less but never
/// a password. A `/` inside the userinfo does not end it either.
fn without_secret_parts(text: &str) -> String {
    const SEPARATOR: &str = "://";
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(SEPARATOR) {
        let (before, after) = rest.split_at(start + SEPARATOR.len());
        result.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
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
        // A comma may belong to the query, so the query ends only at
        // whitespace, and a comma after it is removed as part of it.
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
    fn text_without_secrets_is_unchanged() {
        let text = "connect to http://127.0.0.1:9/health failed: refused";

        assert_eq!(without_url_secrets(text), text);
    }
}
