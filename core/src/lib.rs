//! The heart of whmtoken: domain types, the backend seam and the conversion pipeline.
//!
//! This crate performs no I/O of its own. Backends (`whmtoken-backend-files`,
//! `whmtoken-backend-sqlite`, or one of your own) implement [`Backend`]; the command line
//! drives [`pipeline::plan`] and [`pipeline::apply`] over one, and [`harness`] is how
//! tests and fake servers build, open and dump servers of any backend.

pub mod acl;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod clock;
pub mod cluster;
pub mod config_file;
mod error;
mod error_chain;
pub mod findings;
pub mod findings_usage;
pub mod harness;
pub mod import;
pub mod logs;
pub mod parallel;
pub mod pipeline;
pub mod restrictions;
pub mod retire;
pub mod secret;
pub mod token;
pub mod usage;
pub mod user;

#[cfg(test)]
mod properties;

pub use acl::Privileges;
pub use audit::{AuditAction, AuditEvent, AuditTurn};
pub use backend::{
    Account, Backend, BackendError, BatchImport, ChunkImport, ClusterFile, ImportItem, LogFile,
    Logs, Reads, ServerSettings, WhmRole,
};
pub use clock::{Clock, FixedClock};
pub use error_chain::error_chain;
pub use harness::{BackendConfig, Harness, Seed, SeedUser};
pub use import::{Decision, ImportError, ImportRequest};
pub use pipeline::{Plan, Report, RunOptions, Status, UserError, UserResult};
pub use restrictions::{RestrictionError, Restrictions};
pub use retire::{Retirement, RunId};
pub use secret::{AccessHash, TokenHash};
pub use token::{DocumentError, EntryError, EntryTextError, TokenEntry, TokenSet};
pub use user::UserName;
