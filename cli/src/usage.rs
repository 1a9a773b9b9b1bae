//! `whmtoken usage`: who still uses each access hash and token, from where and when, read
//! from cPanel's logs (core's [`whmtoken_core::usage`]), as text or JSON. Reads only.
//!
//! Every field a client chose (its address, its user agent) is shown escaped as the audit
//! escapes names; request lines, paths and query strings are never shown.

use std::io::{self, Write};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::usage::{
    self, AccountUsage, Client, CredentialUsage, UsageReport, UsageRequest,
};
use whmtoken_core::{BackendError, pipeline};

use crate::config;
use crate::dates::Dates;
use crate::error::{CliError, status};
use crate::output::shown;

/// `whmtoken usage [USER]... [--since DURATION|EPOCH] [--logs DIR] [--json]`
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Accounts to report [default: root, every reseller, and every account with a token file]
    #[arg(value_name = "USER")]
    pub users: Vec<String>,
    /// The window's start: a span back from now, a whole number and m (minutes), h
    /// (hours), d (days) or w (weeks), or epoch seconds
    #[arg(long, value_name = "DURATION|EPOCH", default_value = "90d")]
    pub since: String,
    /// The folder of cPanel's logs [default: usr/local/cpanel/logs under the server's
    /// root; for a SQLite server, the database's name with -logs for its extension
    /// (server.db: server-logs), beside it]
    #[arg(long, value_name = "DIR")]
    pub logs: Option<Utf8PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// Reads the logs of the server the config names and prints the uses; returns the exit
