//! The real transport: one HTTP/1.1 POST per record with hyper (the client OTLP export uses
//! too), no redirects; `https://` over rustls (ring) trusting the system's CAs and
//! `--webhook-ca`; extra headers (bearer tokens); an optional HMAC-SHA256 signature of the body.
//! The delivery worker times each attempt out.
use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    Method, Request, Uri,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT},
};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use ring::hmac;
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject as _},
};

use super::{Answer, Post, PostError, Posting, WebhookConfig};
use crate::output::{
    SinkError,
    delivery::{self, redact},
};

/// The signature header: `X-Seam-Signature: sha256=<hex of HMAC-SHA256(key, body)>`.
pub(crate) const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-seam-signature");

/// The most of an answer's body read (it is not used; reading it lets the connection be
/// reused).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a `--webhook` URL is unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    /// It does not parse as a URL.
    #[error("not a URL ({0}); give e.g. https://host:port/path")]
    Invalid(#[source] hyper::http::uri::InvalidUri),
    /// Another scheme than HTTP(S).
    #[error("the URL must start with http:// or https://")]
    Scheme,
    /// No host to send to.
    #[error("the URL has no host; give e.g. https://host:port/path")]
    NoHost,
}

/// Checks a `--webhook` URL: `http://` or `https://`, with a host.
pub(crate) fn validate_url(url: &str) -> Result<(), UrlError> {
    let uri: Uri = url.parse().map_err(UrlError::Invalid)?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(UrlError::Scheme),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    Ok(())
}

/// `sha256=<hex>` of `body` under `key`.
pub(crate) fn signature(key: &hmac::Key, body: &str) -> String {
    let tag = hmac::sign(key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Seconds of a `Retry-After` header (delay-seconds form; an HTTP date counts as unknown).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The system's CA certificates and those of `config.ca_file`.
fn roots(config: &WebhookConfig) -> Result<RootCertStore, SinkError> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system CA certificate could not be read");
    }
    let mut roots = RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(native.certs);
    if unusable > 0 {
        tracing::debug!(unusable, "system CA certificates rustls cannot use");
    }
    if let Some(path) = &config.ca_file {
        let ca_error = |reason: String| SinkError::WebhookCa {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no certificate in the file".into()));
        }
    }
    Ok(roots)
}

/// The request headers: JSON, Seam's user agent, then `config.headers`.
fn headers(config: &WebhookConfig) -> Result<HeaderMap, SinkError> {
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("seam/", env!("CARGO_PKG_VERSION"))),
    );
    for (name, value) in &config.headers {
        let invalid = || SinkError::WebhookHeader { name: name.clone() };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.append(key, value);
    }
    Ok(map)
}

/// POSTs JSON to one URL.
pub(crate) struct HttpPost {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    hmac_key: Option<hmac::Key>,
}

impl HttpPost {
    /// The transport `config` asks for (TLS trust, headers, signing).
    pub(crate) fn from_config(config: &WebhookConfig) -> Result<Self, SinkError> {
        let url_error = |reason: UrlError| SinkError::WebhookUrl {
            url: redact::url(&config.url),
            reason,
        };
        validate_url(&config.url).map_err(url_error)?;
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| url_error(UrlError::Invalid(e)))?;
        let https = uri.scheme_str() == Some("https");
        let roots = if https {
            roots(config)?
        } else {
            RootCertStore::empty()
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::WebhookTls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = match https {
            true => builder.https_only(),
            false => builder.https_or_http(),
        }
        .enable_http1()
        .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
            headers: headers(config)?,
            hmac_key: config
                .hmac_key
                .as_ref()
                .map(|key| hmac::Key::new(hmac::HMAC_SHA256, key)),
        })
    }

    async fn send(&self, body: &str) -> Result<Answer, PostError> {
        let mut request = Request::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        if let Some(key) = &self.hmac_key
            && let Ok(value) = HeaderValue::from_str(&signature(key, body))
        {
            request.headers_mut().insert(SIGNATURE_HEADER, value);
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| PostError::Transport(delivery::error_chain(&e)))?;
        let answer = Answer {
            status: response.status().as_u16(),
            retry_after: retry_after(response.headers()),
        };
        // Read (a bounded part of) the body so that the connection can be reused.
        let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok(answer)
    }
}

impl Post for HttpPost {
    fn post<'a>(&'a self, body: &'a str) -> Posting<'a> {
        Box::pin(self.send(body))
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
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn headers_that_http_refuses_are_refused_at_start_without_their_value() {
        let mut config = WebhookConfig::new("http://127.0.0.1:9/".into());
        config.headers = vec![("Authorization".into(), "Bearer s3cr3t\n".into())];
        let error = HttpPost::from_config(&config).err().expect("refused");
        let text = error.to_string();
        assert!(text.contains("Authorization"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
