//! The real transport: one HTTP/1.1 POST per record with `ureq` (blocking, on the webhook's own
//! thread), a per-attempt timeout, no redirects; `https://` over rustls (ring) trusting the
//! system's CAs and `--webhook-ca`; extra headers (bearer tokens); an optional HMAC-SHA256
//! signature of the body.
use std::{sync::Arc, time::Duration};

use ring::hmac;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::{Post, PostError, WebhookConfig};
use crate::output::SinkError;

/// The signature header: `sha256=<hex of HMAC-SHA256(key, body)>`.
pub(crate) const SIGNATURE_HEADER: &str = "X-Seam-Signature";

/// Why a `--webhook` URL is unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    /// It does not parse as a URL.
    #[error("not a URL ({0}); give e.g. https://host:port/path")]
    Invalid(#[source] ureq::http::uri::InvalidUri),
    /// Another scheme than HTTP(S).
    #[error("the URL must start with http:// or https://")]
    Scheme,
    /// No host to send to.
    #[error("the URL has no host; give e.g. https://host:port/path")]
    NoHost,
}

/// Checks a `--webhook` URL: `http://` or `https://`, with a host.
pub(crate) fn validate_url(url: &str) -> Result<(), UrlError> {
    let uri: ureq::http::Uri = url.parse().map_err(UrlError::Invalid)?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(UrlError::Scheme),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
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

/// `sha256=<hex>` of `body` under `key`.
pub(crate) fn signature(key: &[u8], body: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Seconds of a `Retry-After` header (delay-seconds form; an HTTP date counts as unknown).
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The system's CA certificates and those of `config.ca_file`.
fn roots(config: &WebhookConfig) -> Result<Vec<Certificate<'static>>, SinkError> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system CA certificate could not be read");
    }
    let mut certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if let Some(path) = &config.ca_file {
        let ca_error = |reason: String| SinkError::WebhookCa {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(cert) =
                item.map_err(|e| ca_error(e.to_string()))?
            {
                certs.push(cert);
            }
        }
        if certs.len() == before {
            return Err(ca_error("no certificate in the file".into()));
        }
    }
    Ok(certs)
}

/// POSTs JSON to one URL.
pub(crate) struct HttpPost {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    hmac_key: Option<Arc<[u8]>>,
}

impl HttpPost {
    /// Plain settings: `timeout` bounds each attempt as a whole (connect, send, response).
    #[cfg(test)]
    pub(crate) fn new(url: &str, timeout: Duration) -> Self {
        let mut config = WebhookConfig::new(url.to_owned());
        config.timeout = timeout;
        Self::build(&config, Vec::new())
    }

    /// The transport `config` asks for (TLS trust, headers, signing).
    pub(crate) fn from_config(config: &WebhookConfig) -> Result<Self, SinkError> {
        let roots = if config.url.starts_with("https://") {
            roots(config)?
        } else {
            Vec::new()
        };
        Ok(Self::build(config, roots))
    }

    fn build(config: &WebhookConfig, roots: Vec<Certificate<'static>>) -> Self {
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .https_only(config.url.starts_with("https://"))
            .tls_config(tls)
            .user_agent(concat!("seam/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            url: config.url.clone(),
            headers: config.headers.clone(),
            hmac_key: config.hmac_key.clone(),
        }
    }
}

impl Post for HttpPost {
    fn post(&mut self, body: &str) -> Result<(), PostError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(key) = &self.hmac_key {
            request = request.header(SIGNATURE_HEADER, signature(key, body));
        }
        let response = request.send(body).map_err(|error| match error {
            ureq::Error::Timeout(_) => PostError::Timeout,
            other => PostError::Transport(other.to_string()),
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(match retry_after(&response) {
            Some(after) => PostError::RetryAfter { status, after },
            None => PostError::Status(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_with_a_host() {
        assert!(validate_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url("http://localhost/x?token=1").is_ok());
        assert!(validate_url("https://example.invalid/").is_ok());
        assert!(matches!(validate_url("ftp://h/"), Err(UrlError::Scheme)));
        assert!(matches!(
            validate_url("not a url"),
            Err(UrlError::Invalid(_))
        ));
        assert!(matches!(validate_url("/relative"), Err(UrlError::Scheme)));
    }

    #[test]
    fn redaction_keeps_only_scheme_and_authority() {
        assert_eq!(
            redact("http://127.0.0.1:9000/hooks/T0KEN?x=1"),
            "http://127.0.0.1:9000/..."
        );
        assert_eq!(redact("::"), "<invalid url>");
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_client_errors_other_than_408_and_429_are_final() {
        for (status, retry) in [
            (500, true),
            (503, true),
            (408, true),
            (429, true),
            (400, false),
            (401, false),
            (404, false),
            (413, false),
        ] {
            assert_eq!(PostError::Status(status).retryable(), retry, "{status}");
        }
        assert!(PostError::Timeout.retryable());
        let throttled = PostError::RetryAfter {
            status: 429,
            after: Duration::from_secs(3),
        };
        assert!(throttled.retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
    }
}
