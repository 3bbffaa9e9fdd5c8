//! Data tiers of tenants' resources: an entry of a tenant's `paths` or `endpoints` is a plain
//! string (unclassified) or a table naming its tier, e.g.
//! `paths = ["/srv/acme", { path = "/srv/acme/pii", tier = "regulated" }]`. Spans carry the
//! tier of the resource they touched (the longest matching entry of its owner decides).
use std::{fmt, marker::PhantomData, net::IpAddr};

use serde::{
    Deserialize, Deserializer,
    de::{Error as _, MapAccess, Visitor},
};

use super::{
    RuleSet,
    model::{Endpoint, path_under},
};
use crate::model::{spans::TenantName, vocab::Tier};

/// Which list an entry is in: the key its table form names the resource with.
pub(super) trait EntryKey {
    const KEY: &'static str;
}

/// `paths` entries: `{ path = "...", tier = "..." }`.
#[derive(Debug)]
pub(super) struct PathKey;

impl EntryKey for PathKey {
    const KEY: &'static str = "path";
}

/// `endpoints` entries: `{ endpoint = "...", tier = "..." }`.
#[derive(Debug)]
pub(super) struct EndpointKey;

impl EntryKey for EndpointKey {
    const KEY: &'static str = "endpoint";
}

/// An entry of `paths` or `endpoints` as written: the resource and, in the table form, its tier.
#[derive(Debug)]
pub(super) struct RawOwned<K> {
    pub value: String,
    pub tier: Option<Tier>,
    key: PhantomData<K>,
}

impl<'de, K: EntryKey> Deserialize<'de> for RawOwned<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OwnedVisitor<K>(PhantomData<K>);

        impl<'de, K: EntryKey> Visitor<'de> for OwnedVisitor<K> {
            type Value = RawOwned<K>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a string or a table {{ {} = \"...\", tier = \"public\" | \"operational\" | \"regulated\" }}",
                    K::KEY
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawOwned {
                    value: v.to_owned(),
                    tier: None,
                    key: PhantomData,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut value, mut tier) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    if key == K::KEY {
                        value = Some(map.next_value::<String>()?);
                    } else if key == "tier" {
                        tier = Some(map.next_value::<Tier>()?);
                    } else {
                        return Err(A::Error::custom(format!(
                            "unknown field `{key}`, expected `{}` or `tier`",
                            K::KEY
                        )));
                    }
                }
                let value = value.ok_or_else(|| A::Error::missing_field(K::KEY))?;
                Ok(RawOwned {
                    value,
                    tier,
                    key: PhantomData,
                })
            }
        }

        deserializer.deserialize_any(OwnedVisitor(PhantomData))
    }
}

impl RuleSet {
    /// The tier of `path` among `tenant`'s `paths`: the tier of the longest entry covering it
    /// (None when that entry has no tier, or none covers it).
    pub(crate) fn path_tier(&self, tenant: &TenantName, path: &str) -> Option<Tier> {
        let owner = self.tenants.iter().find(|t| t.name == *tenant)?;
        let longest = owner
            .paths
            .iter()
            .filter(|prefix| path_under(path, prefix))
            .max_by_key(|prefix| prefix.len())?;
        owner
            .path_tiers
            .iter()
            .find(|(prefix, _)| prefix == longest)
            .map(|&(_, tier)| tier)
    }

    /// The tier of `ip:port` among `tenant`'s `endpoints`: the tier of the most specific entry
    /// covering it (longest prefix, then narrowest port range), None when it has none.
    pub(crate) fn endpoint_tier(&self, tenant: &TenantName, ip: IpAddr, port: u16) -> Option<Tier> {
        let owner = self.tenants.iter().find(|t| t.name == *tenant)?;
        let specificity = |e: &Endpoint| {
            (
                e.net.prefix_len(),
                std::cmp::Reverse(e.ports.map_or(u32::MAX, |p| p.len())),
            )
        };
        let best = owner
            .endpoints
            .iter()
            .filter(|e| e.contains(ip, port))
            .max_by_key(|e| specificity(e))?;
        owner
            .endpoint_tiers
            .iter()
            .find(|(e, _)| e == best)
            .map(|&(_, tier)| tier)
    }
}
