//! Allow entries applied to spans: an access a rule matched but the tenants agreed to.
use crate::policy::{
    Allow, TenantMatch,
    lang::{Attr, Attributes, Value},
    path_under,
};

/// Whether `side` covers a tenant attribute's value (`"*"` also covers `null`).
fn side_covers(side: &TenantMatch, value: Value<'_>) -> bool {
    match side {
        TenantMatch::Any => true,
        TenantMatch::Tenant(name) => value == Value::Str(name.as_str()),
    }
}

/// Whether `allow` covers `span`, matched by rule `rule_id`.
pub(crate) fn covers<S: Attributes + ?Sized>(allow: &Allow, rule_id: &str, span: &S) -> bool {
    let target = Attr::target_tenant(span.span_name().family());
    allow.rule.as_deref().is_none_or(|r| r == rule_id)
        && side_covers(&allow.from, span.attr(Attr::Tenant))
        && side_covers(&allow.to, target.map_or(Value::Null, |a| span.attr(a)))
        && (allow.ports.is_empty()
            || matches!(span.attr(Attr::PeerPort), Value::Int(p)
                if u16::try_from(p).is_ok_and(|p| allow.ports.iter().any(|r| r.contains(p)))))
        && (allow.protocols.is_empty()
            || matches!(span.attr(Attr::NetProtocol), Value::Str(p)
                if allow.protocols.iter().any(|x| x.as_str() == p)))
        && (allow.processes.is_empty()
            || matches!(span.attr(Attr::ProcessComm), Value::Str(c)
                if allow.processes.iter().any(|x| x == c)))
        && (allow.paths.is_empty()
            || matches!(span.attr(Attr::FilePath), Value::Str(p)
                if allow.paths.iter().any(|prefix| path_under(p, prefix))))
}

/// The first allow entry covering `span` for rule `rule_id`.
pub(crate) fn allowed<'a, S: Attributes + ?Sized>(
    allows: &'a [Allow],
    rule_id: &str,
    span: &S,
) -> Option<&'a Allow> {
    allows.iter().find(|a| covers(a, rule_id, span))
}
