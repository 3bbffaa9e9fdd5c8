//! A span stand-in: a name and attribute values.
use std::{collections::HashMap, net::IpAddr};

use crate::policy::lang::{Attr, Attributes, CompileEnv, SpanName, Value, compile};

/// An owned attribute value.
#[derive(Clone, Debug)]
pub(super) enum Owned {
    Bool(bool),
    Int(i64),
    Str(String),
    Addr(IpAddr),
}

/// A span with the given attributes (everything else null).
#[derive(Clone, Debug)]
pub(super) struct Fake {
    pub name: SpanName,
    pub attrs: HashMap<Attr, Owned>,
    /// Application attributes (`attr("...")`).
    pub app: HashMap<String, String>,
}

impl Fake {
    pub(super) fn new(name: SpanName) -> Self {
        Self {
            name,
            attrs: HashMap::new(),
            app: HashMap::new(),
        }
    }

    pub(super) fn with(mut self, attr: Attr, value: Owned) -> Self {
        self.attrs.insert(attr, value);
        self
    }

    pub(super) fn str(self, attr: Attr, value: &str) -> Self {
        self.with(attr, Owned::Str(value.to_owned()))
    }

    pub(super) fn app_attr(mut self, key: &str, value: &str) -> Self {
        self.app.insert(key.to_owned(), value.to_owned());
        self
    }
}

impl Attributes for Fake {
    fn span_name(&self) -> SpanName {
        self.name
    }

    fn attr(&self, attr: Attr) -> Value<'_> {
        match self.attrs.get(&attr) {
            None => Value::Null,
            Some(Owned::Bool(b)) => Value::Bool(*b),
            Some(Owned::Int(i)) => Value::Int(*i),
            Some(Owned::Str(s)) => Value::Str(s),
            Some(Owned::Addr(ip)) => Value::Addr(*ip),
        }
    }

    fn app_attr(&self, key: &str) -> Value<'_> {
        self.app.get(key).map_or(Value::Null, |v| Value::Str(v))
    }
}

/// A TCP connection from a process of tenant `from` (pid 42, comm "client", cgroup "t/x") to
/// a server of tenant `to` on 127.0.0.1:`port`.
pub(super) fn tcp(from: Option<&str>, to: Option<&str>, to_shared: bool, port: u16) -> Fake {
    let mut span = Fake::new(SpanName::NetConnect)
        .with(Attr::ProcessPid, Owned::Int(42))
        .str(Attr::ProcessComm, "client")
        .str(Attr::CgroupPath, "t/x")
        .with(Attr::PeerPort, Owned::Int(i64::from(port)))
        .with(Attr::PeerAddr, Owned::Addr("127.0.0.1".parse().unwrap()))
        .with(Attr::PeerShared, Owned::Bool(to.is_some() && to_shared))
        .with(Attr::PeerLocal, Owned::Bool(true))
        .str(Attr::NetProtocol, "tcp");
    if let Some(from) = from {
        span = span.str(Attr::Tenant, from);
    }
    if let Some(to) = to {
        span = span.str(Attr::PeerTenant, to);
    }
    span
}

/// Whether `expr` (compiled with tenants a, b, dns) matches `span`.
pub(super) fn matches(expr: &str, span: &Fake) -> bool {
    let names = ["a", "b", "dns"];
    compile(
        expr,
        &CompileEnv {
            tenants: Some(&names),
        },
    )
    .unwrap_or_else(|e| panic!("{expr}: {e:?}"))
    .matches(span)
}
