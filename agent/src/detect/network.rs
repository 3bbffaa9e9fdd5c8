//! [`Evidence`] for connection spans.
use super::{Evidence, Target, TargetRecord, caller_record, violation::tenant_name};
use crate::{
    correlation::ConnectionSpan,
    rules::{EvalContext, SpanView},
};

impl Evidence for ConnectionSpan {
    fn target(&self, ctx: &EvalContext<'_>) -> Target {
        Target::Network(TargetRecord {
            tenant: tenant_name(ctx.tenant(self.peer_tenant(ctx))),
            addr: self.server_endpoint.ip.to_string(),
            port: self.server_endpoint.port,
            protocol: self.protocol,
            process: self.peer().map(|s| caller_record(Some(s), ctx)),
        })
    }

    fn describe(&self, ctx: &EvalContext<'_>) -> String {
        let to = tenant_name(ctx.tenant(self.peer_tenant(ctx)))
            .map_or_else(|| "no tenant's".to_owned(), |t| format!("{t}'s"));
        let endpoint = self.server_endpoint;
        let proto = self.protocol;
        match self.caller() {
            Some(c) => {
                let from = tenant_name(ctx.tenant(c.tenant))
                    .unwrap_or_else(|| "a process outside any tenant:".to_owned());
                format!(
                    "{from} process {comm} (pid {pid}) opened a {proto} connection to {to} \
                     {endpoint}",
                    comm = c.comm,
                    pid = c.pid,
                )
            }
            None => format!(
                "a process outside any tenant at {client} opened a {proto} connection to {to} \
                 {endpoint}",
                client = self.client_endpoint,
            ),
        }
    }
}
