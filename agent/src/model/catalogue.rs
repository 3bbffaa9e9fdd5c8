//! The span model: every span name and attribute a rule can use, in one place.
//!
//! `docs/span-attributes.md` is generated from this catalogue (see [`crate::policy::lang::doc`]).

use std::fmt;

use crate::model::vocab::{
    AppSpanKind, AppStatus, FileOp, Outcome, PathConfidence, Tier, Transport,
};

/// A span family: the attributes a span carries beyond the common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Family {
    /// Attributes every span has (the caller).
    Common,
    /// Connections and flows.
    Network,
    /// File accesses.
    File,
    /// Process lifecycle.
    Process,
    /// Applications' own spans (OTLP), joined to what the kernel saw.
    App,
}

impl Family {
    /// The violation `kind` for spans of this family.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Family::Common => "span",
            Family::Network => "network",
            Family::File => "file",
            Family::Process => "process",
            Family::App => "app",
        }
    }
}

/// A span name, as written in `trace.has(<name>)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum SpanName {
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
    /// A process started a new program (the span runs until it exits).
    ProcessExec,
    /// An application's server span (it handled a request).
    AppServer,
    /// An application's client span (it called a service).
    AppClient,
    /// An application's internal span.
    AppInternal,
    /// An application's producer span (it sent a message).
    AppProducer,
    /// An application's consumer span (it received a message).
    AppConsumer,
}

impl SpanName {
    /// Every span name, in catalogue order.
    pub(crate) const ALL: [SpanName; 14] = [
        SpanName::NetConnect,
        SpanName::NetFlow,
        SpanName::FileOpen,
        SpanName::FileCreate,
        SpanName::FileDelete,
        SpanName::FileRename,
        SpanName::FileTruncate,
        SpanName::FileExec,
        SpanName::ProcessExec,
        SpanName::AppServer,
        SpanName::AppClient,
        SpanName::AppInternal,
        SpanName::AppProducer,
        SpanName::AppConsumer,
    ];

