//! Detection: every compiled rule on every span as it starts, minus the allow entries ->
//! violations (fourth stage). There is no policy here: what is a violation is the rules'
//! business; which accesses the tenants agreed to is the allows'.
pub(crate) mod allow;
#[cfg(test)]
mod tests;
pub(crate) mod violation;

pub(crate) use violation::{Aggregate, Target, Violation};

use crate::{config::RuleSet, spans::Span};

/// Evaluates the rules of a [`RuleSet`] on spans.
pub(crate) struct Detector {
    node: String,
}

impl Detector {
    pub(crate) fn new(node: String) -> Self {
        Self { node }
    }

    /// Violations of every rule matching `span` that no allow covers.
    pub(crate) fn evaluate(&self, span: &Span, rules: &RuleSet) -> Vec<Violation> {
        let mut out = Vec::new();
        for rule in &rules.rules {
            if !rule.matcher.matches(span) {
                continue;
            }
            if let Some(allow) = allow::allowed(&rules.allows, &rule.id, span) {
                tracing::debug!(rule = %rule.id, reason = %allow.reason, "allowed");
                continue;
            }
            out.push(Violation::new(&self.node, rule, span));
        }
        out
    }
}
