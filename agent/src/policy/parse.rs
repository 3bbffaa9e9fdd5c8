//! Parsing and validation: raw files -> [`RuleSet`], collecting every error.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    ops::Range,
    path::{Path, PathBuf},
};

use globset::Glob;
use toml::Spanned;

use super::{
    RuleSet,
    error::{ConfigError, ConfigErrors, Location},
    matcher::{CgroupMatcher, EndpointMatcher, compile_glob},
    model::{
        Allow, CountRule, Endpoint, PortRange, Rule, Tenant, TenantId, TenantMatch, ValueError,
        valid_ident,
    },
    pods::{PodMatcher, compile_namespace, plausible_namespace},
    raw::{RawAllow, RawPort, RawRule, RawTenant, parse_file},
    strmap::value_offsets,
};
use crate::{
    model::spans::{TenantName, TenantRef},
    policy::{
        lang,
        lang::{Attr, CompileEnv, ExprError, Type},
    },
};

/// The kernel's `comm` is at most this many characters (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

const IDENT_HINT: &str = "expected lowercase letters, digits, '_', '.' or '-', \
                          starting with a letter or digit";

/// One rules file's name and text.
pub(super) struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A value's position: file index and byte span.
#[derive(Clone)]
struct At {
    file: usize,
    span: Range<usize>,
}

struct Builder<'a> {
    sources: &'a [Source],
    /// Errors reading files, reported first.
    read_errors: Vec<ConfigError>,
    /// Other errors with their (file index, byte offset), sorted by it at the end.
    errors: Vec<(usize, usize, ConfigError)>,
    tenants: Vec<Tenant>,
    tenant_at: HashMap<String, (TenantId, At)>,
    globs: Vec<(Glob, TenantId)>,
    pattern_at: HashMap<String, (TenantId, At)>,
    endpoints: Vec<(Endpoint, TenantId)>,
    endpoint_at: HashMap<Endpoint, (TenantId, At)>,
    pods: PodMatcher,
    rules: Vec<Rule>,
    rule_at: HashMap<String, At>,
    allows: Vec<Allow>,
}

/// Parses and validates `sources`; `errors` holds earlier (read) errors. `origin` names the
/// whole set in errors that are about no file in particular.
pub(super) fn build(
    origin: &Path,
    sources: Vec<Source>,
    errors: Vec<ConfigError>,
) -> Result<RuleSet, ConfigErrors> {
    let mut b = Builder {
        sources: &sources,
        read_errors: errors,
        errors: Vec::new(),
        tenants: Vec::new(),
        tenant_at: HashMap::new(),
        globs: Vec::new(),
        pattern_at: HashMap::new(),
        endpoints: Vec::new(),
        endpoint_at: HashMap::new(),
        pods: PodMatcher::default(),
        rules: Vec::new(),
        rule_at: HashMap::new(),
        allows: Vec::new(),
    };
    let mut files = Vec::with_capacity(sources.len());
    for (i, src) in sources.iter().enumerate() {
        let (raw, errors) = parse_file(&src.text);
        for (err, span) in errors {
            let offset = err.span().or(span.clone()).map_or(0, |s| s.start);
            let err = ConfigError::toml(&src.path, &src.text, err, span);
            b.errors.push((i, offset, err));
        }
        files.push((i, raw));
    }
    // When a file or table could not be read or parsed, some tenants and rules are unknown:
    // skip the checks that would only report consequences of that.
    let complete = b.read_errors.is_empty() && b.errors.is_empty();
    for (file, raw) in &files {
        raw.tenant.iter().for_each(|t| b.tenant(*file, t));
    }
    for (file, raw) in &files {
        raw.rule.iter().for_each(|r| b.rule(*file, r, complete));
    }
    for (file, raw) in &files {
        for rule in &raw.rule {
            for allow in &rule.allow {
                b.allow(*file, allow, Some(&rule.id), complete);
            }
        }
        raw.allow
            .iter()
            .for_each(|a| b.allow(*file, a, None, complete));
    }
    if complete {
        if b.tenants.is_empty() {
            b.whole(
                origin,
                "no [[tenant]] defined",
                "define at least one tenant",
            );
        }
        // `rule_at`: rules defined, even those whose expression did not compile.
        if b.rule_at.is_empty() {
            b.whole(origin, "no [[rule]] defined", "define at least one rule");
        }
    }
    b.finish()
}

