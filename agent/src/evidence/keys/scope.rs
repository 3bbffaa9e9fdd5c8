//! [`Scope`]: whose history a record belongs to, and so which key seals it.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest tenant name accepted (bytes).
pub(crate) const MAX_TENANT_NAME: usize = 253;

/// Why a tenant name cannot name a scope.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScopeError {
    /// The name is empty.
    #[error("tenant name is empty; use the tenant's name from the rules files")]
    Empty,
    /// The name is longer than [`MAX_TENANT_NAME`] bytes.
    #[error("tenant name is {len} bytes, more than the {max} allowed; use a shorter name")]
    TooLong { len: usize, max: usize },
    /// The name holds a control character (NUL, newline, ...).
    #[error("tenant name {name:?} holds a control character; remove it")]
    Control { name: String },
}

/// The history a record belongs to: one tenant's, or the node's (records of no tenant).
///
/// A crossing between two tenants is evidence for both: the caller appends it to both
/// tenants' scopes, so it is kept (and sealed) in both histories.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub(crate) enum Scope {
    /// Records of no tenant, sealed under the node key.
    Node,
    /// One tenant's records, sealed under that tenant's key.
    Tenant(String),
}

impl Scope {
    /// A tenant's scope; the name is checked (non-empty, bounded, no control characters).
    pub(crate) fn tenant(name: &str) -> Result<Self, ScopeError> {
        if name.is_empty() {
            return Err(ScopeError::Empty);
        }
        if name.len() > MAX_TENANT_NAME {
            return Err(ScopeError::TooLong {
                len: name.len(),
                max: MAX_TENANT_NAME,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(ScopeError::Control { name: name.into() });
        }
        Ok(Self::Tenant(name.to_owned()))
    }

    /// The tenant's name, None for the node.
    pub(crate) fn tenant_name(&self) -> Option<&str> {
        match self {
            Self::Node => None,
            Self::Tenant(name) => Some(name),
        }
    }

    /// A file-name-safe, reversible name: `node`, or `t-` and the tenant name with every byte
    /// outside `[A-Za-z0-9_-]` written as `%XX`.
    pub(crate) fn stem(&self) -> String {
        match self {
            Self::Node => "node".into(),
            Self::Tenant(name) => {
                let mut out = String::with_capacity(name.len() + 2);
                out.push_str("t-");
                for byte in name.bytes() {
                    if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                        out.push(char::from(byte));
                    } else {
                        out.push_str(&format!("%{byte:02X}"));
                    }
                }
                out
            }
        }
    }

    /// The scope a [`Scope::stem`] names; None if `stem` is not one.
    pub(crate) fn from_stem(stem: &str) -> Option<Self> {
        if stem == "node" {
            return Some(Self::Node);
        }
        let escaped = stem.strip_prefix("t-")?;
        let mut bytes = Vec::with_capacity(escaped.len());
        let mut iter = escaped.bytes();
        while let Some(byte) = iter.next() {
            if byte == b'%' {
                let hex = [iter.next()?, iter.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            } else {
                bytes.push(byte);
            }
        }
        let scope = Self::tenant(&String::from_utf8(bytes).ok()?).ok()?;
        // Only the canonical spelling: one scope, one directory.
        (scope.stem() == stem).then_some(scope)
    }

    /// Unambiguous bytes for associated data and key derivation: kind, length, name.
    pub(crate) fn bind(&self, out: &mut Vec<u8>) {
        match self {
            Self::Node => out.extend_from_slice(&[0, 0, 0]),
            Self::Tenant(name) => {
                out.push(1);
                // Names are at most MAX_TENANT_NAME bytes, so the length fits.
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node => f.write_str("node"),
            Self::Tenant(name) => write!(f, "tenant {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_round_trip_and_never_collide() {
        let names = ["acme", "node", "a b", "a/../b", "Ünï", "%41", "t-x", "x.y"];
        let mut stems = vec![Scope::Node.stem()];
        for name in names {
            let scope = Scope::tenant(name).unwrap();
            let stem = scope.stem();
            assert!(!stem.contains('/') && !stem.contains('.'), "{stem}");
            assert_eq!(Scope::from_stem(&stem), Some(scope));
            stems.push(stem);
        }
        let unique: std::collections::BTreeSet<_> = stems.iter().collect();
        assert_eq!(unique.len(), stems.len());
        assert_eq!(Scope::from_stem("node"), Some(Scope::Node));
        for bad in ["t-", "t-%4", "t-%zz", "t-%41", "x", "t-a.b"] {
            assert_eq!(Scope::from_stem(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(matches!(Scope::tenant(""), Err(ScopeError::Empty)));
        assert!(matches!(
            Scope::tenant(&"x".repeat(300)),
            Err(ScopeError::TooLong { .. })
        ));
        assert!(matches!(
            Scope::tenant("a\nb"),
            Err(ScopeError::Control { .. })
        ));
    }

    #[test]
    fn binding_separates_node_and_tenants() {
        let mut node = Vec::new();
        Scope::Node.bind(&mut node);
        let mut empty_like = Vec::new();
        Scope::tenant("a").unwrap().bind(&mut empty_like);
        assert_ne!(node, empty_like);
    }
}
