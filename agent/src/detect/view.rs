//! Spans as rules see them: every attribute of the catalogue (`rules::catalogue`, documented in
//! docs/span-attributes.md), read straight from the span.
use crate::{
    model::{
        spans::{
            AppPeer, AppSpan, Connection, FileAccess, ProcessRef, ProcessRun, Span, SpanBody,
            TenantRef,
        },
        vocab::Tier,
    },
    policy::lang::{Attr, Attributes, SpanName, Value},
};

fn tenant(t: Option<&TenantRef>) -> Value<'_> {
    t.map_or(Value::Null, |t| Value::Str(t.name.as_str()))
}

fn tier(t: Option<Tier>) -> Value<'static> {
    t.map_or(Value::Null, |t| Value::Str(t.as_str()))
}

fn shared(t: Option<&TenantRef>) -> Value<'_> {
    Value::Bool(t.is_some_and(|t| t.shared))
}

/// The common attributes of the acting process: `Some(value)` for a common attribute (`Null`
/// when there is no actor), `None` for any other attribute.
fn actor_attr(actor: Option<&ProcessRef>, attr: Attr) -> Option<Value<'_>> {
    let Some(p) = actor else {
        return matches!(
            attr,
            Attr::Tenant
                | Attr::ProcessPid
                | Attr::ProcessComm
                | Attr::ProcessUid
                | Attr::ProcessExe
                | Attr::CgroupId
                | Attr::CgroupPath
        )
        .then_some(Value::Null);
    };
    Some(match attr {
        Attr::Tenant => tenant(p.tenant.as_ref()),
        Attr::ProcessPid => p.pid.into(),
        Attr::ProcessComm => Value::text(&p.comm),
        Attr::ProcessUid => p.uid.into(),
        Attr::ProcessExe => p.exe.as_deref().map_or(Value::Null, Value::text),
        Attr::CgroupId => Value::Int(i64::try_from(p.cgroup_id).unwrap_or(i64::MAX)),
        Attr::CgroupPath => Value::text(&p.cgroup_path),
        _ => return None,
    })
}

fn connection(c: &Connection, attr: Attr) -> Value<'_> {
    match attr {
        Attr::PeerTenant => tenant(c.server.tenant.as_ref()),
        Attr::PeerShared => shared(c.server.tenant.as_ref()),
        Attr::PeerAddr => Value::Addr(c.server.addr.ip()),
        Attr::PeerPort => Value::Int(i64::from(c.server.addr.port())),
        Attr::PeerLocal => Value::Bool(c.server.local),
        Attr::PeerProcessComm => c
            .server
            .process
            .as_ref()
            .map_or(Value::Null, |p| Value::text(&p.comm)),
        Attr::PeerTier => tier(c.server.tier),
        Attr::NetProtocol => Value::Str(c.transport.as_str()),
        Attr::CallerAddr => Value::Addr(c.client.addr.ip()),
        Attr::CallerLocal => Value::Bool(c.client.local),
        _ => Value::Null,
    }
}

fn file(f: &FileAccess, attr: Attr) -> Value<'_> {
    match attr {
        Attr::FilePath => Value::Str(&f.path),
        Attr::FileTenant => tenant(f.owner.as_ref()),
        Attr::FileShared => shared(f.owner.as_ref()),
        Attr::FileTier => tier(f.tier),
        Attr::FileOp => Value::Str(f.op.as_str()),
        Attr::FileOutcome => Value::Str(f.outcome.as_str()),
        Attr::FilePathConfidence => Value::Str(f.path_confidence.as_str()),
        _ => Value::Null,
    }
}

fn process(p: &ProcessRun, attr: Attr) -> Value<'_> {
    match attr {
        Attr::ProcessPpid => p.ppid.into(),
        Attr::ProcessExitCode => p
            .exit
            .and_then(|e| e.code)
            .map_or(Value::Null, |c| Value::Int(i64::from(c))),
        Attr::ProcessSignal => p
            .exit
            .and_then(|e| e.signal)
            .map_or(Value::Null, |s| Value::Int(i64::from(s))),
        _ => Value::Null,
    }
}

fn peer(p: &AppPeer, attr: Attr) -> Value<'_> {
    match attr {
        Attr::PeerTenant => tenant(p.tenant.as_ref()),
        Attr::PeerShared => shared(p.tenant.as_ref()),
        Attr::PeerAddr => p.addr.map_or(Value::Null, Value::Addr),
        Attr::PeerPort => p
            .port
            .map_or(Value::Null, |port| Value::Int(i64::from(port))),
        Attr::PeerLocal => Value::Bool(p.local),
        Attr::PeerProcessComm => p
            .process
            .as_ref()
            .map_or(Value::Null, |p| Value::text(&p.comm)),
        Attr::PeerTier => tier(p.tier),
        _ => Value::Null,
    }
}

