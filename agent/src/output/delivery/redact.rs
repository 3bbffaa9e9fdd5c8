//! Secrets out of logs and error messages, for every sink: a URL keeps its scheme, host and port
//! (user info, path and query, where tokens hide, are cut); headers show their names only.
use std::fmt;

/// `url` as logs may show it: `scheme://host:port`, with `/...` when a path or query was cut.
pub(crate) fn url(url: &str) -> String {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return "<invalid url>".into();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return "<invalid url>".into();
    };
    // `user:password@host:port`: only what follows the last `@`.
    let host = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    let cut = uri.path() != "/" || uri.query().is_some();
    format!("{scheme}://{host}{}", if cut { "/..." } else { "" })
}

/// Headers as logs may show them: their names, never their values (bearer tokens, API keys).
pub(crate) struct Headers<'a>(pub &'a [(String, String)]);

impl fmt::Display for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (name, _)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: <redacted>")?;
        }
        f.write_str("]")
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_scheme_host_and_port() {
        assert_eq!(
            url("http://127.0.0.1:9000/hooks/T0KEN?x=1"),
            "http://127.0.0.1:9000/..."
        );
        assert_eq!(
            url("https://user:s3cret@collector:4318/v1/traces"),
            "https://collector:4318/..."
        );
        assert_eq!(url("http://collector:4317"), "http://collector:4317");
        assert_eq!(url("http://[::1]:4317/?token=1"), "http://[::1]:4317/...");
        assert_eq!(url("::"), "<invalid url>");
        assert_eq!(url("/relative/T0KEN"), "<invalid url>");
    }

    #[test]
    fn headers_show_names_only() {
        let headers = [
            ("Authorization".to_owned(), "Bearer s3cret".to_owned()),
            ("x-api-key".to_owned(), "k3y".to_owned()),
        ];
        let shown = format!("{} {:?}", Headers(&headers), Headers(&headers));
        assert_eq!(
            shown,
            "[Authorization: <redacted>, x-api-key: <redacted>] \
             [Authorization: <redacted>, x-api-key: <redacted>]"
        );
    }
}
