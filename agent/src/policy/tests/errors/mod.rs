//! Every error kind, with its location and message.

mod allows;
mod reporting;
mod syntax;
mod tenants;
