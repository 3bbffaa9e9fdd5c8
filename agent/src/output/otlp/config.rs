//! Where and how to export: flags and the standard `OTEL_*` variables, resolved into one
//! [`OtlpConfig`].
use std::{collections::BTreeMap, fmt, time::Duration};

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// OTLP/gRPC (default port 4317).
    #[value(name = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Why the export settings are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum OtlpConfigError {
    /// The endpoint is not an http:// or https:// URL.
    #[error(
        "OTLP endpoint {0:?} is not an http:// or https:// URL; write e.g. \
         http://collector:4318 (http/protobuf) or http://collector:4317 (grpc)"
    )]
    Endpoint(String),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol Seam does not speak.
    #[error(
        "OTLP protocol {0:?} is not supported; use \"grpc\" or \"http/protobuf\" \
         (OTEL_EXPORTER_OTLP_PROTOCOL or --otlp-protocol)"
    )]
    Protocol(String),
    /// A header is not `key=value`.
    #[error("OTLP header {0:?} is not key=value; write e.g. authorization=Bearer%20TOKEN")]
    Header(String),
    /// A resource attribute is not `key=value`.
    #[error("OTEL_RESOURCE_ATTRIBUTES entry {0:?} is not key=value")]
    ResourceAttribute(String),
}

