//! The part of a request URL that may appear in messages and logs.

use std::fmt;

use reqwest::Url;

/// A request's scheme, host, port and path, without userinfo, query or
/// fragment, which may carry credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    scheme: String,
    /// Whether the host is an IP address, which the client connects to
    /// without a DNS lookup.
    ip_literal: bool,
    host: String,
    port: Option<u16>,
    path: String,
}

impl Target {
    pub(crate) fn from_url(url: &Url) -> Self {
        Target {
            scheme: url.scheme().to_owned(),
            ip_literal: url
                .host_str()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
                .is_some_and(|host| host.parse::<std::net::IpAddr>().is_ok()),
            host: url.host_str().unwrap_or("").to_owned(),
            port: url.port_or_known_default(),
            path: url.path().to_owned(),
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    pub(crate) fn is_ip_literal(&self) -> bool {
        self.ip_literal
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.path)
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
}
