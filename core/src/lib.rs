//! The heart of whmtoken: domain types, the backend traits and the conversion pipeline.
//!
//! This crate performs no I/O of its own. Backends (`whmtoken-backend-files`,
//! `whmtoken-backend-sqlite`, or one of your own) implement the traits in [`backend`];
//! the command line drives [`pipeline::plan`] and [`pipeline::apply`] over them.

pub mod acl;
pub mod audit;
pub mod backend;
pub mod clock;
pub mod import;
mod parallel;
pub mod pipeline;
pub mod restrictions;
pub mod secret;
pub mod token;
pub mod user;

#[cfg(test)]
mod properties;

pub use acl::Privileges;
pub use audit::AuditEvent;
pub use backend::{
    AccessHashSource, Backend, BackendError, ImportItem, Imported, TokenDatabase, UserDirectory,
    WhmRole,
};
pub use clock::{Clock, FixedClock};
pub use import::{Decision, ImportError, ImportRequest};
pub use pipeline::{Plan, Report, RunOptions, Status, UserError, UserResult};
pub use restrictions::Restrictions;
pub use secret::{AccessHash, TokenHash};
pub use token::{TokenEntry, TokenName, TokenSet};
pub use user::UserName;
