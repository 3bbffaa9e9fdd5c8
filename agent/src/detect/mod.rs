//! Detection: evaluates isolation rules on spans and produces violations (fourth stage).
pub mod violation;

pub use violation::{TargetRecord, Violation};

use crate::{
    config::{Protocol, RuleKind, RuleSet, TenantId},
    correlation::ConnectionSpan,
    events::Transport,
};

/// Evaluates the network rules of a [`RuleSet`] on connection spans.
pub struct NetworkDetector {
    node: String,
}

fn protocol(t: Transport) -> Protocol {
    match t {
        Transport::Tcp => Protocol::Tcp,
        Transport::Udp => Protocol::Udp,
    }
}

impl NetworkDetector {
    pub fn new(node: String) -> Self {
        Self { node }
    }

    /// The tenant whose resource the span touched: the server socket's own tenant when it is on
    /// this node, else the owner of the destination address from `endpoints`.
    pub fn target_tenant(span: &ConnectionSpan, rules: &RuleSet) -> Option<TenantId> {
        match &span.server {
            Some(server) => server.caller.tenant,
            None => rules.tenant_for_endpoint(span.server_endpoint.ip, span.server_endpoint.port),
        }
    }

    /// Violations of every network rule by this span (none for same-tenant, shared or allowed
    /// traffic, or when either side is not a tenant).
    pub fn evaluate(
        &self,
        span: &ConnectionSpan,
        rules: &RuleSet,
        wall_time: &str,
    ) -> Vec<Violation> {
        let Some(client) = &span.client else {
            return Vec::new();
        };
        let (Some(from), Some(to)) = (client.caller.tenant, Self::target_tenant(span, rules))
        else {
            return Vec::new();
        };
        if from == to || rules.tenant(from).shared || rules.tenant(to).shared {
            return Vec::new();
        }
        let port = span.server_endpoint.port;
        let proto = protocol(span.protocol);
        rules
            .rules_of(RuleKind::Network)
            .filter(|rule| {
                if let Some(allow) = rules.allowed(&rule.id, from, to, port, proto) {
                    tracing::debug!(rule = %rule.id, reason = %allow.reason, "allowed cross-tenant flow");
                    return false;
                }
                true
            })
            .map(|rule| Violation::network(&self.node, rule, span, rules, to, wall_time))
            .collect()
    }
}
