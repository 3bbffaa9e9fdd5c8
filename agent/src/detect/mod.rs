//! Detection: evaluates every compiled rule on every span and produces violations (fourth
//! stage). There is no policy here: what is a violation is the rules' business.
mod file;
mod network;
pub mod violation;

pub use violation::{FileTargetRecord, Target, TargetRecord, Violation, caller_record};

use crate::{
    config::RuleSet,
    rules::{EvalContext, LocalAddrs, SpanView},
};

/// A span a violation can be built from: its attributes plus what the feed shows.
pub trait Evidence: SpanView {
    /// The violation's `target`.
    fn target(&self, ctx: &EvalContext<'_>) -> Target;
    /// One sentence for the violation's `message`.
    fn describe(&self, ctx: &EvalContext<'_>) -> String;
}

/// Evaluates the rules of a [`RuleSet`] on spans.
pub struct Detector {
    node: String,
    local: LocalAddrs,
}

impl Detector {
    pub fn new(node: String) -> Self {
        Self {
            node,
            local: LocalAddrs::current(),
        }
    }

    /// Re-reads the node's addresses (interfaces come and go).
    pub fn refresh_local(&mut self) {
        self.local = LocalAddrs::current();
    }

    /// Violations of every rule matching `span` that no allow covers.
    pub fn evaluate<S: Evidence + ?Sized>(
        &self,
        span: &S,
        rules: &RuleSet,
        wall_time: &str,
    ) -> Vec<Violation> {
        let ctx = EvalContext {
            rules,
            local: &self.local,
        };
        let mut out = Vec::new();
        for rule in &rules.rules {
            if !rule.matcher.matches(span, &ctx) {
                continue;
            }
            if let Some(allow) = rules.allowed(&rule.id, span, &ctx) {
                tracing::debug!(rule = %rule.id, reason = %allow.reason, "allowed");
                continue;
            }
            out.push(Violation::new(&self.node, rule, span, &ctx, wall_time));
        }
        out
    }
}
