//! The real transport: one HTTP/1.1 POST per record with `ureq` (blocking, on the webhook's own
//! thread), a per-attempt timeout, no redirects.
use std::time::Duration;

use super::{Post, PostError};

/// Checks a `--webhook` URL: plain `http://host[:port]/path` (this build has no TLS).
pub(crate) fn validate_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|error| format!("not a URL ({error})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(
                "https is not supported by this build; point --webhook at a local \
                        http relay (e.g. falcosidekick or a sidecar proxy)"
                    .into(),
            );
        }
        _ => return Err("the URL must start with http://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(())
}

/// The webhook URL with its path and query cut off, for logs (paths often carry tokens).
pub(crate) fn redact(url: &str) -> String {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|uri| {
            Some(format!(
                "{}://{}/...",
                uri.scheme_str()?,
                uri.authority()?.as_str()
            ))
        })
        .unwrap_or_else(|| "<invalid url>".into())
}

/// POSTs JSON to one URL.
pub(crate) struct HttpPost {
    agent: ureq::Agent,
    url: String,
}

impl HttpPost {
    /// `timeout` bounds each attempt as a whole (connect, send, response).
    pub(crate) fn new(url: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("seam/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            url: url.to_owned(),
        }
    }
}

impl Post for HttpPost {
    fn post(&mut self, body: &str) -> Result<(), PostError> {
        let response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|error| match error {
                ureq::Error::Timeout(_) => PostError::Timeout,
                other => PostError::Transport(other.to_string()),
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PostError::Status(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host() {
        assert!(validate_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url("http://localhost/x?token=1").is_ok());
        assert!(
            validate_url("https://example.invalid/")
                .unwrap_err()
                .contains("https")
        );
        assert!(validate_url("ftp://h/").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_url("/relative").is_err());
    }

    #[test]
    fn redaction_keeps_only_scheme_and_authority() {
        assert_eq!(
            redact("http://127.0.0.1:9000/hooks/T0KEN?x=1"),
            "http://127.0.0.1:9000/..."
        );
        assert_eq!(redact("::"), "<invalid url>");
    }
}
