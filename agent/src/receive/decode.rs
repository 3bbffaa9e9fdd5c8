//! OTLP trace requests -> application spans as received (before the join). Bad spans are
//! refused one by one (counted in the partial-success answer); nothing here panics on input.
use std::collections::HashMap;

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{span::SpanKind, status::StatusCode},
};

use crate::model::{
    app::AppSpanIn,
    clock::UnixNanos,
    spans::{SpanId, TraceId},
    vocab::{AppSpanKind, AppStatus},
};

/// Most attributes kept per span (beyond the ones Seam reads), and their longest value.
const MAX_ATTRIBUTES: usize = 32;
const MAX_VALUE: usize = 256;

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn int(value: &AnyValue) -> Option<i64> {
    match value.value.as_ref()? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn index(attributes: &[KeyValue]) -> HashMap<&str, &AnyValue> {
    attributes
        .iter()
        .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?)))
        .collect()
}

/// The spans of `request`, and how many were refused (bad ids or times).
pub(crate) fn decode(
    request: ExportTraceServiceRequest,
    declared_key: &str,
    sender_pid: Option<u32>,
) -> (Vec<AppSpanIn>, u64) {
    let mut out = Vec::new();
    let mut refused = 0u64;
    for resource_spans in request.resource_spans {
        let resource_attrs = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = index(resource_attrs);
        let service = resource.get("service.name").and_then(|v| text(v));
        let resource_pid = resource
            .get("process.pid")
            .and_then(|v| int(v))
            .and_then(|p| u32::try_from(p).ok());
        let resource_tenant = resource.get(declared_key).and_then(|v| text(v));
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let (Some(trace_id), Some(span_id)) = (
                    TraceId::from_slice(&span.trace_id),
                    SpanId::from_slice(&span.span_id),
                ) else {
                    refused += 1;
                    continue;
                };
                let (Ok(start), Ok(end)) = (
                    i64::try_from(span.start_time_unix_nano),
                    i64::try_from(span.end_time_unix_nano),
                ) else {
                    refused += 1;
                    continue;
                };
                let attrs = index(&span.attributes);
                let get = |key: &str| attrs.get(key).and_then(|v| text(v));
                let port = |key: &str| {
                    attrs
                        .get(key)
                        .and_then(|v| int(v))
                        .and_then(|p| u16::try_from(p).ok())
                };
                let kind = match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
                    SpanKind::Server => AppSpanKind::Server,
                    SpanKind::Client => AppSpanKind::Client,
                    SpanKind::Producer => AppSpanKind::Producer,
                    SpanKind::Consumer => AppSpanKind::Consumer,
                    SpanKind::Internal | SpanKind::Unspecified => AppSpanKind::Internal,
                };
                let status = match span
                    .status
                    .as_ref()
                    .and_then(|s| StatusCode::try_from(s.code).ok())
                {
                    Some(StatusCode::Ok) => AppStatus::Ok,
                    Some(StatusCode::Error) => AppStatus::Error,
                    _ => AppStatus::Unset,
                };
                let attributes = span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let mut value = text(kv.value.as_ref()?)?;
                        if value.len() > MAX_VALUE {
                            let cut = (0..=MAX_VALUE)
                                .rev()
                                .find(|i| value.is_char_boundary(*i))
                                .unwrap_or(0);
                            value.truncate(cut);
                        }
                        Some((kv.key.clone(), value))
                    })
                    .take(MAX_ATTRIBUTES)
                    .collect();
                out.push(AppSpanIn {
                    trace_id,
                    span_id,
                    parent_span_id: SpanId::from_slice(&span.parent_span_id),
                    name: span.name.chars().take(MAX_VALUE).collect(),
                    kind,
                    status,
                    start: UnixNanos(start),
                    end: UnixNanos(end.max(start)),
                    service: service.clone(),
                    pid: attrs
                        .get("process.pid")
                        .and_then(|v| int(v))
                        .and_then(|p| u32::try_from(p).ok())
                        .or(resource_pid),
                    sender_pid,
                    declared_tenant: get(declared_key).or_else(|| resource_tenant.clone()),
                    server_address: get("server.address")
                        .or_else(|| get("network.peer.address"))
                        .or_else(|| get("net.peer.name")),
                    server_port: port("server.port")
                        .or_else(|| port("network.peer.port"))
                        .or_else(|| port("net.peer.port")),
                    attributes,
                });
            }
        }
    }
    (out, refused)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("api".into())),
                        kv("process.pid", Value::IntValue(77)),
                        kv("tenant.id", Value::StringValue("acme".into())),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn span(trace: &[u8], kind: SpanKind, attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: vec![2; 8],
            name: "SELECT orders".into(),
            kind: kind as i32,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes,
            ..Span::default()
        }
    }

    #[test]
    fn resource_and_span_attributes_and_bad_spans() {
        let good = span(
            &[1; 16],
            SpanKind::Client,
            vec![
                kv("server.address", Value::StringValue("127.0.0.1".into())),
                kv("server.port", Value::IntValue(5432)),
                kv("tenant.id", Value::StringValue("globex".into())),
                kv("db.system", Value::StringValue("postgresql".into())),
            ],
        );
        let zero_trace = span(&[0; 16], SpanKind::Client, vec![]);
        let short_trace = span(&[1; 3], SpanKind::Server, vec![]);
        let (spans, refused) = decode(
            request(vec![good, zero_trace, short_trace]),
            "tenant.id",
            Some(5),
        );
        assert_eq!(refused, 2);
        let s = &spans[0];
        assert_eq!(s.kind, AppSpanKind::Client);
        assert_eq!(s.service.as_deref(), Some("api"));
        assert_eq!((s.pid, s.sender_pid), (Some(77), Some(5)));
        assert_eq!(
            s.declared_tenant.as_deref(),
            Some("globex"),
            "the span's own wins"
        );
        assert_eq!(s.server_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.server_port, Some(5432));
        assert!(
            s.attributes
                .contains(&("db.system".into(), "postgresql".into()))
        );
        // Without a span-level tenant, the resource's.
        let (spans, _) = decode(
            request(vec![span(&[1; 16], SpanKind::Server, vec![])]),
            "tenant.id",
            None,
        );
        assert_eq!(spans[0].declared_tenant.as_deref(), Some("acme"));
        assert_eq!(spans[0].kind, AppSpanKind::Server);
    }
}