    /// The name as written in rules.
    pub(crate) fn as_str(self) -> &'static str {
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
            SpanName::AppServer => "app.server",
            SpanName::AppClient => "app.client",
            SpanName::AppInternal => "app.internal",
            SpanName::AppProducer => "app.producer",
            SpanName::AppConsumer => "app.consumer",
        }
    }

    /// The span's family.
    pub(crate) fn family(self) -> Family {
        match self {
            SpanName::NetConnect | SpanName::NetFlow => Family::Network,
            SpanName::ProcessExec => Family::Process,
            SpanName::AppServer
            | SpanName::AppClient
            | SpanName::AppInternal
            | SpanName::AppProducer
            | SpanName::AppConsumer => Family::App,
            _ => Family::File,
        }
    }

    /// What the span stands for (documentation).
    pub(crate) fn doc(self) -> &'static str {
        match self {
            SpanName::NetConnect => "A TCP connection: the client (caller) and the server (peer).",
            SpanName::NetFlow => "A UDP flow: the first sender (caller) and the receiver (peer).",
            SpanName::FileOpen => "A file opened for reading or writing.",
            SpanName::FileCreate => "A file created.",
            SpanName::FileDelete => "A file deleted (unlinked).",
            SpanName::FileRename => "A file renamed (`file.path` is the source path).",
            SpanName::FileTruncate => "A file truncated.",
            SpanName::FileExec => "A file executed as a program.",
            SpanName::ProcessExec => {
                "A process's execution of one program, from exec to exit (evaluated once the \
                 executable is known)."
            }
            SpanName::AppServer => "An application's server span, received over OTLP.",
            SpanName::AppClient => {
                "An application's client span, received over OTLP (joined to the connection it \
                 made: `peer.*` is what the kernel saw)."
            }
            SpanName::AppInternal => "An application's internal span, received over OTLP.",
            SpanName::AppProducer => "An application's producer span, received over OTLP.",
            SpanName::AppConsumer => "An application's consumer span, received over OTLP.",
        }
    }

    /// The name for `text`, if any.
    pub(crate) fn parse(text: &str) -> Option<SpanName> {
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
pub(crate) struct SpanSet(u16);

impl SpanSet {
    /// No span.
    pub(crate) const EMPTY: SpanSet = SpanSet(0);
    /// Every span.
    pub(crate) const ALL: SpanSet = SpanSet((1 << SpanName::ALL.len()) - 1);

    /// The set holding one name.
    pub(crate) fn one(name: SpanName) -> SpanSet {
        SpanSet(name.bit())
    }

    /// Whether `name` is in the set.
    pub(crate) fn contains(self, name: SpanName) -> bool {
        self.0 & name.bit() != 0
    }

    /// Both sets.
    pub(crate) fn union(self, other: SpanSet) -> SpanSet {
        SpanSet(self.0 | other.0)
    }

    /// Names in both sets.
    pub(crate) fn intersect(self, other: SpanSet) -> SpanSet {
        SpanSet(self.0 & other.0)
    }

    /// The names in the set, in catalogue order.
    pub(crate) fn names(self) -> impl Iterator<Item = SpanName> {
        SpanName::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// The type of an attribute, checked when a rule is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
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
    pub(crate) fn is_text(self) -> bool {
        matches!(self, Type::Str | Type::Tenant | Type::Enum(_))
    }

    /// How the type is written in the documentation and errors.
    pub(crate) fn describe(self) -> String {
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

macro_rules! attributes {
    ($($variant:ident = $name:literal, $family:ident, $ty:expr, $doc:literal;)*) => {
        /// An attribute, resolved from its name when a rule is compiled.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Attr {
            $(#[doc = $doc] $variant,)*
        }

        impl Attr {
            /// Every attribute, in catalogue order.
            pub(crate) const ALL: &'static [Attr] = &[$(Attr::$variant,)*];

            /// The name as written in rules.
            pub(crate) fn name(self) -> &'static str {
                match self { $(Attr::$variant => $name,)* }
            }

            /// Which spans carry it.
            pub(crate) fn family(self) -> Family {
                match self { $(Attr::$variant => Family::$family,)* }
            }

            /// Its type.
            pub(crate) fn ty(self) -> Type {
                match self { $(Attr::$variant => $ty,)* }
            }

            /// What it means (documentation).
            pub(crate) fn doc(self) -> &'static str {
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
    ProcessExe = "process.exe", Common, Type::Str,
        "The path of the caller's executable (seen at its exec), or null when Seam did not see the exec.";
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
    PeerTier = "peer.tier", Network, Type::Enum(Tier::NAMES),
        "The data tier of the reached endpoint: the tier of the most specific entry of `peer.tenant`'s `endpoints` covering the server's address, or null (unclassified, or no tenant).";
    PeerProcessComm = "peer.process.comm", Network, Type::Str,
        "The server process's name, when the server socket is watched on this node; else null.";
    NetProtocol = "net.protocol", Network, Type::Enum(Transport::NAMES),
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
    FileTier = "file.tier", File, Type::Enum(Tier::NAMES),
        "The data tier of the path: the tier of the longest entry of `file.tenant`'s `paths` covering it, or null (unclassified, or no tenant).";
    FileOp = "file.op", File, Type::Enum(FileOp::NAMES),
        "What was done to the file.";
    FileOutcome = "file.outcome", File, Type::Enum(Outcome::NAMES),
        "Whether the kernel let the access happen.";
    FilePathConfidence = "file.path_confidence", File, Type::Enum(PathConfidence::NAMES),
        "`full` when `file.path` is the whole path, `partial` when the kernel could only give part of it.";
    ProcessPpid = "process.ppid", Process, Type::Int,
        "The parent's process id at exec, or null when unknown.";
    ProcessExitCode = "process.exit_code", Process, Type::Int,
        "The exit status (0-255), or null while running, when killed by a signal, or when the exit was not seen.";
    ProcessSignal = "process.signal", Process, Type::Int,
        "The signal that killed the process, or null.";
    DeclaredTenant = "declared.tenant", App, Type::Tenant,
        "The tenant the application declared for this operation (the span or resource attribute named by `--declared-tenant-attribute`, `tenant.id` by default), or null. `tenant` is the tenant the kernel observed for the application's process.";
    AppName = "app.name", App, Type::Str,
        "The application's span name.";
    AppKind = "app.kind", App, Type::Enum(AppSpanKind::NAMES),
        "The application span's kind.";
    AppService = "app.service", App, Type::Str,
        "The application's `service.name`, or null.";
    AppStatus = "app.status", App, Type::Enum(AppStatus::NAMES),
        "The application span's status code.";
    AppJoined = "app.joined", App, Type::Bool,
        "Whether the span was joined to a kernel connection (client spans): `peer.*` then comes from what the kernel saw at the other end.";
}

impl Attr {
    /// The attribute called `name`, if any.
    pub(crate) fn parse(name: &str) -> Option<Attr> {
        Attr::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Whether spans called `span` carry this attribute. Application spans also carry the
    /// peer attributes (the peer their client span reached).
    pub(crate) fn available_on(self, span: SpanName) -> bool {
        let family = self.family();
        family == Family::Common
            || family == span.family()
            || (span.family() == Family::App
                && matches!(
                    self,
                    Attr::PeerTenant
                        | Attr::PeerShared
                        | Attr::PeerAddr
                        | Attr::PeerPort
                        | Attr::PeerLocal
                        | Attr::PeerProcessComm
                        | Attr::PeerTier
                ))
    }

    /// The attribute naming the tenant whose resource a span of `family` touched.
    pub(crate) fn target_tenant(family: Family) -> Option<Attr> {
        match family {
            Family::Network | Family::App => Some(Attr::PeerTenant),
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
