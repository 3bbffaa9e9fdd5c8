//! This node's own addresses, for `peer.local` and `caller.local`.

use std::net::IpAddr;

/// The addresses of this node's interfaces (in the agent's network namespace). Loopback
/// addresses always count as local.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LocalAddrs {
    addrs: Vec<IpAddr>,
}

impl LocalAddrs {
    /// A fixed set (tests).
    #[cfg(test)]
    pub(crate) fn new(addrs: Vec<IpAddr>) -> Self {
        Self { addrs }
    }

    /// The addresses of every interface now; empty (loopback only) if they cannot be listed.
    pub(crate) fn current() -> Self {
        let addrs = match nix::ifaddrs::getifaddrs() {
            Ok(ifaddrs) => ifaddrs
                .filter_map(|i| i.address)
                .filter_map(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                    }
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list the node's addresses; only loopback is local");
                Vec::new()
            }
        };
        Self { addrs }
    }

    /// Whether `ip` is a loopback address or one of this node's.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.addrs.contains(&ip)
    }
}
