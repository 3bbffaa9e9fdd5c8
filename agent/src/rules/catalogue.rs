//! The span model: every span name and attribute a rule can use, in one place.
//!
//! `docs/span-attributes.md` is generated from this catalogue (see [`super::doc`]).

use std::fmt;

/// A span family: the attributes a span carries beyond the common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Attributes every span has (the caller).
    Common,
    /// Connections and flows.
    Network,
    /// File accesses.
    File,
    /// Process lifecycle.
    Process,
}

impl Family {
    /// The violation `kind` for spans of this family.
    pub fn kind(self) -> &'static str {
        match self {
            Family::Common => "span",
            Family::Network => "network",
            Family::File => "file",
            Family::Process => "process",
        }
    }
}

/// A span name, as written in `trace.has(<name>)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SpanName {
    /// A TCP connection.
    NetConnect,
    /// A UDP flow.
    NetFlow,
    /// A file opened for reading or writing.
    FileOpen,
    /// A file created.
    FileCreate,
    /// A file deleted.
    FileDelete,
    /// A file renamed.
    FileRename,
    /// A file truncated.
    FileTruncate,
    /// A file executed.
    FileExec,
    /// A process started a new program.
    ProcessExec,
}

impl SpanName {
    /// Every span name, in catalogue order.
    pub const ALL: [SpanName; 9] = [
        SpanName::NetConnect,
        SpanName::NetFlow,
        SpanName::FileOpen,
        SpanName::FileCreate,
        SpanName::FileDelete,
        SpanName::FileRename,
        SpanName::FileTruncate,
        SpanName::FileExec,
        SpanName::ProcessExec,
    ];

