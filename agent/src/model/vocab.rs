//! The closed vocabularies Seam's records use, one enum each: how each value is written in
//! rules, the feed and OTLP (`as_str`, lowercase), and the list of every value (`ALL`), from
//! which the rule catalogue takes its enum types. A leaf module: it depends on nothing else in
//! the crate, so every stage (events, spans, rules, config, sinks) can share it. Parts that
//! own a vocabulary of their own (the metrics' label values) define it with the same macro.

/// Defines a closed vocabulary: the enum, `ALL`, `NAMES`, `as_str` and `Display`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code, reason = "generated for every vocabulary; not all need it")]
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Every value as written (the rule catalogue's enum type).
            #[allow(dead_code, reason = "generated for every vocabulary; not all need it")]
            pub(crate) const NAMES: &'static [&'static str] = &[$($text,)*];

            /// The value as written in rules, the feed and OTLP.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// Transport protocol of a connection or flow.
    Transport {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
}

vocabulary! {
    /// What a file span did to its path.
    FileOp {
        /// Opened for reading.
        Read = "read",
        /// Opened for writing.
        Write = "write",
        /// Created.
        Create = "create",
        /// Unlinked.
        Delete = "delete",
        /// Renamed (from or to).
        Rename = "rename",
        /// Truncated.
        Truncate = "truncate",
        /// Executed as a program.
        Exec = "exec",
    }
}

vocabulary! {
    /// Alert severity of a rule, ordered from `Info` (lowest) to `Critical`.
    Severity {
        /// Informational.
        Info = "info",
        /// Low.
        Low = "low",
        /// Medium.
        Medium = "medium",
        /// High.
        High = "high",
        /// Critical.
        Critical = "critical",
    }
}

vocabulary! {
    /// Whether a file access happened.
    Outcome {
        /// The syscall succeeded: an access.
        Ok = "ok",
        /// EACCES or EPERM: an attempt the kernel refused.
        Denied = "denied",
        /// Any other failure (ENOENT, EEXIST, ...): an attempt.
        Error = "error",
    }
}

vocabulary! {
    /// How much of a path the kernel vouched for.
    PathConfidence {
        /// Resolved in the kernel from the object itself (or a plain name in a resolved
        /// directory).
        Full = "full",
        /// Composed from a kernel-resolved directory and the caller's string (`..` resolved
        /// lexically), or truncated, or under a mount that could not be placed.
        Partial = "partial",
    }
}

vocabulary! {
    /// How a span ended.
    EndReason {
        /// TCP: both sides closed with FIN (an orderly close).
        Closed = "closed",
        /// TCP: the connection was reset or aborted before an orderly close.
        Reset = "reset",
        /// TCP: the handshake never completed (refused, unreachable, timed out).
        Failed = "failed",
        /// Process: the process exited.
        Exited = "exited",
        /// Process: the process exec'd another program (a new span starts).
        Replaced = "replaced",
        /// A point in time (file access, UDP flow): nothing to wait for.
        Instant = "instant",
        /// Too many spans were open: the oldest was ended early (counted, see `--max-open-spans`).
        Evicted = "evicted",
        /// The agent stopped while the span was open.
        AgentStopped = "agent_stopped",
        /// The kernel never reported the end (a lost event, or a socket Seam stopped watching);
        /// ended after the idle timeout.
        Unobserved = "unobserved",
    }
}

vocabulary! {
    /// What became of a probe at start-up.
    ProbeState {
        /// Loaded and attached.
        Live = "live",
        /// Not in use: a better tier serves its capability, or its own tier was incomplete
        /// (`seam fingerprint` loads and attaches these too: see `loaded`/`attached`).
        Standby = "standby",
        /// Not loaded because an option said so.
        Disabled = "disabled",
        /// Tried and failed (the error says why).
        Failed = "failed",
    }
}

vocabulary! {
    /// OpenTelemetry span kind of an application span.
    AppSpanKind {
        /// Internal work.
        Internal = "internal",
        /// The server side of a request.
        Server = "server",
        /// The client side of a request (a call the application made).
        Client = "client",
        /// A message sent to a broker.
        Producer = "producer",
        /// A message received from a broker.
        Consumer = "consumer",
    }
}

vocabulary! {
    /// Which path of a rename a file span is about.
    PathRole {
        /// The path renamed away from.
        From = "from",
        /// The path renamed to.
        To = "to",
    }
}

vocabulary! {
    /// Status code of an application span (OpenTelemetry).
    AppStatus {
        /// Not set.
        Unset = "unset",
        /// Explicitly ok.
        Ok = "ok",
        /// An error.
        Error = "error",
    }
}

vocabulary! {
    /// How sensitive a tenant's resource is: the tier of an entry of a tenant's `paths` or
    /// `endpoints` (an entry without one is unclassified).
    Tier {
        /// Meant to be seen: published content, public endpoints.
        Public = "public",
        /// The tenant's working data: services, caches, configuration.
        Operational = "operational",
        /// Data under regulation or contract (personal, payment, health data).
        Regulated = "regulated",
    }
}

vocabulary! {
    /// What a run record of the sealed history marks in an agent's life.
    RunPhase {
        /// The agent started writing history (probes live, rules loaded).
        Start = "start",
        /// The agent was alive (written every minute, so a crash is bounded in time).
        Alive = "alive",
        /// The rules were reloaded (the record carries the new rules' hash).
        RulesReloaded = "rules_reloaded",
        /// The agent stopped and closed its history.
        Stop = "stop",
    }
}

