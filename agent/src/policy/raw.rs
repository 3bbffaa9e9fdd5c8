//! The file format as written: serde structs with spans, before validation.

use std::{fmt, ops::Range};

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, Error as _, Visitor},
};
use toml::{
    Spanned,
    de::{DeTable, DeValue, ValueDeserializer},
};

use super::tier::{EndpointKey, PathKey, RawOwned};
use crate::model::vocab::{Severity, Transport};

/// One rules file's tables, in source order per kind.
#[derive(Debug, Default)]
pub(super) struct RawFile {
    pub tenant: Vec<RawTenant>,
    pub rule: Vec<RawRule>,
    pub allow: Vec<RawAllow>,
}

/// A TOML error and, when toml did not attach one, the span it is about.
pub(super) type TomlError = (toml::de::Error, Option<Range<usize>>);

/// Parses one file. Syntax errors stop there (all of them are returned); otherwise each
/// `[[tenant]]`, `[[rule]]` and `[[allow]]` table is deserialized on its own, so one bad
/// table does not hide the errors of the others.
pub(super) fn parse_file(text: &str) -> (RawFile, Vec<TomlError>) {
    let mut file = RawFile::default();
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return (file, syntax.into_iter().map(|e| (e, None)).collect());
    }
    let mut errors = Vec::new();
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "tenant" => tables(value, &mut file.tenant, &mut errors),
            "rule" => tables(value, &mut file.rule, &mut errors),
            "allow" => tables(value, &mut file.allow, &mut errors),
            other => {
                let msg =
                    format!("unknown field `{other}`, expected one of `tenant`, `rule`, `allow`");
                errors.push((toml::de::Error::custom(msg), Some(key.span())));
            }
        }
    }
    (file, errors)
}

/// Deserializes an array of tables item by item.
fn tables<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    out: &mut Vec<T>,
    errors: &mut Vec<TomlError>,
) {
    let span = value.span();
    let items = match value.into_inner() {
        DeValue::Array(items) => items,
        // Not an array: let serde report the type error.
        other => {
            let value = Spanned::new(span, other);
            if let Err(e) = Vec::<T>::deserialize(ValueDeserializer::from(value)) {
                errors.push((e, None));
            }
            return;
        }
    };
    for item in items {
        match T::deserialize(ValueDeserializer::from(item)) {
            Ok(t) => out.push(t),
            Err(e) => errors.push((e, None)),
        }
    }
}

/// `[[tenant]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub name: Spanned<String>,
    #[serde(default)]
    pub cgroups: Vec<Spanned<String>>,
    /// Plain strings, or tables with a tier (`config::tier`).
    /// Kubernetes namespaces (globs) whose pods belong to the tenant.
    #[serde(default)]
    pub namespaces: Vec<Spanned<String>>,
    /// Pod labels every pod of the tenant carries (all must match).
    #[serde(default)]
    pub pod_labels: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    pub endpoints: Vec<Spanned<RawOwned<EndpointKey>>>,
    #[serde(default)]
    pub paths: Vec<Spanned<RawOwned<PathKey>>>,
    #[serde(default)]
    pub shared: bool,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub id: Spanned<String>,
    pub severity: Severity,
    pub description: String,
    /// The rule expression; its span locates expression errors in the file.
    pub expr: Spanned<String>,
    /// The tenant attribute a violation names as intended (default `tenant`).
    #[serde(default)]
    pub intended: Option<Spanned<String>>,
    /// The tenant attribute a violation names as actual (default: the touched resource's).
    #[serde(default)]
    pub actual: Option<Spanned<String>>,
    /// `trace.count` rules: the sliding window, e.g. `"60s"`, `"5m"`.
    #[serde(default)]
    pub window: Option<Spanned<String>>,
    /// `trace.count` rules: the attribute whose values are counted apart (default `tenant`).
    #[serde(default)]
    pub group_by: Option<Spanned<String>>,
    /// `[[rule.allow]]`: exceptions to this rule only.
    #[serde(default)]
    pub allow: Vec<RawAllow>,
}

/// `[[allow]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    #[serde(default)]
    pub rule: Option<Spanned<String>>,
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    #[serde(default)]
    pub ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub protocols: Vec<Transport>,
    #[serde(default)]
    pub processes: Vec<Spanned<String>>,
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    pub reason: Spanned<String>,
}

/// An entry of `allow.ports`: a number or a `"lo-hi"` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawPort {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawPort, D::Error> {
        struct PortVisitor;

        impl Visitor<'_> for PortVisitor {
            type Value = RawPort;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a \"lo-hi\" string")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawPort, E> {
                Ok(RawPort::Number(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawPort, E> {
                i64::try_from(v)
                    .map(RawPort::Number)
                    .map_err(|_| E::custom("port number out of range"))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPort, E> {
                Ok(RawPort::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(PortVisitor)
    }
}
