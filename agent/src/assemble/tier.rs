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

#[cfg(test)]
mod tests {
    use super::classify;
    use crate::{
        model::{
            fixtures,
            vocab::{FileOp, Tier},
        },
        policy::RuleSet,
    };

    const TENANTS: &str = r#"
[[tenant]]
name = "acme"
cgroups = ["t/acme"]
paths = ["/srv/acme", { path = "/srv/acme/pii", tier = "regulated" }]

[[tenant]]
name = "globex"
cgroups = ["t/globex"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant reached another tenant's endpoint"
expr = "trace.has(net.*).where(peer.tenant != null and peer.tenant != tenant)"
"#;

    #[test]
    fn a_span_carries_the_tier_of_what_it_touched() {
        let set = RuleSet::from_sources(&[("t.toml", TENANTS)]).expect("valid tenants");
        let mut span = fixtures::file(
            Some(fixtures::tenant("globex")),
            "/srv/acme/pii/cards.csv",
            FileOp::Read,
            Some(fixtures::tenant("acme")),
        );
        classify(&mut span, &set);
        assert_eq!(span.tier(), Some(Tier::Regulated));
        let mut plain = fixtures::file(
            Some(fixtures::tenant("globex")),
            "/srv/acme/readme",
            FileOp::Read,
            Some(fixtures::tenant("acme")),
        );
        classify(&mut plain, &set);
        assert_eq!(plain.tier(), None);
    }
}
