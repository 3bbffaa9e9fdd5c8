//! `--webhook-format falcosidekick`: records in Falco's output payload, the body
//! falcosidekick's `POST /` takes (`rule`, `priority`, `output`, `output_fields`, `time`,
//! `source`, `tags`, `hostname`, `uuid`), so Seam's findings fan out through an existing
//! falcosidekick to its outputs. Field names follow Falco's where one exists (`proc.pid`,
//! `container.id`, `k8s.ns.name`, `fd.sip`, ...), `seam.*` otherwise. Spans have no payload.
use serde_json::{Map, Value, json};

use crate::{
    detect::{Party, Target, Violation},
    model::vocab::Severity,
    output::{Loss, Record},
};

/// Falco's priority for a severity (falcosidekick parses these names).
fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
        Severity::Info => "Informational",
    }
}

/// A 32-hex-digit id as a UUID (8-4-4-4-12), the form Falco gives `uuid`.
fn uuid(hex: &str) -> String {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex.to_owned();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn put(fields: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    fields.insert(key.to_owned(), value.into());
}

fn put_opt<T: Into<Value>>(fields: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        put(fields, key, value);
    }
}

/// A party's fields under Falco's names (`proc.*`, `container.*`, `k8s.*`), or `seam.peer.*`.
fn party(fields: &mut Map<String, Value>, prefix: &str, p: &Party) {
    put_opt(fields, &format!("{prefix}proc.pid"), p.pid);
    put(fields, &format!("{prefix}proc.name"), &*p.comm);
    put_opt(fields, &format!("{prefix}proc.exepath"), p.exe.as_deref());
    put_opt(fields, &format!("{prefix}user.uid"), p.uid);
    put(
        fields,
        &format!("{prefix}seam.cgroup.path"),
        &*p.cgroup_path,
    );
    put_opt(
        fields,
        &format!("{prefix}seam.tenant"),
        p.tenant.as_ref().map(|t| t.to_string()),
    );
    put_opt(
        fields,
        &format!("{prefix}container.id"),
        p.container_id.clone(),
    );
    put_opt(
        fields,
        &format!("{prefix}k8s.ns.name"),
        p.k8s_namespace.clone(),
    );
    put_opt(
        fields,
        &format!("{prefix}k8s.pod.name"),
        p.k8s_pod_name.clone(),
    );
    put_opt(
        fields,
        &format!("{prefix}k8s.pod.uid"),
        p.k8s_pod_uid.clone(),
    );
}

fn violation(v: &Violation) -> Value {
    let mut f = Map::new();
    put(&mut f, "seam.rule_id", v.rule_id.as_str());
    put(&mut f, "seam.kind", v.kind.kind());
    put(&mut f, "seam.signal_id", v.signal_id.as_str());
    put_opt(
        &mut f,
        "seam.intended_tenant",
        v.intended_tenant.as_ref().map(|t| t.to_string()),
    );
    put_opt(
        &mut f,
        "seam.actual_tenant",
        v.actual_tenant.as_ref().map(|t| t.to_string()),
    );
    put(&mut f, "seam.trace_id", v.trace_id.to_hex());
    put(&mut f, "seam.span_id", v.span_id.to_hex());
    if let Some(caller) = &v.caller {
        party(&mut f, "", caller);
    }
    match &v.target {
        Target::Network {
            tenant,
            addr,
            port,
            protocol,
            process,
        } => {
            put(&mut f, "fd.sip", addr.to_string());
            put(&mut f, "fd.sport", *port);
            put(&mut f, "fd.l4proto", protocol.as_str());
            put_opt(
                &mut f,
                "seam.peer.tenant",
                tenant.as_ref().map(|t| t.to_string()),
            );
            if let Some(p) = process {
                party(&mut f, "seam.peer.", p);
            }
        }
        Target::File {
            tenant,
            path,
            op,
            outcome,
            ..
        } => {
            put(&mut f, "fd.name", path.as_str());
            put(&mut f, "seam.file.op", op.as_str());
            put(&mut f, "seam.file.outcome", outcome.as_str());
            put_opt(
                &mut f,
                "seam.file.tenant",
                tenant.as_ref().map(|t| t.to_string()),
            );
        }
        Target::Process { exe, ppid } => {
            put_opt(&mut f, "proc.exepath", exe.as_deref());
            put_opt(&mut f, "proc.ppid", *ppid);
        }
        Target::App {
            declared_tenant,
            service,
            span_name,
            ..
        } => {
            put_opt(&mut f, "seam.declared.tenant", declared_tenant.clone());
            put_opt(&mut f, "seam.app.service", service.clone());
            put(&mut f, "seam.app.span_name", span_name.as_str());
        }
    }
    if let Some(aggregate) = &v.aggregate {
        put(&mut f, "seam.aggregate.count", aggregate.count);
    }
    json!({
        "uuid": uuid(&v.signal_id),
        "output": v.message,
        "priority": priority(v.severity),
        "rule": v.rule_id,
        "time": v.time,
        "output_fields": f,
        "source": "seam",
        "tags": ["seam", v.kind.kind(), "tenant-isolation"],
        "hostname": v.node,
    })
}

