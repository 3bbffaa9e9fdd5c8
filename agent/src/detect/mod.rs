//! Detection: every compiled rule on every span as it starts, minus the allow entries ->
//! violations (fourth stage). There is no policy here: what is a violation is the rules'
//! business; which accesses the tenants agreed to is the allows'.
pub(crate) mod allow;
#[cfg(test)]
mod tests;
pub(crate) mod view;
pub(crate) mod violation;

use std::collections::{HashMap, VecDeque};

pub(crate) use violation::{Aggregate, Party, Target, Violation};

use crate::{
    model::spans::Span,
    policy::{
        CountRule, Rule, RuleSet,
        lang::{Attributes, Value},
    },
};

/// Most (rule, group) pairs `trace.count` rules track at once; beyond it new groups are not
/// counted (logged), so memory stays bounded whatever the traffic.
const MAX_COUNT_GROUPS: usize = 65_536;

/// A `trace.count` rule's recent spans for one group.
#[derive(Default)]
struct Counted {
    /// Start times (Unix ns) of the last `max + 1` counted spans within the window.
    times: VecDeque<i64>,
    /// The rule fired for the current excess; re-armed when the count falls back.
    fired: bool,
}

/// Evaluates the rules of a [`RuleSet`] on spans.
pub(crate) struct Detector {
    node: String,
    counts: HashMap<(String, String), Counted>,
}

impl Detector {
    pub(crate) fn new(node: String) -> Self {
        Self {
            node,
            counts: HashMap::new(),
        }
    }

    /// New rules: counts of rules that are gone are forgotten.
    pub(crate) fn reload(&mut self, rules: &RuleSet) {
        self.counts.retain(|(rule, _), _| {
            rules
                .rules
                .iter()
                .any(|r| r.id == *rule && r.count.is_some())
        });
    }

    /// Violations of every rule matching `span` that no allow covers.
    pub(crate) fn evaluate(&mut self, span: &Span, rules: &RuleSet) -> Vec<Violation> {
        let mut out = Vec::new();
        for rule in &rules.rules {
            if !rule.matcher.matches(span) {
                continue;
            }
            if let Some(allow) = allow::allowed(&rules.allows, &rule.id, span) {
                tracing::debug!(rule = %rule.id, reason = %allow.reason, "allowed");
                continue;
            }
            match &rule.count {
                None => out.push(Violation::new(&self.node, rule, span)),
                Some(count) => out.extend(self.count(rule, *count, span)),
            }
        }
        out
    }

    /// Counts `span` for a `trace.count` rule; the violation when its group goes over the
    /// limit (once per excess).
    fn count(&mut self, rule: &Rule, count: CountRule, span: &Span) -> Option<Violation> {
        let group = match span.attr(count.group_by) {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.to_owned(),
            Value::Addr(ip) => ip.to_string(),
        };
        let key = (rule.id.clone(), group);
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_COUNT_GROUPS {
            tracing::warn!(rule = %rule.id, "too many groups to count; this one is not counted");
            return None;
        }
        let now = span.start.0;
        let window = i64::try_from(count.window.as_nanos()).unwrap_or(i64::MAX);
        let state = self.counts.entry(key).or_default();
        state.times.push_back(now);
        while state
            .times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= window)
        {
            state.times.pop_front();
        }
        let cap = usize::try_from(count.limit.max.saturating_add(1)).unwrap_or(usize::MAX);
        while state.times.len() > cap {
            state.times.pop_front();
        }
        let over = state.times.len() as u64 > count.limit.max;
        if !over {
            state.fired = false;
            return None;
        }
        if state.fired {
            return None;
        }
        state.fired = true;
        let mut violation = Violation::new(&self.node, rule, span);
        let group = span.attr(count.group_by);
        violation.message = format!(
            "{} {}: more than {} {} spans within {}s (rule {})",
            count.group_by,
            match group {
                Value::Str(s) => s.to_owned(),
                Value::Null => "(none)".to_owned(),
                other => format!("{other:?}"),
            },
            count.limit.max,
            span.name(),
            count.window.as_secs(),
            rule.id
        );
        Some(violation)
    }
}