vocabulary! {
    /// Where evidence was lost (a loss record's `source`).
    LossSource {
        /// The kernel could not reserve ring-buffer space: events never reached the agent.
        RingBuffer = "ring_buffer",
        /// A tenant went over its kernel event budget (`probe` names the tenant): its own
        /// events were dropped so that no other tenant's were.
        TenantFlood = "tenant_flood",
        /// Ring-buffer records the agent could not decode.
        Decode = "decode",
        /// Open spans ended early because too many were open (`--max-open-spans`).
        SpanEvicted = "span_evicted",
        /// Feed records a sink dropped (full queue, failed delivery, write error).
        Feed = "feed",
        /// Spans or log records the OTLP exporter dropped.
        Otlp = "otlp",
        /// Records the sealed store could not write.
        Store = "store",
        /// Container cgroups left unattributed because the runtime did not name their pod.
        PodIdentity = "pod_identity",
    }
}

vocabulary! {
    /// A probe family: the kernel keeps one ring-buffer loss counter for each (a ring-buffer
    /// loss record's `probe`). Declared in name order, so maps keyed by it list them so.
    ProbeFamily {
        /// File syscalls.
        File = "file",
        /// UDP flows (the first packet to or from a peer).
        Flow = "flow",
        /// exec and exit.
        Process = "process",
        /// connect() and sendmsg() intents.
        SockAddr = "sock_addr",
        /// TCP state changes and closes.
        TcpState = "tcp_state",
    }
}

vocabulary! {
    /// An OTLP signal Seam sends (an `otlp` loss record's `probe`).
    Signal {
        /// Spans.
        Traces = "traces",
        /// Log records (violations, losses).
        Logs = "logs",
    }
}

vocabulary! {
    /// Why a feed sink dropped a record (the `reason` label of `seam_feed_dropped_total`).
    DropReason {
        /// The sink's queue was full (the endpoint is slower than the feed).
        QueueFull = "queue_full",
        /// Every delivery attempt failed.
        RetriesExhausted = "retries_exhausted",
        /// Still queued or retrying when the agent stopped and the grace period ran out.
        Shutdown = "shutdown",
        /// Writing to stdout or the feed file failed.
        WriteError = "write_error",
        /// The webhook refused the record (a 4xx other than 408 and 429): not retried.
        Rejected = "rejected",
    }
}

vocabulary! {
    /// Why the sealed history lost records (a `store` loss record's `probe`).
    StoreLoss {
        /// The store's queue was full.
        QueueFull = "queue_full",
        /// The disk was full.
        DiskFull = "disk_full",
        /// A write failed.
        WriteError = "write_error",
        /// No key to seal them with.
        NoKey = "no_key",
        /// A record too large for a frame.
        TooLarge = "too_large",
    }
}

vocabulary! {
    /// Where pod identity comes from (a `pod_identity` loss record's `probe`).
    PodSource {
        /// The Container Runtime Interface (containerd, CRI-O).
        Cri = "cri",
        /// Docker's Engine API.
        Docker = "docker",
        /// Only the Kubernetes API (no runtime socket).
        #[serde(rename = "kubernetes-api")]
        KubernetesApi = "kubernetes-api",
        /// No source at all.
        None = "none",
    }
}

vocabulary! {
    /// A kernel event's kind (the `kind` label of `seam_events_total`). Declared in name
    /// order, so maps keyed by it list them so.
    EventKind {
        /// connect() (TCP, or connected UDP).
        Connect = "connect",
        /// A tenant process exec'd.
        Exec = "exec",
        /// A tenant process exited.
        Exit = "exit",
        /// A file syscall.
        File = "file",
        /// The first packet of a UDP flow.
        FlowStart = "flow_start",
        /// sendmsg() to an unconnected UDP destination.
        Sendmsg = "sendmsg",
        /// A TCP socket closed.
        TcpClose = "tcp_close",
        /// A TCP socket changed state.
        TcpState = "tcp_state",
    }
}

vocabulary! {
    /// How a file open is classed for silencing repeats (the `op` label of
    /// `seam_file_opens_counted_total`).
    AccessClass {
        /// Opened for reading.
        Read = "read",
        /// Opened for writing.
        Write = "write",
        /// Created.
        Create = "create",
    }
}

vocabulary! {
    /// How an application span was joined (the `outcome` of `seam_app_spans_total`).
    JoinOutcome {
        /// A client span matched to the kernel connection it made.
        Joined = "joined",
        /// The sending process is known (server and internal spans need nothing more).
        Process = "process",
        /// A client span with no kernel connection (its peer from `endpoints`), or a span
        /// whose process is unknown.
        Unmatched = "unmatched",
    }
}

vocabulary! {
    /// The body a webhook receives (`--webhook-format`).
    WebhookFormat {
        /// Seam's own feed records (docs/feeds.md).
        Seam = "seam",
        /// Falco's output payload, as falcosidekick's `POST /` takes it.
        Falcosidekick = "falcosidekick",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_serde_agree() {
        for op in FileOp::ALL {
            let json = serde_json::to_string(op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.as_str()));
        }
        assert_eq!(FileOp::NAMES.len(), FileOp::ALL.len());
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        for source in PodSource::ALL {
            let json = serde_json::to_string(source).unwrap();
            assert_eq!(json, format!("\"{}\"", source.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&EndReason::AgentStopped).unwrap(),
            "\"agent_stopped\""
        );
    }

    #[test]
    fn vocabularies_used_as_map_keys_are_declared_in_name_order() {
        // Their maps (the stats file) list keys as they did when keyed by the names.
        assert!(ProbeFamily::NAMES.is_sorted());
        assert!(EventKind::NAMES.is_sorted());
    }
}
