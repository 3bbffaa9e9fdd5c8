//! `[[allow]]` and `[[rule.allow]]` tables: each names what it narrows to (a rule, tenants,
//! ports, protocols, processes or paths) and why.

use toml::Spanned;

use super::{Builder, quoted_list};
use crate::{
    model::spans::TenantName,
    policy::{
        model::{Allow, PortRange, TenantMatch, ValueError},
        raw::{RawAllow, RawPort},
    },
};

/// The kernel's `comm` is at most this many characters (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

impl Builder<'_> {
    /// An `[[allow]]` table, or a `[[rule.allow]]` of rule `implied`.
    pub(super) fn allow(
        &mut self,
        file: usize,
        raw: &RawAllow,
        implied: Option<&Spanned<String>>,
        complete: bool,
    ) {
        let mut ok = self.allow_rule(file, raw, implied, complete);
        let rule = implied.or(raw.rule.as_ref());
        let from = self.tenant_match(file, raw.from.as_ref(), "from", complete);
        let to = self.tenant_match(file, raw.to.as_ref(), "to", complete);
        let ports = self.allow_ports(file, raw);
        ok &= self.allow_processes_and_paths(file, raw);
        let reason = raw.reason.get_ref().trim();
        if reason.is_empty() {
            let hint = "say why this access is fine and who approved it (e.g. a ticket)";
            let at = Self::at(file, &raw.reason);
            self.invalid(&at, "allow.reason is empty".to_owned(), hint);
            ok = false;
        }
        ok &= self.allow_narrows(file, raw, rule.is_some());
        if let (true, Some(from), Some(to), Some(ports)) = (ok, from, to, ports) {
            self.allows.push(Allow {
                rule: rule.map(|r| r.get_ref().clone()),
                from,
                to,
                ports,
                protocols: raw.protocols.clone(),
                processes: raw.processes.iter().map(|p| p.get_ref().clone()).collect(),
                paths: raw.paths.iter().map(|p| p.get_ref().clone()).collect(),
                reason: reason.to_owned(),
            });
        }
    }

    /// `allow.rule`: not inside a `[[rule.allow]]` (`implied`), and (once every rule is known)
    /// the id of a defined rule. False when reported.
    fn allow_rule(
        &mut self,
        file: usize,
        raw: &RawAllow,
        implied: Option<&Spanned<String>>,
        complete: bool,
    ) -> bool {
        if let (Some(rule), Some(_)) = (&raw.rule, implied) {
            let msg = "`rule` in a [[rule.allow]] table".to_owned();
            let hint = "a [[rule.allow]] applies to its enclosing [[rule]]; remove `rule`";
            self.invalid(&Self::at(file, rule), msg, hint);
            return false;
        }
        if let Some(rule) = &raw.rule
            && complete
            && !self.rule_at.contains_key(rule.get_ref())
        {
            let hint = format!(
                "expected a [[rule]] id, or no `rule` key to cover every rule; {}",
                quoted_list(self.rules.iter().map(|r| r.id.as_str()))
            );
            let msg = format!("unknown rule {:?} in allow.rule", rule.get_ref());
            self.invalid(&Self::at(file, rule), msg, hint);
            return false;
        }
        true
    }

    /// `allow.ports`: every entry a port or a range; `None` when one is not (reported).
    fn allow_ports(&mut self, file: usize, raw: &RawAllow) -> Option<Vec<PortRange>> {
        let mut ports = Some(Vec::with_capacity(raw.ports.len()));
        for port in &raw.ports {
            match parse_allow_port(port.get_ref()) {
                Ok(range) => {
                    if let Some(ports) = &mut ports {
                        ports.push(range);
                    }
                }
                Err(e) => {
                    let msg = format!("invalid port in allow.ports: {e}");
                    self.invalid(&Self::at(file, port), msg, e.hint());
                    ports = None;
                }
            }
        }
        ports
    }

    /// `allow.processes` (kernel `comm` names) and `allow.paths` (absolute prefixes). False
    /// when one is reported.
    fn allow_processes_and_paths(&mut self, file: usize, raw: &RawAllow) -> bool {
        let mut ok = true;
        for comm in &raw.processes {
            let n = comm.get_ref().chars().count();
            if n == 0 || n > COMM_MAX {
                let msg = format!(
                    "invalid process name {:?} in allow.processes",
                    comm.get_ref()
                );
                let hint = format!(
                    "expected a process name (comm) of 1 to {COMM_MAX} characters; the kernel \
                     truncates longer names, so write their first {COMM_MAX} characters"
                );
                self.invalid(&Self::at(file, comm), msg, hint);
                ok = false;
            }
        }
        for path in &raw.paths {
            if !path.get_ref().starts_with('/') {
                let msg = format!("invalid path {:?} in allow.paths", path.get_ref());
                let hint = "expected an absolute path prefix, e.g. \"/srv/shared\"";
                self.invalid(&Self::at(file, path), msg, hint);
                ok = false;
            }
        }
        ok
    }

    /// An allow must narrow what it covers (`names_rule`: it names a rule, or is a
    /// `[[rule.allow]]`); one covering every access is reported (false).
    fn allow_narrows(&mut self, file: usize, raw: &RawAllow, names_rule: bool) -> bool {
        let narrows = names_rule
            || raw.from.as_ref().is_some_and(|f| f.get_ref() != "*")
            || raw.to.as_ref().is_some_and(|t| t.get_ref() != "*")
            || !(raw.ports.is_empty()
                && raw.protocols.is_empty()
                && raw.processes.is_empty()
                && raw.paths.is_empty());
        if !narrows {
            let hint = "name a rule, tenants, ports, protocols, processes or paths";
            let at = Self::at(file, &raw.reason);
            self.invalid(&at, "this allow covers every access".to_owned(), hint);
        }
        narrows
    }

    fn tenant_match(
        &mut self,
        file: usize,
        name: Option<&Spanned<String>>,
        key: &str,
        complete: bool,
    ) -> Option<TenantMatch> {
        let Some(name) = name else {
            return Some(TenantMatch::Any);
        };
        if name.get_ref() == "*" {
            return Some(TenantMatch::Any);
        }
        if self.tenant_at.contains_key(name.get_ref()) {
            return Some(TenantMatch::Tenant(TenantName::new(name.get_ref())));
        }
        if complete {
            let msg = format!("unknown tenant {:?} in allow.{key}", name.get_ref());
            let hint = format!(
                "expected a [[tenant]] name or \"*\"; {}",
                quoted_list(self.tenants.iter().map(|t| t.name.as_str()))
            );
            self.invalid(&Self::at(file, name), msg, hint);
        }
        None
    }
}

fn parse_allow_port(raw: &RawPort) -> Result<PortRange, ValueError> {
    match raw {
        RawPort::Number(n) => match u16::try_from(*n) {
            Ok(p) if p != 0 => Ok(PortRange::single(p)),
            _ => Err(ValueError::Port(n.to_string())),
        },
        RawPort::Text(s) => s.parse(),
    }
}
