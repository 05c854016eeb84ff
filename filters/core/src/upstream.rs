//! Where an HTTP callout goes, one type for every filter that calls out:
//! identity's validation and introspection endpoints, the audit sender's
//! collector and the rate limit's Redis (webdis) store. Users write each as
//! they always have (a URL and an optional cluster; or a cluster and an
//! optional authority); all become an [`Upstream`]: the Envoy cluster the
//! call goes to, and the `:authority`, `:path` and timeout of the request.
//! The A2A task-owner store (webdis, like the rate limiter's) is one too.

/// An HTTP callout's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The Envoy cluster (`dispatch_http_call`'s upstream).
    pub cluster: String,
    /// `:authority` of the call.
    pub authority: String,
    /// `:path` of the call (query included).
    pub path: String,
    pub timeout_ms: u64,
}

/// An absolute http(s) URL in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https` (lowercase).
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// The path and query (`/` when the URL has none).
    pub path: String,
}

impl Url {
    /// The one URL parser: `https://host:port/path?q`. Refuses other
    /// schemes, user info, an empty host, whitespace and fragments.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not an absolute http(s) URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{url}`: scheme must be http or https"));
        }
        if rest.contains('#') {
            return Err(format!("`{url}`: fragments are not allowed"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(format!("`{url}`: missing or invalid host"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path,
        })
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        self.authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(self.authority.as_str(), |(host, _)| host)
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

impl Upstream {
    /// A URL's destination: its cluster is `cluster`, else the URL's host.
    pub fn from_url(url: &str, cluster: Option<&str>, timeout_ms: u64) -> Result<Self, String> {
        let parsed = Url::parse(url)?;
        let cluster = cluster.unwrap_or(parsed.host()).to_string();
        Self::new(cluster, Some(parsed.authority), parsed.path, timeout_ms)
    }

    /// A cluster's destination: `authority` defaults to the cluster name.
    pub fn new(
        cluster: String,
        authority: Option<String>,
        path: String,
        timeout_ms: u64,
    ) -> Result<Self, String> {
        if cluster.trim().is_empty() {
            return Err("cluster name is empty".into());
        }
        Ok(Self {
            authority: authority.unwrap_or_else(|| cluster.clone()),
            cluster,
            path,
            timeout_ms,
        })
    }
}

impl Upstream {
    /// The pseudo-headers and content type of a POST to this upstream; a
    /// caller appends its own headers (credentials, `accept`, ...).
    pub fn post_headers<'a>(&'a self, content_type: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            (":method", "POST"),
            (":path", &self.path),
            (":authority", &self.authority),
            ("content-type", content_type),
        ]
    }

    /// The call's deadline.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_shapes() {
        let u = Url::parse("HTTPS://h:8443?x=1").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.authority.as_str(), u.path.as_str()),
            ("https", "h:8443", "/?x=1")
        );
        assert_eq!(u.host(), "h");
        assert_eq!(u.origin(), "https://h:8443");
        assert_eq!(Url::parse("http://127.0.0.1:9000").unwrap().path, "/");
        for bad in [
            "http://user@h/x",
            "http:///x",
            "ftp://h/",
            "h/x",
            "http://h/x#f",
            "http://a b/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_defaults() {
        let u = Upstream::from_url("http://svc:8080/v1", None, 100).unwrap();
        assert_eq!(
            (u.cluster.as_str(), u.authority.as_str(), u.path.as_str()),
            ("svc", "svc:8080", "/v1")
        );
        let r = Upstream::new("redis".into(), None, "/".into(), 250).unwrap();
        assert_eq!(r.authority, "redis");
        assert_eq!(
            r.post_headers("text/plain"),
            [
                (":method", "POST"),
                (":path", "/"),
                (":authority", "redis"),
                ("content-type", "text/plain")
            ]
        );
        assert_eq!(r.timeout(), std::time::Duration::from_millis(250));
        assert!(Upstream::new(" ".into(), None, "/".into(), 1).is_err());
    }
}
