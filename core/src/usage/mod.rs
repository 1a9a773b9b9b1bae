//! `whmtoken usage`: who still uses each credential, from where and when, read from
//! cPanel's own logs, which keep no "last used" time of their own.
//!
//! - [`access_log`]: one line per request (cpsrvd's `access_log`), read from both ends so
//!   that a client cannot forge the fields after its user agent;
//! - [`tokens_log`]: one line per request an API token authenticated (`api_tokens_log`);
//! - [`names`]: which files of the logs folder are those logs and their rotations, which
//!   can hold lines of the window, and their order;
//! - the join (`join`): a request with the WHM header is a token's when `api_tokens_log`
//!   has its twin within [`JOIN_SECONDS`], else the access hash's;
//! - [`mod@report`]: the answer, per account and credential, with the files read and how far
//!   back they reach.
//!
//! The backend lists and opens the files ([`crate::Logs`]); everything else is here,
//! streamed in bounded memory: gzip decoded as read, lines over [`MAX_LINE`] skipped, at
//! most about a minute of token lines held for the join, and a bounded number of clients
//! per credential. No secret, path or query string is kept.

pub mod access_log;
mod bytes;
mod chunks;
mod join;
mod lines;
pub mod names;
mod read;
pub mod report;
mod tally;
pub(crate) mod time;
pub mod tokens_log;

use crate::backend::{Backend, Reads};
use crate::error::BackendError;
use crate::logs::Logs;
use crate::user::UserName;

pub use join::JOIN_SECONDS;
pub use lines::MAX_LINE;
pub use names::{LogKind, LogName, Rotation};
pub use report::{
    AccountUsage, CLIENTS_SHOWN, Client, Coverage, Covered, CredentialUsage, LogRead, TokenUsage,
    UsageReport, Use, Window,
};
pub use time::utc_text;

/// The window when none is given: 90 days.
pub const DEFAULT_WINDOW_SECONDS: i64 = 90 * 86_400;

/// Why a `--since` value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    #[error(
        "“{0}”: expected epoch seconds, or a span back from now: a whole number and a unit, m (minutes), h (hours), d (days) or w (weeks), such as 90d"
    )]
    Bad(String),
    #[error("“{0}”: the span is zero")]
    Zero(String),
    #[error("“{given}”: {at} is in the future")]
    Future { given: String, at: i64 },
}

/// The window from `given` (a span back from `now`, `90d`, `12w`, or epoch seconds) to
/// `now`.
pub fn window_since(given: &str, now: i64) -> Result<Window, SinceError> {
    let text = given.trim();
    let bad = || SinceError::Bad(given.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (count, unit) = text.split_at(split);
    if count.is_empty() {
        return Err(bad());
    }
    let count: i64 = count.parse().map_err(|_| bad())?;
    let from = match unit {
        "" if count > now => {
            return Err(SinceError::Future {
                given: given.to_owned(),
                at: count,
            });
        }
        "" => count,
        _ => {
            let unit: i64 = match unit {
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 7 * 86_400,
                _ => return Err(bad()),
            };
            if count == 0 {
                return Err(SinceError::Zero(given.to_owned()));
            }
            now.saturating_sub(count.saturating_mul(unit))
        }
    };
    Ok(Window { from, to: now })
}

/// What to look for, and where.
#[derive(Clone, Debug)]
pub struct UsageRequest<'a> {
    /// The accounts; none: root, every reseller and every account with tokens, as
    /// `whmtoken audit` covers them.
    pub users: &'a [String],
    pub window: Window,
    /// The logs folder (`--logs`); `None`: the backend's own.
    pub folder: Option<&'a camino::Utf8Path>,
    /// Threads for reading the accounts' tokens.
    pub jobs: usize,
}

/// The uses of every covered account's credentials within the window, read from the
/// server's logs. A logs folder that is missing is [`BackendError::NotFound`].
pub fn collect(
    backend: &dyn Backend,
    request: &UsageRequest<'_>,
) -> Result<UsageReport, BackendError> {
    let logs = backend.logs(request.folder)?;
    let (users, _) = crate::findings::covered_accounts(backend, request.users)?;
    let session = backend.read_session();
    let reads: &dyn Reads = session.as_deref().unwrap_or(backend);
    let covered = crate::parallel::map(&users, request.jobs, |user| {
        let tokens = UserName::new(user)
            .ok()
            .and_then(|u| reads.tokens(&u).ok())
            .map(|set| {
                set.iter()
                    .map(|(_, entry)| (entry.name.clone(), entry.create_time))
                    .collect()
            })
            .unwrap_or_default();
        Covered {
            user: user.clone(),
            tokens,
        }
    });
    drop(session);
    report(logs.as_ref(), covered, request.window)
}

/// The uses of `covered`'s credentials within `window`, read from `logs`.
pub fn report(
    logs: &dyn Logs,
    covered: Vec<Covered>,
    window: Window,
) -> Result<UsageReport, BackendError> {
    let plan = plan(logs.files()?, window);
    let mut ledger = tally::Ledger::new(window, covered);
    let (reads, coverage) = read::read(logs, plan, &mut ledger, window);
    Ok(UsageReport {
        window,
        folder: logs.location().to_owned(),
        logs: reads,
        coverage,
        accounts: ledger.finish(),
    })
}

/// Which files to read, in which order: those that can hold lines of the window.
fn plan(files: Vec<crate::logs::LogFile>, window: Window) -> read::Plan {
    let mut named: Vec<(LogName, crate::logs::LogFile)> = files
        .into_iter()
        .filter_map(|file| Some((LogName::parse(&file.name)?, file)))
        .collect();
    named.sort_by(|(a, fa), (b, fb)| a.chronological(b).then(fa.name.cmp(&fb.name)));
    let mut plan = read::Plan::default();
    for (name, file) in named {
        let reaches = name.may_reach(file.modified, window.from);
        match name.kind {
            LogKind::Access if reaches => plan.access.push(file),
            LogKind::Access => plan.probe = Some(file),
            LogKind::ApiTokens if reaches => plan.tokens.push(file),
            LogKind::ApiTokens => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests;
