//! Precompiled lookups: cgroup path -> tenant, endpoint -> tenant.

use std::{cmp::Reverse, net::IpAddr};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::model::{Endpoint, TenantId};

/// Compiles a cgroup pattern: `*` and `?` stay within one path component, `**` crosses them.
pub(super) fn compile_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Cgroup path -> owning tenant, by the nearest matching ancestor.
#[derive(Debug, Clone, Default)]
pub(super) struct CgroupMatcher {
    set: GlobSet,
    /// Owner of each glob in `set`, in load order.
    owners: Vec<TenantId>,
}

impl CgroupMatcher {
    /// `globs` in load order: at equal depth the earlier glob wins.
    pub(super) fn new(globs: Vec<(Glob, TenantId)>) -> Result<CgroupMatcher, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let mut owners = Vec::with_capacity(globs.len());
        for (glob, owner) in globs {
            builder.add(glob);
            owners.push(owner);
        }
        Ok(CgroupMatcher {
            set: builder.build()?,
            owners,
        })
    }

    /// The tenant owning `path` (relative to the cgroup2 mount; surrounding '/' are ignored):
    /// the path itself is tried first, then each ancestor up to the top.
    pub(super) fn lookup(&self, path: &str) -> Option<TenantId> {
        let mut prefix = path.trim_matches('/');
        let mut hits = Vec::new();
        while !prefix.is_empty() {
            self.set.matches_into(prefix, &mut hits);
            // `hits` is sorted: the first is the earliest pattern in load order.
            if let Some(&first) = hits.first() {
                return self.owners.get(first).copied();
            }
            prefix = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        }
        None
    }
}

/// Off-node address -> owning tenant, most specific endpoint first.
#[derive(Debug, Clone, Default)]
pub(super) struct EndpointMatcher {
    entries: Vec<(Endpoint, TenantId)>,
}

impl EndpointMatcher {
    /// `endpoints` in load order; sorted here by specificity (longest prefix, then
    /// port-specific before port-less, then narrower port range), load order breaking ties.
    pub(super) fn new(mut endpoints: Vec<(Endpoint, TenantId)>) -> EndpointMatcher {
        endpoints.sort_by_key(|(e, _)| {
            (
                Reverse(e.net.prefix_len()),
                e.ports.map_or(u32::MAX, |p| p.len()),
            )
        });
        EndpointMatcher { entries: endpoints }
    }

    /// The tenant owning `ip:port`, if any.
    pub(super) fn lookup(&self, ip: IpAddr, port: u16) -> Option<TenantId> {
        let ip = ip.to_canonical();
        self.entries
            .iter()
            .find(|(e, _)| e.contains(ip, port))
            .map(|&(_, t)| t)
    }
}
