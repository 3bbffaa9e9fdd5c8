//! Sets the tier of the resource a span touched, from its owner's tiered `paths` and
//! `endpoints` (`config::tier`), when the span is attributed, like its tenants.
use crate::{
    model::spans::{ConnectionEnd, Span, SpanBody},
    policy::RuleSet,
};

fn end_tier(end: &mut ConnectionEnd, rules: &RuleSet) {
    end.tier = end
        .tenant
        .as_ref()
        .and_then(|t| rules.endpoint_tier(&t.name, end.addr.ip(), end.addr.port()));
}

/// Fills in the tiers of `span`'s resources: a file's path, both ends of a connection, an
/// application client span's peer.
pub(crate) fn classify(span: &mut Span, rules: &RuleSet) {
    match &mut span.body {
        SpanBody::Connection(c) => {
            end_tier(&mut c.client, rules);
            end_tier(&mut c.server, rules);
        }
        SpanBody::File(f) => {
            f.tier = f
                .owner
                .as_ref()
                .and_then(|t| rules.path_tier(&t.name, &f.path));
        }
        SpanBody::Process(_) => {}
        SpanBody::App(a) => {
            if let Some(peer) = &mut a.peer {
                peer.tier = match (&peer.tenant, peer.addr, peer.port) {
                    (Some(t), Some(ip), Some(port)) => rules.endpoint_tier(&t.name, ip, port),
                    _ => None,
                };
            }
        }
    }
}
