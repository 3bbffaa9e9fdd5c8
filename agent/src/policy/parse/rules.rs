//! `[[rule]]` tables: unique ids, expressions compiled by the rule language (errors mapped
//! back into the file), and the tenant attributes and count windows a rule names.

use toml::Spanned;

use super::{At, Builder, IDENT_HINT};
use crate::policy::{
    lang,
    lang::{Attr, CompileEnv, ExprError, Type},
    model::{CountRule, Rule, valid_ident},
    raw::RawRule,
    strmap::value_offsets,
};

impl Builder<'_> {
    /// A `[[rule]]` table: its id, its compiled expression and the attributes it names.
    pub(super) fn rule(&mut self, file: usize, raw: &RawRule, complete: bool) {
        let id = raw.id.get_ref();
        let at = Self::at(file, &raw.id);
        if !valid_ident(id) {
            self.invalid(&at, format!("invalid rule id {id:?}"), IDENT_HINT);
        }
        if let Some(prev) = self.rule_at.get(id) {
            let hint = format!(
                "already defined at {}; rule ids must be unique",
                self.describe(prev)
            );
            self.invalid(&at, format!("duplicate rule {id:?}"), hint);
            return;
        }
        self.rule_at.insert(id.clone(), at);
        let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        // With unknown tenants (a bad file), tenant literals cannot be checked.
        let env = CompileEnv {
            tenants: complete.then_some(names.as_slice()),
        };
        match lang::compile(raw.expr.get_ref(), &env) {
            Ok(matcher) => {
                let intended = self.tenant_attr(file, raw.intended.as_ref(), &matcher, "intended");
                let actual = self.tenant_attr(file, raw.actual.as_ref(), &matcher, "actual");
                let count = self.count_rule(file, raw, &matcher);
                if let (Ok(intended), Ok(actual), Ok(count)) = (intended, actual, count) {
                    self.rules.push(Rule {
                        id: id.clone(),
                        severity: raw.severity,
                        description: raw.description.clone(),
                        expr: raw.expr.get_ref().clone(),
                        matcher,
                        intended,
                        actual,
                        count,
                    });
                }
            }
            Err(errors) => {
                for err in errors {
                    self.expr_error(file, &raw.expr, id, &err);
                }
            }
        }
    }

    /// `rule.window` and `rule.group_by`: required with (and only with) `trace.count`.
    fn count_rule(
        &mut self,
        file: usize,
        raw: &RawRule,
        matcher: &lang::Matcher,
    ) -> Result<Option<CountRule>, ()> {
        let Some(limit) = matcher.count else {
            for (key, value) in [("window", &raw.window), ("group_by", &raw.group_by)] {
                if let Some(v) = value {
                    let msg = format!("rule.{key} without a `trace.count(...)` expression");
                    let hint = "remove it, or count: `trace.count(<span>).where(...) > N`";
                    self.invalid(&Self::at(file, v), msg, hint);
                    return Err(());
                }
            }
            return Ok(None);
        };
        let Some(window) = &raw.window else {
            let msg = "a `trace.count(...)` rule needs a `window`".to_owned();
            self.invalid(&Self::at(file, &raw.expr), msg, "add e.g. window = \"60s\"");
            return Err(());
        };
        let Some(duration) = parse_window(window.get_ref()) else {
            let msg = format!("invalid window {:?}", window.get_ref());
            let hint = "write a whole number of seconds, minutes or hours: \"30s\", \"5m\", \"1h\"";
            self.invalid(&Self::at(file, window), msg, hint);
            return Err(());
        };
        let group_by = match &raw.group_by {
            None => Attr::Tenant,
            Some(name) => match Attr::parse(name.get_ref()) {
                Some(attr) if matcher.spans.names().all(|s| attr.available_on(s)) => attr,
                _ => {
                    let msg = format!(
                        "rule.group_by {:?} is not an attribute of every span the rule counts",
                        name.get_ref()
                    );
                    let hint =
                        "use e.g. \"tenant\" or \"declared.tenant\"; docs/span-attributes.md";
                    self.invalid(&Self::at(file, name), msg, hint);
                    return Err(());
                }
            },
        };
        Ok(Some(CountRule {
            limit,
            window: duration,
            group_by,
        }))
    }

    /// `rule.intended` / `rule.actual`: a tenant attribute every span the rule matches carries.
    fn tenant_attr(
        &mut self,
        file: usize,
        name: Option<&Spanned<String>>,
        matcher: &lang::Matcher,
        key: &str,
    ) -> Result<Option<Attr>, ()> {
        let Some(name) = name else {
            return Ok(None);
        };
        let tenant_attrs = || {
            Attr::ALL
                .iter()
                .filter(|a| a.ty() == Type::Tenant)
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let at = Self::at(file, name);
        match Attr::parse(name.get_ref()) {
            Some(attr) if attr.ty() == Type::Tenant => {
                if let Some(span) = matcher.spans.names().find(|s| !attr.available_on(*s)) {
                    let msg = format!(
                        "rule.{key} {:?} is not carried by {span} spans",
                        name.get_ref()
                    );
                    let hint = "narrow the rule's trace.has(...) to spans that carry it, or pick another attribute";
                    self.invalid(&at, msg, hint);
                    return Err(());
                }
                Ok(Some(attr))
            }
            _ => {
                let msg = format!("rule.{key} {:?} is not a tenant attribute", name.get_ref());
                let hint = format!("expected a tenant attribute: {}", tenant_attrs());
                self.invalid(&at, msg, hint);
                Err(())
            }
        }
    }

    /// Reports an error inside a rule's expression at its place in the file.
    fn expr_error(&mut self, file: usize, expr: &Spanned<String>, rule: &str, err: &ExprError) {
        let token = expr.span();
        let text = self.sources.get(file).map_or("", |s| s.text.as_str());
        let raw = text.get(token.clone()).unwrap_or("");
        let span = match value_offsets(raw, expr.get_ref()) {
            Some(map) => {
                let last = map.len().saturating_sub(1);
                let e = err.span();
                let start = map[e.start.min(last)];
                let end = map[e.end.min(last)].max(start);
                token.start + start..token.start + end
            }
            None => token,
        };
        let msg = format!("rule {rule:?}: {err}");
        self.invalid(&At { file, span }, msg, err.hint());
    }
}

/// `"30s"`, `"5m"`, `"1h"` (at least a second, at most a day).
fn parse_window(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    (1..=86_400)
        .contains(&secs)
        .then(|| std::time::Duration::from_secs(secs))
}
