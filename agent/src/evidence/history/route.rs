//! Whose history a span belongs to: the acting tenant's and, for a crossing, the touched
//! tenant's too (and, for an application span, the tenant it declared when that is a tenant
//! of the rules), each sealed under its own key; a span of no tenant goes to the node's.
use crate::{
    model::spans::{Span, SpanBody, TenantName, TenantRef},
    policy::RuleSet,
};

/// The tenants whose history keeps a span, acting tenant first (none: the node's history).
pub(crate) fn tenants(span: &Span, rules: &RuleSet) -> Vec<TenantName> {
    let name = |t: Option<&TenantRef>| t.map(|t| t.name.clone());
    let (actor, touched, declared) = match &span.body {
        SpanBody::Connection(c) => (
            name(c.client.tenant.as_ref()),
            name(c.server.tenant.as_ref()),
            None,
        ),
        SpanBody::File(f) => (
            name(f.process.tenant.as_ref()),
            name(f.owner.as_ref()),
            None,
        ),
        SpanBody::Process(p) => (name(p.process.tenant.as_ref()), None, None),
        SpanBody::App(a) => (
            name(a.process.as_ref().and_then(|p| p.tenant.as_ref())),
            name(a.peer.as_ref().and_then(|p| p.tenant.as_ref())),
            // Applications write what they like: only a tenant the rules know gets a copy.
            a.declared_tenant
                .as_deref()
                .and_then(|d| rules.tenants.iter().find(|t| t.name.as_str() == d))
                .map(|t| t.name.clone()),
        ),
    };
    let mut out = Vec::with_capacity(3);
    for tenant in [actor, touched, declared].into_iter().flatten() {
        if !out.contains(&tenant) {
            out.push(tenant);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        fixtures::{file, tcp, tenant},
        vocab::FileOp,
    };

    fn names(span: &Span) -> Vec<String> {
        let rules = RuleSet::demo().unwrap();
        tenants(span, &rules)
            .iter()
            .map(|t| t.to_string())
            .collect()
    }

    #[test]
    fn crossings_go_to_both_tenants_and_the_rest_to_one_or_none() {
        let cross = tcp(Some(tenant("a")), Some(tenant("b")), 1);
        assert_eq!(names(&cross), ["a", "b"]);
        assert_eq!(names(&tcp(Some(tenant("a")), Some(tenant("a")), 1)), ["a"]);
        assert_eq!(names(&tcp(None, Some(tenant("b")), 1)), ["b"]);
        assert!(names(&tcp(None, None, 1)).is_empty());
        let read = file(
            Some(tenant("a")),
            "/srv/b/x",
            FileOp::Read,
            Some(tenant("b")),
        );
        assert_eq!(names(&read), ["a", "b"]);
    }
}