fn loss(l: &Loss) -> Value {
    let mut f = Map::new();
    put(&mut f, "seam.loss.source", l.source().as_str());
    put(&mut f, "seam.loss.probe", l.subject.to_string());
    put(&mut f, "seam.loss.lost", l.lost);
    put(&mut f, "seam.loss.lost_total", l.lost_total);
    json!({
        "output": l.message,
        "priority": "Warning",
        "rule": "seam-evidence-lost",
        "time": l.time,
        "output_fields": f,
        "source": "seam",
        "tags": ["seam", "loss"],
        "hostname": l.node,
    })
}

/// The falcosidekick body of a feed record; `None` for spans and the start record.
pub(crate) fn payload(record: &Record) -> Option<Value> {
    match record {
        Record::Violation(v) => Some(violation(v)),
        Record::Loss(l) => Some(loss(l)),
        Record::Span(_) | Record::Start(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::violation::fixture;

    #[test]
    fn violations_carry_what_falcosidekick_checks() {
        let mut v = fixture(1, 5432, "psql", 1_700_000_000_123_456_789);
        v.signal_id = "0123456789abcdef0123456789abcdef".into();
        if let Some(caller) = &mut v.caller {
            caller.k8s_namespace = Some("acme-prod".into());
            caller.k8s_pod_name = Some("web-0".into());
            caller.container_id = Some("c0ffee".into());
        }
        let body = payload(&Record::Violation(Box::new(v))).unwrap();
        // falcosidekick's FalcoPayload.Check(): priority, rule, time and output_fields.
        assert_eq!(body["priority"], "Error");
        assert_eq!(body["rule"], "cross-tenant-network");
        assert_eq!(body["time"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(body["uuid"], "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(body["source"], "seam");
        let fields = &body["output_fields"];
        assert_eq!(fields["k8s.ns.name"], "acme-prod");
        assert_eq!(fields["k8s.pod.name"], "web-0");
        assert_eq!(fields["container.id"], "c0ffee");
        assert_eq!(fields["proc.name"], "psql");
        assert_eq!(fields["fd.sport"], 5432);
        assert_eq!(fields["seam.intended_tenant"], "a");
        assert_eq!(fields["seam.actual_tenant"], "b");
    }

    #[test]
    fn every_severity_is_a_falco_priority() {
        let names = [
            "Emergency",
            "Alert",
            "Critical",
            "Error",
            "Warning",
            "Notice",
            "Informational",
            "Debug",
        ];
        for severity in Severity::ALL {
            assert!(names.contains(&priority(*severity)), "{severity}");
        }
    }
}