impl Builder<'_> {
    fn at<T>(file: usize, value: &Spanned<T>) -> At {
        At {
            file,
            span: value.span(),
        }
    }

    fn invalid(&mut self, at: &At, message: String, hint: impl Into<String>) {
        let (path, location) = self.locate(at);
        let err = ConfigError::Invalid {
            path,
            location: Some(location),
            message,
            hint: hint.into(),
        };
        self.errors.push((at.file, at.span.start, err));
    }

    fn whole(&mut self, origin: &Path, message: &str, hint: &str) {
        let err = ConfigError::Invalid {
            path: origin.to_owned(),
            location: None,
            message: message.to_owned(),
            hint: hint.to_owned(),
        };
        self.errors.push((usize::MAX, 0, err));
    }

    fn locate(&self, at: &At) -> (PathBuf, Location) {
        match self.sources.get(at.file) {
            Some(src) => (
                src.path.clone(),
                Location::from_span(&src.text, at.span.clone()),
            ),
            None => (PathBuf::new(), Location::from_span("", 0..0)),
        }
    }

    /// "path:line:col" of an earlier definition, for hints.
    fn describe(&self, at: &At) -> String {
        let (path, loc) = self.locate(at);
        format!("{}:{}:{}", path.display(), loc.line, loc.column)
    }

    fn tenant(&mut self, file: usize, raw: &RawTenant) {
        let name = raw.name.get_ref();
        let name_at = Self::at(file, &raw.name);
        if !valid_ident(name) {
            self.invalid(
                &name_at,
                format!("invalid tenant name {name:?}"),
                IDENT_HINT,
            );
        }
        let id = TenantId(u32::try_from(self.tenants.len()).unwrap_or(u32::MAX));
        if let Some((_, prev)) = self.tenant_at.get(name) {
            let hint = format!(
                "already defined at {}; tenant names must be unique",
                self.describe(prev)
            );
            self.invalid(&name_at, format!("duplicate tenant {name:?}"), hint);
            return;
        }
        self.tenant_at.insert(name.clone(), (id, name_at.clone()));
        let mut cgroups = Vec::with_capacity(raw.cgroups.len());
        for pattern in &raw.cgroups {
            if let Some(p) = self.cgroup(file, pattern, id) {
                cgroups.push(p);
            }
        }
        let mut endpoints = Vec::with_capacity(raw.endpoints.len());
        let mut endpoint_tiers = Vec::new();
        for entry in &raw.endpoints {
            let text = Spanned::new(entry.span(), entry.get_ref().value.clone());
            if let Some(e) = self.endpoint(file, &text, id) {
                endpoints.push(e);
                if let Some(tier) = entry.get_ref().tier {
                    endpoint_tiers.push((e, tier));
                }
            }
        }
        let mut paths = Vec::with_capacity(raw.paths.len());
        let mut path_tiers = Vec::new();
        for text in &raw.paths {
            let value = &text.get_ref().value;
            if value.starts_with('/') && crate::model::text::normalize_path(value) == *value {
                paths.push(value.clone());
                if let Some(tier) = text.get_ref().tier {
                    path_tiers.push((value.clone(), tier));
                }
            } else {
                let at = Self::at(file, text);
                let hint = "expected an absolute, normalized path prefix such as \"/srv/acme\" \
                            (no `..`, `.` or trailing `/`)";
                self.invalid(&at, format!("invalid path prefix {value:?}"), hint);
            }
        }
        let (namespaces, pod_labels) = self.pod_selector(file, raw, id);
        if raw.cgroups.is_empty()
            && raw.endpoints.is_empty()
            && raw.paths.is_empty()
            && raw.namespaces.is_empty()
            && raw
                .pod_labels
                .as_ref()
                .is_none_or(|l| l.get_ref().is_empty())
        {
            self.invalid(
                &name_at,
                format!("tenant {name:?} owns no cgroup, pod, endpoint or path"),
                "add at least one pattern to `cgroups` or `namespaces`, a label to \
                 `pod_labels`, one address to `endpoints` or one prefix to `paths`",
            );
        }
        self.tenants.push(Tenant {
            name: TenantName::new(name),
            cgroups,
            endpoints,
            paths,
            path_tiers,
            endpoint_tiers,
            shared: raw.shared,
            namespaces,
            pod_labels,
        });
    }

    /// `namespaces` and `pod_labels`: checked, and added to the pod matcher.
    fn pod_selector(
        &mut self,
        file: usize,
        raw: &RawTenant,
        id: TenantId,
    ) -> (Vec<String>, BTreeMap<String, String>) {
        let mut names = Vec::with_capacity(raw.namespaces.len());
        let mut globs = Vec::with_capacity(raw.namespaces.len());
        for pattern in &raw.namespaces {
            let text = pattern.get_ref();
            let compiled = if plausible_namespace(text) {
                compile_namespace(text).map_err(|e| e.kind().to_string())
            } else {
                Err("not a namespace name".to_owned())
            };
            match compiled {
                Ok(glob) => {
                    names.push(text.clone());
                    globs.push(glob);
                }
                Err(why) => {
                    let hint = "expected a Kubernetes namespace or a glob over namespaces: \
                                lowercase letters, digits and '-', with `*`, `?`, `[a-z]` or \
                                `{a,b}`, e.g. \"acme-*\"";
                    let msg = format!("invalid namespace pattern {text:?}: {why}");
                    self.invalid(&Self::at(file, pattern), msg, hint);
                }
            }
        }
        let mut labels = BTreeMap::new();
        if let Some(table) = &raw.pod_labels {
            for (key, value) in table.get_ref() {
                if key.is_empty() || key.len() > 317 || key.contains(char::is_whitespace) {
                    let hint = "expected a Kubernetes label key such as \"tenant\" or \
                                \"example.com/team\" and its exact value";
                    let msg = format!("invalid pod label key {key:?}");
                    self.invalid(&Self::at(file, table), msg, hint);
                    continue;
                }
                labels.insert(key.clone(), value.clone());
            }
        }
        if let Err(e) = self.pods.add(id, globs, labels.clone()) {
            let msg = format!("cannot compile the namespace patterns: {e}");
            self.invalid(
                &Self::at(file, &raw.name),
                msg,
                "use simpler namespace patterns",
            );
        }
        (names, labels)
    }

    fn cgroup(&mut self, file: usize, pattern: &Spanned<String>, id: TenantId) -> Option<String> {
        let at = Self::at(file, pattern);
        let text = pattern.get_ref();
        if text.is_empty() {
            let hint = "expected a path relative to the cgroup2 mount, e.g. \"tenants.slice/acme\"";
            self.invalid(&at, "empty cgroup pattern".to_owned(), hint);
            return None;
        }
        if text.starts_with('/') {
            let hint = format!(
                "patterns are relative to the cgroup2 mount: write {:?}",
                text.trim_start_matches('/')
            );
            let msg = format!("cgroup pattern {text:?} starts with '/'");
            self.invalid(&at, msg, hint);
            return None;
        }
        if text.ends_with('/') {
            let hint = format!("write {:?}", text.trim_end_matches('/'));
            let msg = format!("cgroup pattern {text:?} ends with '/'");
            self.invalid(&at, msg, hint);
            return None;
        }
        let glob = match compile_glob(text) {
            Ok(glob) => glob,
            Err(e) => {
                let hint = "expected a glob: `*` matches within one path component, \
                            `**` across components, `?`, `[abc]`, `{a,b}`";
                self.invalid(
                    &at,
                    format!("invalid cgroup pattern {text:?}: {}", e.kind()),
                    hint,
                );
                return None;
            }
        };
        match self.pattern_at.entry(text.clone()) {
            Entry::Occupied(prev) if prev.get().0 == id => return None,
            Entry::Occupied(prev) => {
                let (owner, prev_at) = prev.get().clone();
                let hint = format!(
                    "also claimed by tenant {:?} at {}; a cgroup belongs to one tenant, \
                     remove one of the two patterns",
                    self.tenants
                        .get(owner.index())
                        .map_or("", |t| t.name.as_str()),
                    self.describe(&prev_at)
                );
                let msg = format!("cgroup pattern {text:?} is claimed by two tenants");
                self.invalid(&at, msg, hint);
                return None;
            }
            Entry::Vacant(slot) => {
                slot.insert((id, at));
            }
        }
        self.globs.push((glob, id));
        Some(text.clone())
    }

    fn endpoint(&mut self, file: usize, text: &Spanned<String>, id: TenantId) -> Option<Endpoint> {
        let at = Self::at(file, text);
        let endpoint = match text.get_ref().parse::<Endpoint>() {
            Ok(e) => e,
            Err(e) => {
                let msg = format!("invalid endpoint {:?}: {e}", text.get_ref());
                self.invalid(&at, msg, e.hint());
                return None;
            }
        };
        match self.endpoint_at.entry(endpoint) {
            Entry::Occupied(prev) if prev.get().0 == id => return None,
            Entry::Occupied(prev) => {
                let (owner, prev_at) = prev.get().clone();
                let hint = format!(
                    "also owned by tenant {:?} at {}; an endpoint belongs to one tenant",
                    self.tenants
                        .get(owner.index())
                        .map_or("", |t| t.name.as_str()),
                    self.describe(&prev_at)
                );
                let msg = format!("endpoint {endpoint} is claimed by two tenants");
                self.invalid(&at, msg, hint);
                return None;
            }
            Entry::Vacant(slot) => {
                slot.insert((id, at));
            }
        }
        self.endpoints.push((endpoint, id));
        Some(endpoint)
    }

    fn rule(&mut self, file: usize, raw: &RawRule, complete: bool) {
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

    /// An `[[allow]]` table, or a `[[rule.allow]]` of rule `implied`.
    fn allow(
        &mut self,
        file: usize,
        raw: &RawAllow,
        implied: Option<&Spanned<String>>,
        complete: bool,
    ) {
        let mut ok = true;
        if let (Some(rule), Some(_)) = (&raw.rule, implied) {
            let msg = "`rule` in a [[rule.allow]] table".to_owned();
            let hint = "a [[rule.allow]] applies to its enclosing [[rule]]; remove `rule`";
            self.invalid(&Self::at(file, rule), msg, hint);
            ok = false;
        } else if let Some(rule) = &raw.rule
            && complete
            && !self.rule_at.contains_key(rule.get_ref())
        {
            let hint = format!(
                "expected a [[rule]] id, or no `rule` key to cover every rule; {}",
                quoted_list(self.rules.iter().map(|r| r.id.as_str()))
            );
            let msg = format!("unknown rule {:?} in allow.rule", rule.get_ref());
            self.invalid(&Self::at(file, rule), msg, hint);
            ok = false;
        }
        let rule = implied.or(raw.rule.as_ref());
        let from = self.tenant_match(file, raw.from.as_ref(), "from", complete);
        let to = self.tenant_match(file, raw.to.as_ref(), "to", complete);
        let mut ports = Vec::with_capacity(raw.ports.len());
        for port in &raw.ports {
            match parse_allow_port(port.get_ref()) {
                Ok(range) => ports.push(range),
                Err(e) => {
                    let msg = format!("invalid port in allow.ports: {e}");
                    self.invalid(&Self::at(file, port), msg, e.hint());
                    ok = false;
                }
            }
        }
        for comm in &raw.processes {
            let n = comm.get_ref().chars().count();
            if n == 0 || n > COMM_MAX {
                let msg = format!(
                    "invalid process name {:?} in allow.processes",
                    comm.get_ref()
                );
                let hint = format!(
                    "expected a process name (comm) of 1 to {COMM_MAX} characters; the kernel \
                     truncates longer names, so write their first {COMM_MAX} characters"
                );
                self.invalid(&Self::at(file, comm), msg, hint);
                ok = false;
            }
        }
        for path in &raw.paths {
            if !path.get_ref().starts_with('/') {
                let msg = format!("invalid path {:?} in allow.paths", path.get_ref());
                let hint = "expected an absolute path prefix, e.g. \"/srv/shared\"";
                self.invalid(&Self::at(file, path), msg, hint);
                ok = false;
            }
        }
        let reason = raw.reason.get_ref().trim();
        if reason.is_empty() {
            let hint = "say why this access is fine and who approved it (e.g. a ticket)";
            let at = Self::at(file, &raw.reason);
            self.invalid(&at, "allow.reason is empty".to_owned(), hint);
            ok = false;
        }
        let narrows = rule.is_some()
            || raw.from.as_ref().is_some_and(|f| f.get_ref() != "*")
            || raw.to.as_ref().is_some_and(|t| t.get_ref() != "*")
            || !(raw.ports.is_empty()
                && raw.protocols.is_empty()
                && raw.processes.is_empty()
                && raw.paths.is_empty());
        if !narrows {
            let hint = "name a rule, tenants, ports, protocols, processes or paths";
            let at = Self::at(file, &raw.reason);
            self.invalid(&at, "this allow covers every access".to_owned(), hint);
            ok = false;
        }
        if let (true, Some(from), Some(to)) = (ok, from, to) {
            self.allows.push(Allow {
                rule: rule.map(|r| r.get_ref().clone()),
                from,
                to,
                ports,
                protocols: raw.protocols.clone(),
                processes: raw.processes.iter().map(|p| p.get_ref().clone()).collect(),
                paths: raw.paths.iter().map(|p| p.get_ref().clone()).collect(),
                reason: reason.to_owned(),
            });
        }
    }

    fn tenant_match(
        &mut self,
        file: usize,
        name: Option<&Spanned<String>>,
        key: &str,
        complete: bool,
    ) -> Option<TenantMatch> {
        let Some(name) = name else {
            return Some(TenantMatch::Any);
        };
        if name.get_ref() == "*" {
            return Some(TenantMatch::Any);
        }
        if self.tenant_at.contains_key(name.get_ref()) {
            return Some(TenantMatch::Tenant(TenantName::new(name.get_ref())));
        }
        if complete {
            let msg = format!("unknown tenant {:?} in allow.{key}", name.get_ref());
            let hint = format!(
                "expected a [[tenant]] name or \"*\"; {}",
                quoted_list(self.tenants.iter().map(|t| t.name.as_str()))
            );
            self.invalid(&Self::at(file, name), msg, hint);
        }
        None
    }

    fn finish(self) -> Result<RuleSet, ConfigErrors> {
        let sources = self.sources;
        let mut errors = self.read_errors;
        let mut located = self.errors;
        located.sort_by_key(|&(file, offset, _)| (file, offset));
        errors.extend(located.into_iter().map(|(_, _, e)| e));
        if errors.is_empty() {
            match CgroupMatcher::new(self.globs) {
                Ok(cgroups) => {
                    let refs = self
                        .tenants
                        .iter()
                        .map(|t| TenantRef {
                            name: t.name.clone(),
                            shared: t.shared,
                        })
                        .collect();
                    return Ok(RuleSet {
                        refs,
                        tenants: self.tenants,
                        rules: self.rules,
                        allows: self.allows,
                        sources: sources.iter().map(|s| s.path.clone()).collect(),
                        cgroups,
                        endpoints: EndpointMatcher::new(self.endpoints),
                        pods: self.pods,
                    });
                }
                Err(e) => errors.push(ConfigError::Invalid {
                    path: sources.first().map(|s| s.path.clone()).unwrap_or_default(),
                    location: None,
                    message: format!("cannot compile the cgroup patterns: {e}"),
                    hint: "use fewer or simpler cgroup patterns".to_owned(),
                }),
            }
        }
        Err(ConfigErrors(errors))
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

fn parse_allow_port(raw: &RawPort) -> Result<PortRange, ValueError> {
    match raw {
        RawPort::Number(n) => match u16::try_from(*n) {
            Ok(p) if p != 0 => Ok(PortRange::single(p)),
            _ => Err(ValueError::Port(n.to_string())),
        },
        RawPort::Text(s) => s.parse(),
    }
}

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "none defined".to_owned()
    } else {
        format!("defined: {}", names.join(", "))
    }
}
