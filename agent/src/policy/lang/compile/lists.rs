//! `in [...]` lists: strings for `attr(...)`, networks for address attributes, values of the
//! attribute's type otherwise.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    super::{
        ast::{Lit, Operand, Span},
        error::ExprError,
    },
    Compiler, Const, Node, Set, Term,
    check::{Ty, plain},
};
use crate::model::catalogue::{Attr, SpanSet, Type};

impl Compiler<'_> {
    pub(super) fn in_list(
        &mut self,
        a: &Operand,
        list: &[(Lit, Span)],
        list_span: &Span,
        scope: Option<SpanSet>,
    ) -> Option<Node> {
        let t = self.operand(a, scope)?;
        if t == Ty::AppAttr {
            let values = self.app_attr_values(list);
            return Some(Node::In(self.term(a, t), Set::Values(values.into())));
        }
        let Ty::Attr(attr) = t else {
            self.type_error(a.span().start..list_span.end, "in", t, Ty::Str);
            return None;
        };
        let errors_before = self.errors.len();
        let set = if attr.ty() == Type::Addr {
            self.networks(attr, list)
        } else {
            Set::Values(self.attr_values(attr, list).into())
        };
        (self.errors.len() == errors_before).then_some(Node::In(Term::Attr(attr), set))
    }

    /// The values of `attr("...") in [...]`: strings (or `null`); others are reported.
    fn app_attr_values(&mut self, list: &[(Lit, Span)]) -> Vec<Const> {
        let mut values = Vec::with_capacity(list.len());
        for (lit, span) in list {
            match lit {
                Lit::Str(_) | Lit::Null => values.push(plain(lit)),
                _ => self.errors.push(ExprError::BadValue {
                    span: span.clone(),
                    attr: "attr(...)",
                    literal: lit.to_string(),
                    why: "expected a string".to_owned(),
                }),
            }
        }
        values
    }

    /// The networks of an address attribute's list (a single IP is a /32 or /128).
    fn networks(&mut self, attr: Attr, list: &[(Lit, Span)]) -> Set {
        let mut nets = Vec::with_capacity(list.len());
        let mut null_too = false;
        for (lit, span) in list {
            match lit {
                Lit::Null => null_too = true,
                Lit::Str(s) => match parse_net(s) {
                    Some(net) => nets.push(net),
                    None => self.errors.push(ExprError::BadValue {
                        span: span.clone(),
                        attr: attr.name(),
                        literal: lit.to_string(),
                        why: "not an IP address or CIDR network".to_owned(),
                    }),
                },
                _ => self.literal_type_error(attr, lit, span),
            }
        }
        Set::Nets {
            nets: nets.into(),
            null_too,
        }
    }

    /// The values of another attribute's list, each converted to the attribute's type.
    fn attr_values(&mut self, attr: Attr, list: &[(Lit, Span)]) -> Vec<Const> {
        let mut values = Vec::with_capacity(list.len());
        for (lit, span) in list {
            let lit_ty = match lit {
                Lit::Null => Ty::Null,
                Lit::Bool(_) => Ty::Bool,
                Lit::Int(_) => Ty::Int,
                Lit::Str(_) => Ty::Str,
            };
            let ok = match (attr.ty(), lit_ty) {
                (_, Ty::Null) => true,
                (Type::Int, Ty::Int) | (Type::Bool, Ty::Bool) => true,
                (ty, Ty::Str) => ty.is_text(),
                _ => false,
            };
            if !ok {
                self.literal_type_error(attr, lit, span);
                continue;
            }
            if let Some(Term::Const(c)) = self.convert(lit, span, attr) {
                values.push(c);
            }
        }
        values
    }

    fn literal_type_error(&mut self, attr: Attr, lit: &Lit, span: &Span) {
        self.errors.push(ExprError::BadValue {
            span: span.clone(),
            attr: attr.name(),
            literal: lit.to_string(),
            why: format!("expected {}", attr.ty().describe()),
        });
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let net = if s.contains('/') {
        s.parse::<IpNet>().ok()?
    } else {
        IpNet::from(s.parse::<IpAddr>().ok()?.to_canonical())
    };
    Some(net.trunc())
}
