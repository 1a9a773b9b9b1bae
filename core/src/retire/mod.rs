//! Retiring access hashes, reversibly, the way conversion is built: core decides
//! ([`decide()`]: a pure function over what a backend read, one [`Status`] enum, the
//! messages), core runs ([`retire`], [`restore`] and [`prune`]: the loops on the thread pool, the
//! journal begun before the first change, the setting switched last), and a backend only
//! offers primitives ([`Retirement`]: journal, backups, read, remove-if-unchanged, put back,
//! setting, audit log).
//!
//! # Contract
//! - A run's journal header is durable before any change of the run.
//! - An access hash is removed only once its backup and its journal entry are durable, and
//!   only when it is still what was backed up ([`Retirement::remove_if_unchanged`]), so that
//!   a crash at any point leaves it in its home, in the backup, or both, and the journal
//!   telling which.
//! - A restore never overwrites anything the run did not write, except with `force`, and
//!   then only after keeping what it replaces in the run's backup.
//! - Messages name no command-line option: a front end adds how to force a refusal
//!   ([`Refusal::forcing`]).
//! - A run that writes (not a dry run) holds the server's run lock
//!   ([`Retirement::lock_runs`]) from before its first read to its end, so that two runs
//!   never journal the same account and a restore never undoes a run still under way.
//! - Nothing here, nor in any error, shows a secret; a journal holds SHA-512 digests only.

pub mod decide;
mod prune;
pub mod records;
mod restore;
mod run;

pub use crate::backend::{Retirement, RunLock};
pub use decide::{NOT_CONVERTED, Problem, Refusal, Standing, Status, decide};
pub use prune::{PruneRequest, Pruning, prune};
pub use records::{
    ALLOW_DEPRECATED_ACCESSHASH, CONVERTED_NAME_PREFIX, Change, Held, InvalidRunId, Journal,
    Record, Removal, RestoreState, RetiredFile, RunId, Setting, SettingChange, Zeroizing,
    accounting_line, confirm_finished, content_sha512,
};
pub use restore::{ChangeKind, RestoreReport, restore};
pub use run::{
    Auth, AuthProblem, NOT_ATTEMPTED_REFUSED, Outcome, RetireReport, RetireRequest, retire,
};
