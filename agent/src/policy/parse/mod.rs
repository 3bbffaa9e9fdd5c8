//! Parsing and validation: raw files -> [`RuleSet`], collecting every error. The tables are
//! checked in order: tenants ([`tenants`]), then rules ([`rules`]), then allows ([`allows`]),
//! each against what came before.
mod allows;
mod rules;
mod tenants;

use std::{
    collections::HashMap,
    ops::Range,
    path::{Path, PathBuf},
};

use globset::Glob;
use toml::Spanned;

use super::{
    RuleSet,
    error::{ConfigError, ConfigErrors, Location},
    matcher::{CgroupMatcher, EndpointMatcher},
    model::{Allow, Endpoint, Rule, Tenant, TenantId},
    pods::PodMatcher,
    raw::parse_file,
};
use crate::model::spans::TenantRef;

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

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "none defined".to_owned()
    } else {
        format!("defined: {}", names.join(", "))
    }
}
