//! The violation record: one JSON object per line in the feed.
use rand::RngCore;
use serde::Serialize;

use crate::{
    attribution::CallerRecord,
    config::{Rule, RuleSet, Severity, TenantId},
    correlation::ConnectionSpan,
    events::Transport,
};

/// Whose resource was touched, and which.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TargetRecord {
    pub tenant: String,
    pub addr: String,
    pub port: u16,
    pub protocol: Transport,
    /// The process behind the target socket, when it is on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<CallerRecord>,
}

/// A broken isolation rule.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub signal_id: String,
    pub rule_id: String,
    pub severity: Severity,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub node: String,
    pub kind: &'static str,
    /// The caller's tenant: the one the access should have stayed within.
    pub intended_tenant: String,
    /// The tenant whose resource was touched.
    pub actual_tenant: String,
    pub caller: CallerRecord,
    pub target: TargetRecord,
    pub trace_id: String,
    pub span_id: String,
    pub message: String,
}

fn signal_id() -> String {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Violation {
    /// A cross-tenant connection from `span.client` to tenant `to`.
    pub fn network(
        node: &str,
        rule: &Rule,
        span: &ConnectionSpan,
        rules: &RuleSet,
        to: TenantId,
        wall_time: &str,
    ) -> Self {
        let client = span
            .client
            .as_ref()
            .map(|c| c.caller.record(rules))
            .unwrap_or_else(unreachable_caller);
        let intended = client.tenant.clone().unwrap_or_default();
        let actual = rules.tenant(to).name.clone();
        let target = TargetRecord {
            tenant: actual.clone(),
            addr: span.server_endpoint.ip.to_string(),
            port: span.server_endpoint.port,
            protocol: span.protocol,
            process: span.server.as_ref().map(|s| s.caller.record(rules)),
        };
        let message = format!(
            "{intended} process {comm} (pid {pid}) opened a {proto} connection to {actual}'s \
             {endpoint}",
            comm = client.comm,
            pid = client.pid,
            proto = span.protocol,
            endpoint = span.server_endpoint,
        );
        Self {
            signal_id: signal_id(),
            rule_id: rule.id.clone(),
            severity: rule.severity,
            time: wall_time.to_owned(),
            node: node.to_owned(),
            kind: "network",
            intended_tenant: intended,
            actual_tenant: actual,
            caller: client,
            target,
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            message,
        }
    }
}

/// Only reachable if a caller-less span were evaluated, which `NetworkDetector` never does.
fn unreachable_caller() -> CallerRecord {
    CallerRecord {
        tenant: None,
        pid: 0,
        comm: String::new(),
        uid: 0,
        cgroup_id: 0,
        cgroup_path: String::new(),
    }
}
