//! Containers and pods in OTLP: OpenTelemetry's names on the actor, `seam.peer.*` on the peer,
//! on spans and on violation log records.
use std::sync::Arc;

use super::*;
use crate::{
    detect::Violation,
    model::{
        fixtures,
        spans::{ContainerRef, PodRef, SpanBody},
    },
};

fn container(namespace: &str, pod: &str) -> Option<Arc<ContainerRef>> {
    Some(Arc::new(ContainerRef {
        id: format!("id-{pod}"),
        name: Some("main".into()),
        pod: Some(PodRef {
            namespace: namespace.into(),
            name: pod.into(),
            uid: format!("uid-{pod}"),
        }),
    }))
}

fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match get(attrs, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn spans_and_violations_carry_both_pods() {
    let mut span = fixtures::tcp(Some(fixtures::tenant("a")), Some(fixtures::tenant("b")), 80);
    let SpanBody::Connection(c) = &mut span.body else {
        unreachable!()
    };
    if let Some(p) = &mut c.client.process {
        p.container = container("acme-prod", "web-0");
    }
    if let Some(p) = &mut c.server.process {
        p.container = container("globex", "db-0");
    }
    let exported = super::span(&span);
    let a = &exported.attributes;
    assert_eq!(text(a, "k8s.namespace.name").as_deref(), Some("acme-prod"));
    assert_eq!(text(a, "k8s.pod.name").as_deref(), Some("web-0"));
    assert_eq!(text(a, "k8s.pod.uid").as_deref(), Some("uid-web-0"));
    assert_eq!(text(a, "container.id").as_deref(), Some("id-web-0"));
    assert_eq!(text(a, "k8s.container.name").as_deref(), Some("main"));
    assert_eq!(
        text(a, "seam.peer.k8s.namespace.name").as_deref(),
        Some("globex")
    );
    assert_eq!(
        text(a, "seam.peer.container.id").as_deref(),
        Some("id-db-0")
    );

    let rule = crate::policy::RuleSet::from_sources(&[(
        "t.toml",
        "[[tenant]]\nname = \"a\"\ncgroups = [\"t/a\"]\n[[rule]]\nid = \"r\"\nseverity = \"high\"\n\
         description = \"d\"\nexpr = \"trace.has(net.*)\"\n",
    )])
    .unwrap()
    .rules
    .remove(0);
    let record = violation(&Violation::new("n", &rule, &span), 1);
    let a = &record.attributes;
    assert_eq!(text(a, "k8s.namespace.name").as_deref(), Some("acme-prod"));
    assert_eq!(text(a, "k8s.pod.name").as_deref(), Some("web-0"));
    assert_eq!(
        text(a, "seam.peer.k8s.namespace.name").as_deref(),
        Some("globex")
    );
    assert_eq!(text(a, "seam.peer.k8s.pod.name").as_deref(), Some("db-0"));
}
