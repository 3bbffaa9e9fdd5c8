//! The validated rule model: tenants, endpoints, rules and allow entries.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    model::{
        spans::TenantName,
        vocab::{Severity, Tier, Transport},
    },
    policy::lang::{Attr, CountLimit, Matcher},
};

/// Index of a tenant in [`RuleSet::tenants`](super::RuleSet::tenants), for the config's own
/// lookup tables; everything outside `config` names tenants by [`TenantName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TenantId(pub u32);

impl TenantId {
    /// The index into `RuleSet::tenants`.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// A tenant: a set of cgroups (or Kubernetes pods) on this node plus the endpoints it owns off
/// the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tenant {
    /// Unique name (`[a-z0-9][a-z0-9_.-]*`).
    pub name: TenantName,
    /// Glob patterns relative to the cgroup2 mount, as written in the file.
    pub cgroups: Vec<String>,
    /// Addresses the tenant owns off this node.
    pub endpoints: Vec<Endpoint>,
    /// Absolute path prefixes the tenant owns (its data directories, volumes, sockets).
    pub paths: Vec<String>,
    /// The tier of each entry of `paths` that names one (`config::tier`).
    pub path_tiers: Vec<(String, Tier)>,
    /// The tier of each entry of `endpoints` that names one.
    pub endpoint_tiers: Vec<(Endpoint, Tier)>,
    /// A shared service (DNS, registry...) that any tenant may reach.
    pub shared: bool,
    /// Kubernetes namespace globs whose pods belong to the tenant (`namespaces`).
    pub namespaces: Vec<String>,
    /// Labels a pod must all carry to belong to the tenant (`pod_labels`).
    pub pod_labels: std::collections::BTreeMap<String, String>,
}

/// A detection rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Unique id (`[a-z0-9][a-z0-9_.-]*`).
    pub id: String,
    /// Severity of the alerts it raises.
    pub severity: Severity,
    /// Human-readable description, copied into alerts.
    pub description: String,
    /// The expression as written.
    pub expr: String,
    /// The compiled expression.
    pub matcher: Matcher,
    /// The tenant attribute violations name as `intended_tenant` (`None`: `tenant`).
    pub intended: Option<Attr>,
    /// The tenant attribute violations name as `actual_tenant` (`None`: the touched
    /// resource's: `peer.tenant`, `file.tenant`).
    pub actual: Option<Attr>,
    /// For `trace.count(...)` rules: over what the count runs.
    pub count: Option<CountRule>,
}

/// How a `trace.count(...) > N` rule counts: spans matching its `trace.has` part, per value of
/// `group_by`, within the last `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountRule {
    pub limit: CountLimit,
    pub window: std::time::Duration,
    pub group_by: Attr,
}

/// One side of an allow entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TenantMatch {
    /// `"*"`: every tenant, and none.
    Any,
    /// One tenant.
    Tenant(TenantName),
}

/// An exception: an access that matches a rule but is not a violation (applied by
/// `detect::allow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allow {
    /// The rule this entry applies to; `None` means every rule.
    pub rule: Option<String>,
    /// The caller's tenant (`tenant`).
    pub from: TenantMatch,
    /// The touched resource's tenant (`peer.tenant`, `file.tenant`).
    pub to: TenantMatch,
    /// Destination ports; empty means every port (non-empty: network spans only).
    pub ports: Vec<PortRange>,
    /// Protocols; empty means every protocol (non-empty: network spans only).
    pub protocols: Vec<Transport>,
    /// Caller process names (comm); empty means every process.
    pub processes: Vec<String>,
    /// Path prefixes (whole components); empty means every path (non-empty: file spans only).
    pub paths: Vec<String>,
    /// Why the access is allowed (required).
    pub reason: String,
}

/// Whether `path` is `prefix` or below it (whole components: `/data/a` is not under `/data/ab`).
pub(crate) fn path_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

/// Why an endpoint or port string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    /// The address part is neither an IP address nor a CIDR network.
    #[error("{0:?} is not an IP address or CIDR network")]
    Address(String),
    /// A port is not a number in 1..=65535.
    #[error("{0:?} is not a port number (1-65535)")]
    Port(String),
    /// A `lo-hi` range whose start is above its end.
    #[error("port range {0:?} starts above its end")]
    ReversedRange(String),
    /// A `[` without its `]`, or text after the `]` that is not `:port`.
    #[error("{0:?} is not a bracketed IPv6 endpoint")]
    Brackets(String),
}

impl ValueError {
    /// What was expected instead.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            ValueError::Address(_) | ValueError::Brackets(_) => {
                "expected IP, CIDR, IP:port, CIDR:port or CIDR:lo-hi; \
                 put IPv6 in brackets when adding a port: \"[2001:db8::/32]:443\""
            }
            ValueError::Port(_) => "expected a port number 1-65535 or a \"lo-hi\" range",
            ValueError::ReversedRange(_) => "write the range as \"lo-hi\" with lo <= hi",
        }
    }
}