    /// The name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanName::NetConnect => "net.connect",
            SpanName::NetFlow => "net.flow",
            SpanName::FileOpen => "file.open",
            SpanName::FileCreate => "file.create",
            SpanName::FileDelete => "file.delete",
            SpanName::FileRename => "file.rename",
            SpanName::FileTruncate => "file.truncate",
            SpanName::FileExec => "file.exec",
            SpanName::ProcessExec => "process.exec",
        }
    }

    /// The span's family.
    pub fn family(self) -> Family {
        match self {
            SpanName::NetConnect | SpanName::NetFlow => Family::Network,
            SpanName::ProcessExec => Family::Process,
            _ => Family::File,
        }
    }

    /// What the span stands for (documentation).
    pub fn doc(self) -> &'static str {
        match self {
            SpanName::NetConnect => "A TCP connection: the client (caller) and the server (peer).",
            SpanName::NetFlow => "A UDP flow: the first sender (caller) and the receiver (peer).",
            SpanName::FileOpen => "A file opened for reading or writing.",
            SpanName::FileCreate => "A file created.",
            SpanName::FileDelete => "A file deleted (unlinked).",
            SpanName::FileRename => "A file renamed (`file.path` is the source path).",
            SpanName::FileTruncate => "A file truncated.",
            SpanName::FileExec => "A file executed as a program.",
            SpanName::ProcessExec => "A process started a new program.",
        }
    }

    /// The name for `text`, if any.
    pub fn parse(text: &str) -> Option<SpanName> {
        SpanName::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl fmt::Display for SpanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of span names (a bit mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanSet(u16);

impl SpanSet {
    /// No span.
    pub const EMPTY: SpanSet = SpanSet(0);
    /// Every span.
    pub const ALL: SpanSet = SpanSet((1 << SpanName::ALL.len()) - 1);

    /// The set holding one name.
    pub fn one(name: SpanName) -> SpanSet {
        SpanSet(name.bit())
    }

    /// Every span of a family.
    pub fn family(family: Family) -> SpanSet {
        SpanName::ALL
            .into_iter()
            .filter(|s| s.family() == family)
            .fold(SpanSet::EMPTY, |acc, s| acc.union(SpanSet::one(s)))
    }

    /// Whether `name` is in the set.
    pub fn contains(self, name: SpanName) -> bool {
        self.0 & name.bit() != 0
    }

    /// Both sets.
    pub fn union(self, other: SpanSet) -> SpanSet {
        SpanSet(self.0 | other.0)
    }

    /// Names in both sets.
    pub fn intersect(self, other: SpanSet) -> SpanSet {
        SpanSet(self.0 & other.0)
    }

    /// The names in the set, in catalogue order.
    pub fn names(self) -> impl Iterator<Item = SpanName> {
        SpanName::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// The type of an attribute, checked when a rule is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Free text.
    Str,
    /// A whole number.
    Int,
    /// `true` or `false`.
    Bool,
    /// A tenant name (a string; literals must name a defined tenant).
    Tenant,
    /// An IP address, written as a string (`"169.254.169.254"`); `in` lists may hold CIDRs.
    Addr,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
}

impl Type {
    /// Whether values of this type are strings in rules.
    pub fn is_text(self) -> bool {
        matches!(self, Type::Str | Type::Tenant | Type::Enum(_))
    }

    /// How the type is written in the documentation and errors.
    pub fn describe(self) -> String {
        match self {
            Type::Str => "string".to_owned(),
            Type::Int => "int".to_owned(),
            Type::Bool => "bool".to_owned(),
            Type::Tenant => "tenant name (string)".to_owned(),
            Type::Addr => "IP address (string)".to_owned(),
            Type::Enum(values) => format!("one of {}", values.join(" | ")),
        }
    }
}

/// Values of `net.protocol`.
pub const PROTOCOLS: &[&str] = &["tcp", "udp"];
/// Values of `file.op`.
pub const FILE_OPS: &[&str] = &[
    "read", "write", "create", "delete", "rename", "truncate", "exec",
];
/// Values of `file.outcome`.
pub const FILE_OUTCOMES: &[&str] = &["ok", "denied", "error"];
/// Values of `file.path_confidence`.
pub const PATH_CONFIDENCES: &[&str] = &["full", "partial"];

macro_rules! attributes {
    ($($variant:ident = $name:literal, $family:ident, $ty:expr, $doc:literal;)*) => {
        /// An attribute, resolved from its name when a rule is compiled.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Attr {
            $(#[doc = $doc] $variant,)*
        }

        impl Attr {
            /// Every attribute, in catalogue order.
            pub const ALL: &'static [Attr] = &[$(Attr::$variant,)*];

            /// The name as written in rules.
            pub fn name(self) -> &'static str {
                match self { $(Attr::$variant => $name,)* }
            }

            /// Which spans carry it.
            pub fn family(self) -> Family {
                match self { $(Attr::$variant => Family::$family,)* }
            }

            /// Its type.
            pub fn ty(self) -> Type {
                match self { $(Attr::$variant => $ty,)* }
            }

            /// What it means (documentation).
            pub fn doc(self) -> &'static str {
                match self { $(Attr::$variant => $doc,)* }
            }
        }
    };
}

attributes! {
    Tenant = "tenant", Common, Type::Tenant,
        "The caller's tenant, or null when the caller is in no tenant's cgroup (or not on this node).";
    ProcessPid = "process.pid", Common, Type::Int,
        "The caller's process id, or null when unknown.";
    ProcessComm = "process.comm", Common, Type::Str,
        "The caller's process name (comm, at most 15 characters), or null when unknown.";
    ProcessUid = "process.uid", Common, Type::Int,
        "The caller's user id, or null when unknown.";
    CgroupId = "cgroup.id", Common, Type::Int,
        "The caller's cgroup id, or null when the caller is not on this node.";
    CgroupPath = "cgroup.path", Common, Type::Str,
        "The caller's cgroup path relative to the cgroup2 mount, or null.";
    PeerTenant = "peer.tenant", Network, Type::Tenant,
        "The tenant whose resource was reached: the server socket's tenant when it is on this node, else the tenant owning the destination in `endpoints`; null if none.";
    PeerShared = "peer.shared", Network, Type::Bool,
        "Whether `peer.tenant` is a shared tenant (false when `peer.tenant` is null).";
    PeerAddr = "peer.addr", Network, Type::Addr,
        "The destination address (the server's).";
    PeerPort = "peer.port", Network, Type::Int,
        "The destination port.";
    PeerLocal = "peer.local", Network, Type::Bool,
        "Whether the peer socket is on this node: a watched server socket, or a loopback or local interface address.";
    PeerProcessComm = "peer.process.comm", Network, Type::Str,
        "The server process's name, when the server socket is watched on this node; else null.";
    NetProtocol = "net.protocol", Network, Type::Enum(PROTOCOLS),
        "The transport protocol.";
    CallerAddr = "caller.addr", Network, Type::Addr,
        "The caller's (client's) own address.";
    CallerLocal = "caller.local", Network, Type::Bool,
        "Whether the caller is on this node: a watched client socket, or a loopback or local interface address (false for connections from other hosts).";
    FilePath = "file.path", File, Type::Str,
        "The path accessed.";
    FileTenant = "file.tenant", File, Type::Tenant,
        "The tenant owning the path (from tenants' `paths`), or null.";
    FileShared = "file.shared", File, Type::Bool,
        "Whether `file.tenant` is a shared tenant (false when `file.tenant` is null).";
    FileOp = "file.op", File, Type::Enum(FILE_OPS),
        "What was done to the file.";
    FileOutcome = "file.outcome", File, Type::Enum(FILE_OUTCOMES),
        "Whether the kernel let the access happen.";
    FilePathConfidence = "file.path_confidence", File, Type::Enum(PATH_CONFIDENCES),
        "`full` when `file.path` is the whole path, `partial` when the kernel could only give part of it.";
}

impl Attr {
    /// The attribute called `name`, if any.
    pub fn parse(name: &str) -> Option<Attr> {
        Attr::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Whether spans called `span` carry this attribute.
    pub fn available_on(self, span: SpanName) -> bool {
        self.family() == Family::Common || self.family() == span.family()
    }

    /// The attribute naming the tenant whose resource a span of `family` touched.
    pub fn target_tenant(family: Family) -> Option<Attr> {
        match family {
            Family::Network => Some(Attr::PeerTenant),
            Family::File => Some(Attr::FileTenant),
            Family::Common | Family::Process => None,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