fn app(a: &AppSpan, attr: Attr) -> Value<'_> {
    match attr {
        Attr::DeclaredTenant => a
            .declared_tenant
            .as_deref()
            .map_or(Value::Null, Value::text),
        Attr::AppName => Value::Str(&a.name),
        Attr::AppKind => Value::Str(a.kind.as_str()),
        Attr::AppService => a.service.as_deref().map_or(Value::Null, Value::text),
        Attr::AppStatus => Value::Str(a.status.as_str()),
        Attr::AppJoined => Value::Bool(a.peer.as_ref().is_some_and(|p| p.connection.is_some())),
        _ => match &a.peer {
            Some(p) => peer(p, attr),
            // A span without a peer: the peer booleans are false, everything else null.
            None if matches!(attr, Attr::PeerShared | Attr::PeerLocal) => Value::Bool(false),
            None => Value::Null,
        },
    }
}

impl Attributes for Span {
    fn span_name(&self) -> SpanName {
        self.name()
    }

    fn app_attr(&self, key: &str) -> Value<'_> {
        match &self.body {
            SpanBody::App(a) => a
                .attributes
                .iter()
                .find(|(k, _)| k == key)
                .map_or(Value::Null, |(_, v)| Value::Str(v)),
            _ => Value::Null,
        }
    }

    fn attr(&self, attr: Attr) -> Value<'_> {
        if let Some(v) = actor_attr(self.actor(), attr) {
            return v;
        }
        match &self.body {
            SpanBody::Connection(c) => connection(c, attr),
            SpanBody::File(f) => file(f, attr),
            SpanBody::Process(p) => process(p, attr),
            SpanBody::App(a) => app(a, attr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        fixtures::{connection, file, process, shared, tcp, tenant},
        vocab::{FileOp, Transport},
    };

    #[test]
    fn connection_attributes() {
        let span = tcp(Some(tenant("a")), Some(tenant("b")), 5432);
        assert_eq!(span.attr(Attr::Tenant), Value::Str("a"));
        assert_eq!(span.attr(Attr::PeerTenant), Value::Str("b"));
        assert_eq!(span.attr(Attr::PeerShared), Value::Bool(false));
        assert_eq!(span.attr(Attr::PeerPort), Value::Int(5432));
        assert_eq!(span.attr(Attr::PeerLocal), Value::Bool(true));
        assert_eq!(span.attr(Attr::PeerProcessComm), Value::Str("server"));
        assert_eq!(span.attr(Attr::NetProtocol), Value::Str("tcp"));
        assert_eq!(span.attr(Attr::ProcessComm), Value::Str("client"));
        assert_eq!(span.attr(Attr::ProcessPid), Value::Int(42));
        assert_eq!(span.attr(Attr::FilePath), Value::Null);
        assert_eq!(span.span_name(), SpanName::NetConnect);

        // Off-node destination: the tenant is the endpoint's owner.
        let client = || Some(process(Some(tenant("a")), "c"));
        let off = connection(
            Transport::Tcp,
            client(),
            None,
            "10.9.9.9:1",
            "192.0.2.7:443",
            Some(tenant("b")),
        );
        assert_eq!(off.attr(Attr::PeerTenant), Value::Str("b"));
        assert_eq!(off.attr(Attr::PeerLocal), Value::Bool(false));
        assert_eq!(off.attr(Attr::PeerProcessComm), Value::Null);

        // Server-only (the client is in no tenant): no caller attributes.
        let db = Some(process(Some(shared("dns")), "db"));
        let inbound = connection(
            Transport::Udp,
            None,
            db,
            "127.0.0.1:5",
            "127.0.0.1:53",
            None,
        );
        assert_eq!(inbound.attr(Attr::Tenant), Value::Null);
        assert_eq!(inbound.attr(Attr::ProcessPid), Value::Null);
        assert_eq!(inbound.attr(Attr::CallerLocal), Value::Bool(true));
        assert_eq!(inbound.attr(Attr::PeerShared), Value::Bool(true));
        assert_eq!(inbound.span_name(), SpanName::NetFlow);
    }

    #[test]
    fn file_attributes() {
        let span = file(
            Some(tenant("a")),
            "/srv/b/x",
            FileOp::Delete,
            Some(tenant("b")),
        );
        assert_eq!(span.attr(Attr::FileTenant), Value::Str("b"));
        assert_eq!(span.attr(Attr::FileOp), Value::Str("delete"));
        assert_eq!(span.attr(Attr::FileOutcome), Value::Str("ok"));
        assert_eq!(span.attr(Attr::FilePathConfidence), Value::Str("full"));
        assert_eq!(span.attr(Attr::PeerTenant), Value::Null);
        assert_eq!(span.span_name(), SpanName::FileDelete);
    }

    #[test]
    fn spans_round_trip_through_json() {
        let span = tcp(Some(tenant("a")), Some(tenant("b")), 5432);
        let json = serde_json::to_string(&span).unwrap();
        assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), span);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["start"], "1970-01-01T00:00:00.000000001Z");
        assert_eq!(value["body"]["connection"]["server"]["tenant"]["name"], "b");
    }
}