/// An inclusive port range; a single port has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PortRange {
    /// First port (inclusive).
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// A range holding one port.
    pub(crate) fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Whether `port` lies in the range.
    pub(crate) fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// Number of ports in the range.
    pub(crate) fn len(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

fn parse_port(s: &str) -> Result<u16, ValueError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p != 0 && s.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ValueError::Port(s.to_owned())),
    }
}

impl FromStr for PortRange {
    type Err = ValueError;

    /// Parses `"443"` or `"8000-8100"`.
    fn from_str(s: &str) -> Result<PortRange, ValueError> {
        let Some((lo, hi)) = s.split_once('-') else {
            return parse_port(s).map(PortRange::single);
        };
        let range = PortRange {
            lo: parse_port(lo).map_err(|_| ValueError::Port(s.to_owned()))?,
            hi: parse_port(hi).map_err(|_| ValueError::Port(s.to_owned()))?,
        };
        if range.lo > range.hi {
            return Err(ValueError::ReversedRange(s.to_owned()));
        }
        Ok(range)
    }
}

/// A network (optionally restricted to a port range) owned by a tenant off this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    /// The network, host bits cleared; IPv4-mapped IPv6 networks are stored as IPv4.
    pub net: IpNet,
    /// Destination ports; `None` means every port.
    pub ports: Option<PortRange>,
}

impl Endpoint {
    /// Whether `ip:port` lies in this endpoint (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub(crate) fn contains(&self, ip: IpAddr, port: u16) -> bool {
        self.net.contains(&ip.to_canonical()) && self.ports.is_none_or(|r| r.contains(port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = self.net;
        let bare = net.prefix_len() == net.max_prefix_len();
        match (self.ports, net) {
            (None, _) if bare => write!(f, "{}", net.addr()),
            (None, _) => write!(f, "{net}"),
            (Some(p), IpNet::V4(_)) if bare => write!(f, "{}:{p}", net.addr()),
            (Some(p), IpNet::V4(_)) => write!(f, "{net}:{p}"),
            (Some(p), IpNet::V6(_)) if bare => write!(f, "[{}]:{p}", net.addr()),
            (Some(p), IpNet::V6(_)) => write!(f, "[{net}]:{p}"),
        }
    }
}

/// Parses `IP` or `CIDR`, clearing host bits and turning IPv4-mapped IPv6 into IPv4.
fn parse_net(s: &str) -> Result<IpNet, ValueError> {
    let net = if s.contains('/') {
        s.parse::<IpNet>().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let net = net
        .ok_or_else(|| ValueError::Address(s.to_owned()))?
        .trunc();
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(to_v4(v4, v6)),
            None => net,
        },
        _ => net,
    })
}

fn to_v4(addr: Ipv4Addr, v6: Ipv6Net) -> Ipv4Net {
    // prefix_len is in 96..=128, so the IPv4 prefix is in 0..=32 and always valid.
    Ipv4Net::new(addr, v6.prefix_len() - 96).unwrap_or_else(|_| Ipv4Net::from(addr))
}

impl FromStr for Endpoint {
    type Err = ValueError;

    /// Parses `IP`, `CIDR`, `IP:port`, `CIDR:port`, `CIDR:lo-hi`; IPv6 with a port goes in
    /// brackets (`[2001:db8::/32]:443`), bare IPv6 (`2001:db8::1`, `2001:db8::/32`) has no port.
    fn from_str(s: &str) -> Result<Endpoint, ValueError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest
                .split_once(']')
                .ok_or_else(|| ValueError::Brackets(s.to_owned()))?;
            let ports = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(p) => Some(p.parse::<PortRange>()?),
                    None => return Err(ValueError::Brackets(s.to_owned())),
                },
            };
            if !inner.contains(':') {
                // Brackets are for IPv6 only.
                return Err(ValueError::Brackets(s.to_owned()));
            }
            return Ok(Endpoint {
                net: parse_net(inner)?,
                ports,
            });
        }
        match s.matches(':').count() {
            0 => Ok(Endpoint {
                net: parse_net(s)?,
                ports: None,
            }),
            1 => {
                let (addr, ports) = s.split_once(':').unwrap_or((s, ""));
                Ok(Endpoint {
                    net: parse_net(addr)?,
                    ports: Some(ports.parse::<PortRange>()?),
                })
            }
            _ => Ok(Endpoint {
                net: parse_net(s)?,
                ports: None,
            }),
        }
    }
}

/// Whether `s` is a valid tenant name or rule id: `[a-z0-9][a-z0-9_.-]*`.
pub(super) fn valid_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}