/// status.
pub fn run(args: UsageArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let names = args
        .users
        .iter()
        .map(|user| whmtoken_core::UserName::new(user).map_err(|e| CliError::Usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let now = jiff::Timestamp::now().as_second();
    let window = usage::window_since(&args.since, now)
        .map_err(|e| CliError::Usage(format!("--since {e}")))?;
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(DEFAULT_LOCK_TIMEOUT)
        .map_err(CliError::Open)?;
    let request = UsageRequest {
        users: &args.users,
        window,
        folder: args.logs.as_deref(),
        jobs: pipeline::default_jobs(),
    };
    let report = usage::collect(backend.as_ref(), &request).map_err(CliError::Logs)?;
    warn_unknown_accounts(backend.as_ref(), &names);
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if args.json {
        serde_json::to_writer_pretty(&mut stdout, &document(&report))
            .map_err(io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else {
        text(&report, &mut stdout)
    };
    match written.and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
        _ => Ok(status::OK),
    }
}

/// A `warning:` line on stderr for each account asked for that the server does not have (a
/// typo reads as `not used` otherwise); its log lines are shown all the same, as an account
/// removed since may have left some.
fn warn_unknown_accounts(backend: &dyn whmtoken_core::Backend, users: &[whmtoken_core::UserName]) {
    for user in users {
        if let Ok(false) = backend.has_account(user) {
            let _ = writeln!(
                io::stderr(),
                "warning: {}: no such account on this server; its uses in the logs are shown all the same",
                shown(user.as_str())
            );
        }
    }
}

/// The uses of `covered`'s credentials in the server's own logs over the default window,
/// for `audit` and `retire`: `None` when it keeps none (a folder that is missing, a backend
/// without logs), and a `warning:` line on stderr, then `None`, when they cannot be read,
/// so that those commands go on without them.
pub(crate) fn optional(
    backend: &dyn whmtoken_core::Backend,
    covered: Vec<usage::Covered>,
    now: i64,
) -> Option<UsageReport> {
    let window = usage::Window {
        from: now - usage::DEFAULT_WINDOW_SECONDS,
        to: now,
    };
    let read = backend
        .logs(None)
        .and_then(|logs| usage::report(logs.as_ref(), covered, window));
    match read {
        Ok(report) => Some(report),
        Err(BackendError::NotFound { .. } | BackendError::Unsupported { .. }) => None,
        Err(e) => {
            let _ = writeln!(
                io::stderr(),
                "warning: {}; going on without them",
                shown(&whmtoken_core::error_chain(&CliError::Logs(e)))
            );
            None
        }
    }
}

/// A window's length in whole days, or hours or minutes when shorter: `1 day`, `90 days`,
/// `12 hours`.
fn span(seconds: i64) -> String {
    let (count, unit) = match seconds {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s => (s / 60, "minute"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

fn text(report: &UsageReport, out: &mut impl Write) -> io::Result<()> {
    let dates = Dates::at(report.window.to);
    writeln!(
        out,
        "window: {} to {} ({})",
        dates.utc(report.window.from),
        dates.utc(report.window.to),
        span(report.window.to - report.window.from)
    )?;
    writeln!(out, "logs: {}", shown(&report.folder))?;
    for log in &report.logs {
        let range = match (log.first, log.last) {
            (Some(first), Some(last)) => format!("{} to {}", dates.utc(first), dates.utc(last)),
            _ => "no dated line".to_owned(),
        };
        let error = log
            .error
            .as_ref()
            .map(|e| format!("; not read to its end: {}", shown(e)))
            .unwrap_or_default();
        writeln!(
            out,
            "  {}: {range}, {} line{} ({} unparsed){error}",
            shown(&log.path),
            n(log.lines),
            if log.lines == 1 { "" } else { "s" },
            n(log.unparsed)
        )?;
    }
    coverage_line(report, dates, out)?;
    for account in &report.accounts {
        account_lines(account, dates, out)?;
    }
    Ok(())
}

fn coverage_line(report: &UsageReport, dates: Dates, out: &mut impl Write) -> io::Result<()> {
    match report.coverage.from {
        None => writeln!(
            out,
            "coverage: no access_log line was read: an unused credential here may have been used all the same"
        ),
        Some(from) if report.coverage.complete => {
            writeln!(
                out,
                "coverage: complete (the logs begin {})",
                dates.utc(from)
            )
        }
        Some(from) => writeln!(
            out,
            "coverage: INCOMPLETE: the logs begin {}, after the window's start; a credential shown unused may have been used before then",
            dates.utc(from)
        ),
    }
}

fn account_lines(account: &AccountUsage, dates: Dates, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "\n{}:", shown(&account.user))?;
    credential_lines("access hash", &account.accesshash, dates, out)?;
    for token in &account.tokens {
        let label = if token.stored {
            format!("token “{}”", shown(&token.name))
        } else {
            format!("token “{}” (no longer stored)", shown(&token.name))
        };
        credential_lines(&label, &token.usage, dates, out)?;
    }
    Ok(())
}

fn credential_lines(
    label: &str,
    usage: &CredentialUsage,
    dates: Dates,
    out: &mut impl Write,
) -> io::Result<()> {
    if usage.is_empty() {
        return writeln!(out, "  {label}: not used");
    }
    let mut line = format!("  {label}: ");
    match (usage.first, usage.last) {
        (Some(first), Some(last)) => line.push_str(&format!(
            "{} use{}, first {}, last {}",
            n(usage.ok),
            if usage.ok == 1 { "" } else { "s" },
            dates.utc(first),
            dates.when(last)
        )),
        _ => line.push_str("no accepted use"),
    }
    if let Some(last) = usage.last_refused {
        line.push_str(&format!(
            "; {} refused, last {}",
            n(usage.refused),
            dates.when(last)
        ));
    }
    writeln!(out, "{line}")?;
    for client in &usage.clients {
        writeln!(out, "    {}", client_text(client, dates))?;
    }
    if usage.more_clients > 0 {
        writeln!(out, "    and {} more", n(usage.more_clients))?;
    }
    Ok(())
}

fn client_text(client: &Client, dates: Dates) -> String {
    let agent = client.user_agent.as_ref().map_or_else(
        || "(no user agent logged)".to_owned(),
        |a| format!("“{}”", shown(a)),
    );
    let refused = if client.refused > 0 {
        format!(", {} refused", n(client.refused))
    } else {
        String::new()
    };
    format!(
        "{} {agent}: {} request{}{refused}, last {}",
        shown(&client.ip),
        n(client.count),
        if client.count == 1 { "" } else { "s" },
        dates.when(client.last)
    )
}

/// A count as the text output shows every count: `1,250`.
fn n(count: u64) -> String {
    crate::dates::count(usize::try_from(count).unwrap_or(usize::MAX))
}

/// The files read, as the `--json` documents list them.
pub(crate) fn logs_json(report: &UsageReport) -> Vec<Value> {
    report
        .logs
        .iter()
        .map(|log| {
            let mut value = json!({
                "path": log.path,
                "first": log.first,
                "last": log.last,
                "lines": log.lines,
                "unparsed": log.unparsed,
            });
            if let Some(error) = &log.error {
                value["error"] = json!(error);
            }
            value
        })
        .collect()
}

/// A use, as the `--json` documents show it: `{"time", "ip", "user_agent"}`.
pub(crate) fn use_json(last: Option<&usage::Use>) -> Value {
    last.map_or(Value::Null, |u| {
        json!({
            "time": u.time,
            "ip": shown(&u.ip),
            "user_agent": u.user_agent.as_deref().map(shown),
        })
    })
}

/// The `--json` document (version 1).
fn document(report: &UsageReport) -> Value {
    let logs = logs_json(report);
    let accounts: Vec<Value> = report
        .accounts
        .iter()
        .map(|account| {
            let tokens: Vec<Value> = account
                .tokens
                .iter()
                .map(|t| {
                    let mut value = json!({"name": t.name});
                    credential_json(&t.usage, &mut value);
                    value["stored"] = json!(t.stored);
                    value
                })
                .collect();
            let mut accesshash = json!({});
            credential_json(&account.accesshash, &mut accesshash);
            json!({"user": account.user, "accesshash": accesshash, "tokens": tokens})
        })
        .collect();
    json!({
        "version": 1,
        "window": {"from": report.window.from, "to": report.window.to},
        "folder": report.folder,
        "logs": logs,
        "coverage": {"from": report.coverage.from, "complete": report.coverage.complete},
        "accounts": accounts,
    })
}

pub(crate) fn credential_json(usage: &CredentialUsage, into: &mut Value) {
    let clients: Vec<Value> = usage.clients.iter().map(client_json).collect();
    for (key, value) in [
        ("ok", json!(usage.ok)),
        ("refused", json!(usage.refused)),
        ("first", json!(usage.first)),
        ("last", json!(usage.last)),
        ("last_refused", json!(usage.last_refused)),
        ("clients", json!(clients)),
        ("more_clients", json!(usage.more_clients)),
    ] {
        into[key] = value;
    }
}

fn client_json(client: &Client) -> Value {
    json!({
        "ip": shown(&client.ip),
        "user_agent": client.user_agent.as_deref().map(shown),
        "count": client.count,
        "refused": client.refused,
        "last": client.last,
    })
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn a_window_reads_in_days_hours_or_minutes_singular_or_plural() {
        assert_eq!(span(86_400), "1 day");
        assert_eq!(span(90 * 86_400), "90 days");
        assert_eq!(span(12 * 3_600), "12 hours");
        assert_eq!(span(3_600), "1 hour");
        assert_eq!(span(30 * 60), "30 minutes");
    }
}
