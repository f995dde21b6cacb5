//! The part of a request URL that may appear in messages and logs.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

/// A request's scheme, host, port and path, without userinfo, query or
/// fragment, which may carry credentials.
///
/// The scheme, host and path share one allocation, so that building a
/// target costs one allocation and a clone costs a reference count.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The scheme, the host and the path, joined without separators.
    text: Arc<str>,
    scheme_len: usize,
    host_len: usize,
    /// Whether the host is an IP address, which the client connects to
    /// without a DNS lookup.
    ip_literal: bool,
    port: Option<u16>,
}

impl Target {
    pub(crate) fn from_url(url: &Url) -> Self {
        let scheme = url.scheme();
        let host = url.host_str().unwrap_or("");
        Target {
            text: join([scheme, host, url.path()]),
            scheme_len: scheme.len(),
            host_len: host.len(),
            // The URL parser already distinguishes an IP address from a domain name.
            ip_literal: url.has_host() && url.domain().is_none(),
            port: url.port_or_known_default(),
        }
    }

    fn scheme(&self) -> &str {
        &self.text[..self.scheme_len]
    }

    pub(crate) fn host(&self) -> &str {
        &self.text[self.scheme_len..self.scheme_len + self.host_len]
    }

    fn path(&self) -> &str {
        &self.text[self.scheme_len + self.host_len..]
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme() == "https"
    }

    pub(crate) fn is_ip_literal(&self) -> bool {
        self.ip_literal
    }
}

/// Joins `parts` into one shared string with a single allocation when they
/// fit in a stack buffer, and with two otherwise.
fn join(parts: [&str; 3]) -> Arc<str> {
    const BUFFER_LEN: usize = 256;
    let len: usize = parts.iter().map(|part| part.len()).sum();
    if len <= BUFFER_LEN {
        let mut buffer = [0u8; BUFFER_LEN];
        let mut end = 0;
        for part in parts {
            buffer[end..end + part.len()].copy_from_slice(part.as_bytes());
            end += part.len();
        }
        // Whole strings joined end to end are valid UTF-8, so this check
        // always passes.
        if let Ok(text) = std::str::from_utf8(&buffer[..end]) {
            return Arc::from(text);
        }
    }
    Arc::from(parts.concat())
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("scheme", &self.scheme())
            .field("ip_literal", &self.ip_literal)
            .field("host", &self.host())
            .field("port", &self.port)
            .field("path", &self.path())
            .finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.host())?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> String {
        Target::from_url(&Url::parse(url).unwrap()).to_string()
    }

    #[test]
    fn userinfo_query_and_fragment_are_dropped() {
        let shown = target("https://alice:hunter2@example.test/v1/items?token=s3cr3t#frag");

        assert_eq!(shown, "https://example.test:443/v1/items");
    }

    #[test]
    fn ip_hosts_are_literals() {
        let literal = |url: &str| Target::from_url(&Url::parse(url).unwrap()).is_ip_literal();

        assert!(literal("http://127.0.0.1:1/"));
        assert!(literal("http://[::1]:1/"));
        assert!(!literal("http://localhost:1/"));
    }

    #[test]
    fn default_port_is_shown() {
        assert_eq!(target("http://127.0.0.1/"), "http://127.0.0.1:80/");
    }

    #[test]
    fn ipv6_host_keeps_brackets() {
        assert_eq!(target("http://[::1]:8080/a"), "http://[::1]:8080/a");
    }

    #[test]
    fn long_path_is_kept_whole() {
        let path = "/segment".repeat(100);
        let url = Url::parse(&format!("https://api.example.test{path}")).unwrap();

        let target = Target::from_url(&url);

        assert_eq!(target.host(), "api.example.test");
        assert_eq!(
            target.to_string(),
            format!("https://api.example.test:443{path}")
        );
    }

    #[test]
    fn debug_lists_each_part() {
        let url = Url::parse("http://user:secret@127.0.0.1:8080/a?q=1").unwrap();

        let debug_text = format!("{:?}", Target::from_url(&url));

        assert_eq!(
            debug_text,
            "Target { scheme: \"http\", ip_literal: true, host: \"127.0.0.1\", port: Some(8080), path: \"/a\" }"
        );
    }
}