/// Resolved export settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtlpConfig {
    pub protocol: Protocol,
    /// Where spans go: the full URL (http/protobuf: `.../v1/traces`) or the gRPC endpoint.
    pub traces: String,
    /// Where violation and loss log records go.
    pub logs: String,
    /// Sent with every request (gRPC metadata or HTTP headers).
    pub headers: Vec<(String, String)>,
    /// Timeout of one export request.
    pub timeout: Duration,
    /// Items (spans, log records) queued at most; more are dropped (counted).
    pub queue: usize,
    /// Items per request at most.
    pub batch: usize,
    /// Requests being delivered at once at most (while one waits for its answer, the next
    /// batch is already on its way).
    pub in_flight: usize,
    /// Export attempts per batch (the first included) before it is dropped (counted).
    pub attempts: u32,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`), applied over Seam's own.
    pub resource: BTreeMap<String, String>,
}

/// Export requests in flight at once by default.
pub(crate) const DEFAULT_IN_FLIGHT: usize = 2;

/// What the command line and the environment said.
#[derive(Clone, Debug, Default)]
pub(crate) struct OtlpSettings {
    /// `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is).
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` (used as is).
    pub logs_endpoint: Option<String>,
    /// `--otlp-protocol` or `OTEL_EXPORTER_OTLP_PROTOCOL` (text, validated here).
    pub protocol: Option<String>,
    /// `--otlp-header k=v` (repeatable) and `OTEL_EXPORTER_OTLP_HEADERS` (comma separated).
    pub headers: Vec<String>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: Option<String>,
    pub queue: usize,
    pub batch: usize,
    pub in_flight: usize,
    pub attempts: u32,
}

impl OtlpSettings {
    /// The standard variables from the environment (flags given on the command line are set
    /// by the caller afterwards and win).
    pub(crate) fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            endpoint: var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            traces_endpoint: var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            logs_endpoint: var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
            protocol: var("OTEL_EXPORTER_OTLP_PROTOCOL"),
            headers: var("OTEL_EXPORTER_OTLP_HEADERS")
                .map(|h| h.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            timeout_ms: var("OTEL_EXPORTER_OTLP_TIMEOUT").and_then(|t| t.trim().parse().ok()),
            service_name: var("OTEL_SERVICE_NAME"),
            resource_attributes: var("OTEL_RESOURCE_ATTRIBUTES"),
            queue: 8192,
            batch: 512,
            in_flight: DEFAULT_IN_FLIGHT,
            attempts: 6,
        }
    }

    /// The resolved settings, `None` when no endpoint is set (export off).
    pub(crate) fn resolve(&self) -> Result<Option<OtlpConfig>, OtlpConfigError> {
        if self.endpoint.is_none() && self.traces_endpoint.is_none() {
            return Ok(None);
        }
        let protocol = match self.protocol.as_deref().map(str::trim) {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => return Err(OtlpConfigError::Protocol(other.to_owned())),
        };
        let signal = |specific: &Option<String>, path: &str| -> Result<String, OtlpConfigError> {
            let url = match (specific, &self.endpoint) {
                (Some(url), _) => url.trim().to_owned(),
                (None, Some(base)) => {
                    let base = base.trim().trim_end_matches('/');
                    match protocol {
                        Protocol::HttpProtobuf => format!("{base}/{path}"),
                        Protocol::Grpc => base.to_owned(),
                    }
                }
                (None, None) => return Err(OtlpConfigError::Endpoint(String::new())),
            };
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(url)
            } else {
                Err(OtlpConfigError::Endpoint(url))
            }
        };
        let traces = signal(&self.traces_endpoint, "v1/traces")?;
        let logs = match (&self.logs_endpoint, &self.endpoint) {
            (None, None) => traces.replace("/v1/traces", "/v1/logs"),
            _ => signal(&self.logs_endpoint, "v1/logs")?,
        };
        let headers = self
            .headers
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| pair(h).ok_or_else(|| OtlpConfigError::Header(h.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut resource = BTreeMap::new();
        if let Some(text) = &self.resource_attributes {
            for item in text.split(',').filter(|i| !i.trim().is_empty()) {
                let (k, v) = pair(item)
                    .ok_or_else(|| OtlpConfigError::ResourceAttribute(item.to_owned()))?;
                resource.insert(k, v);
            }
        }
        let service_name = self
            .service_name
            .clone()
            .or_else(|| resource.remove("service.name"))
            .unwrap_or_else(|| "seam".to_owned());
        Ok(Some(OtlpConfig {
            protocol,
            traces,
            logs,
            headers,
            timeout: Duration::from_millis(self.timeout_ms.unwrap_or(10_000).max(1)),
            queue: self.queue.max(1),
            batch: self.batch.max(1),
            in_flight: self.in_flight.max(1),
            attempts: self.attempts.max(1),
            service_name,
            resource,
        }))
    }
}

/// `key=value` with the value percent-decoded (W3C baggage encoding, as the OTel spec says).
fn pair(text: &str) -> Option<(String, String)> {
    let (k, v) = text.split_once('=')?;
    let k = k.trim();
    if k.is_empty() {
        return None;
    }
    Some((k.to_owned(), percent_decode(v.trim())))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str) -> OtlpSettings {
        OtlpSettings {
            endpoint: Some(endpoint.to_owned()),
            queue: 10,
            batch: 5,
            attempts: 3,
            ..OtlpSettings::default()
        }
    }

    #[test]
    fn http_endpoints_get_the_signal_paths_grpc_ones_do_not() {
        let c = settings("http://collector:4318/")
            .resolve()
            .unwrap()
            .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.traces, "http://collector:4318/v1/traces");
        assert_eq!(c.logs, "http://collector:4318/v1/logs");
        let mut s = settings("http://collector:4317");
        s.protocol = Some("grpc".into());
        let c = s.resolve().unwrap().unwrap();
        assert_eq!(
            (c.traces.as_str(), c.logs.as_str()),
            ("http://collector:4317", "http://collector:4317")
        );
        let mut s = settings("http://c:4318");
        s.traces_endpoint = Some("http://t:1/x".into());
        let c = s.resolve().unwrap().unwrap();
        assert_eq!(
            (c.traces.as_str(), c.logs.as_str()),
            ("http://t:1/x", "http://c:4318/v1/logs")
        );
        assert_eq!(
            OtlpSettings::default().resolve(),
            Ok(None),
            "no endpoint: off"
        );
    }

    #[test]
    fn headers_resource_and_service_name() {
        let mut s = settings("http://c:4318");
        s.headers = vec![
            "authorization=Bearer%20abc".into(),
            " x-a = b ".into(),
            String::new(),
        ];
        s.resource_attributes = Some("service.name=edge,deployment.environment=prod%2Ceu".into());
        let c = s.resolve().unwrap().unwrap();
        assert_eq!(
            c.headers,
            vec![
                ("authorization".to_owned(), "Bearer abc".to_owned()),
                ("x-a".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(c.service_name, "edge");
        assert_eq!(c.resource["deployment.environment"], "prod,eu");
        s.service_name = Some("seam-eu".into());
        assert_eq!(s.resolve().unwrap().unwrap().service_name, "seam-eu");
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let mut s = settings("collector:4318");
        assert!(matches!(s.resolve(), Err(OtlpConfigError::Endpoint(_))));
        s.endpoint = Some("http://c".into());
        s.protocol = Some("http/json".into());
        let e = s.resolve().unwrap_err();
        assert!(
            e.to_string().contains("\"grpc\" or \"http/protobuf\""),
            "{e}"
        );
        s.protocol = None;
        s.headers = vec!["novalue".into()];
        assert!(matches!(s.resolve(), Err(OtlpConfigError::Header(_))));
    }
}
