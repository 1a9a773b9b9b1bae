//! `whmtoken audit`: every WHM credential of the server and what is wrong with it, as text
//! or JSON. Reads only.

use std::io::{self, Write};

use camino::Utf8Path;
use serde::Serialize;
use whmtoken_core::cluster::{self, ClusterLink};
use whmtoken_core::findings::{self, Finding, ServerAudit, Severity, TokenView};
use whmtoken_core::usage::{Covered, UsageReport};
use whmtoken_core::{backend::DEFAULT_LOCK_TIMEOUT, findings_usage, pipeline};

use crate::config;
use crate::dates::{Dates, count};
use crate::error::{CliError, status};
use crate::output::shown;
use crate::usage::{logs_json, use_json};

/// The audit, with what the logs told of each credential's uses.
struct Audited {
    audit: ServerAudit,
    /// `None`: not read (`--no-usage`), or the server keeps no logs.
    usage: Option<UsageReport>,
    dates: Dates,
    no_usage: bool,
}

/// The accounts audited and their tokens, for reading the logs.
fn covered(audit: &ServerAudit) -> Vec<Covered> {
    audit
        .accounts
        .iter()
        .map(|a| Covered {
            user: a.user.clone(),
            tokens: a
                .tokens
                .iter()
                .map(|t| (t.name.clone(), t.create_time))
                .collect(),
        })
        .collect()
}

/// `whmtoken audit [USER]... [--json] [--fail-on LEVEL]`
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Accounts to audit [default: root, every reseller, and every account with a token file]
    #[arg(value_name = "USER")]
    pub users: Vec<String>,
    /// Print one JSON document on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a finding is at least this severe
    #[arg(long, value_enum, value_name = "LEVEL", default_value = "critical")]
    pub fail_on: FailOn,
    /// Read up to N accounts at once [default: 8 per core, 8 to 32]
    #[arg(long, value_name = "N", value_parser = crate::args::jobs)]
    pub jobs: Option<u16>,
    /// Do not read cPanel's logs for each credential's last use
    #[arg(long)]
    pub no_usage: bool,
    /// Print one line per account (its access hash's state, its tokens and findings
    /// counted), then a totals line
    #[arg(long, conflicts_with_all = ["json", "findings_only"])]
    pub summary: bool,
    /// Print the findings alone, one a line, the server's first
    #[arg(long, conflicts_with = "json")]
    pub findings_only: bool,
    /// The host name the --json document carries [default: the machine's host name]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

/// The least severe finding that makes the audit exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Critical,
    Warning,
    Info,
    Never,
}

impl FailOn {
    fn threshold(self) -> Option<Severity> {
        match self {
            Self::Critical => Some(Severity::Critical),
            Self::Warning => Some(Severity::Warning),
            Self::Info => Some(Severity::Info),
            Self::Never => None,
        }
    }
}

/// Audits the server that the config names and prints the result; returns the exit status.
pub fn run(args: AuditArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    for user in &args.users {
        whmtoken_core::UserName::new(user).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let host = match (&args.host, args.json) {
        (Some(host), _) if host.trim().is_empty() => {
            return Err(CliError::Argument(
                "--host needs a host name, not an empty one: whmtoken report tells servers apart by it"
                    .to_owned(),
            ));
        }
        (Some(host), _) => host.clone(),
        (None, true) => host_name()?,
        (None, false) => String::new(),
    };
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(DEFAULT_LOCK_TIMEOUT)
        .map_err(CliError::Open)?;
    let jobs = args.jobs.map_or_else(pipeline::default_jobs, usize::from);
    let dates = Dates::new(&whmtoken_backends::SystemClock);
    let now = dates.now();
    let mut audit =
        findings::audit(backend.as_ref(), &args.users, now, jobs).map_err(CliError::Read)?;
    let usage = (!args.no_usage)
        .then(|| crate::usage::optional(backend.as_ref(), covered(&audit), now))
        .flatten();
    let links: Vec<ClusterLink> = backend
        .cluster_configs()
        .map(|files| files.iter().map(cluster::parse).collect())
        .unwrap_or_default();
    findings_usage::add(&mut audit, usage.as_ref(), &links);
    let audit = Audited {
        audit,
        usage,
        dates,
        no_usage: args.no_usage,
    };
    // Buffered: a report of thousands of accounts is many lines, and stdout's own buffer
    // writes each line on its own.
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if args.json {
        serde_json::to_writer_pretty(&mut stdout, &document(&audit, &host, backend.kind()))
            .map_err(io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else if args.summary {
        summary_text(&audit.audit, &mut stdout)
    } else if args.findings_only {
        audit
            .audit
            .all_findings()
            .try_for_each(|f| finding_line(f, "", &mut stdout))
    } else {
        text(&audit, &mut stdout)
    };
    match written.and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(CliError::Output(e)),
        _ => {}
    }
    let failed = args
        .fail_on
        .threshold()
        .zip(audit.audit.worst())
        .is_some_and(|(threshold, worst)| worst >= threshold);
    Ok(if failed { 1 } else { status::OK })
}

fn text(audited: &Audited, out: &mut impl Write) -> io::Result<()> {
    let audit = &audited.audit;
    let setting = u8::from(audit.settings.allow_deprecated_accesshash);
    writeln!(out, "server: allow_deprecated_accesshash={setting}")?;
    usage_line(audited, out)?;
    findings_lines(&audit.findings, out)?;
    for account in &audit.accounts {
        writeln!(
            out,
            "\n{}: access hash {}",
            shown(&account.user),
            state_text(account.accesshash)
        )?;
        let used = audited
            .usage
            .as_ref()
            .and_then(|u| u.account(&account.user));
        if let Some(used) = used {
            let since = audited.usage.as_ref().map_or(0, |u| u.window.from);
            match &used.accesshash.last_use {
                Some(last) => writeln!(
                    out,
                    "  access hash last used {}",
                    last_use_text(last, audited.dates)
                )?,
                None if account.accesshash != findings::AccessHashState::None => writeln!(
                    out,
                    "  access hash not used since {}",
                    audited.dates.when(since)
                )?,
                None => {}
            }
        }
        findings_lines(&account.findings, out)?;
        for token in &account.tokens {
            let last = used.map(|u| {
                u.tokens
                    .iter()
                    .find(|t| t.name == token.name)
                    .and_then(|t| t.usage.last_use.as_ref())
            });
            token_line(token, last, audited, out)?;
        }
    }
    writeln!(out, "\n{}", severity_counts(audit.all_findings()))
}

/// `3 critical, 12 warnings, 40 info`.
fn severity_counts<'a>(findings: impl Iterator<Item = &'a Finding>) -> String {
    let mut counts = [0; 3];
    for finding in findings {
        counts[Severity::ALL
            .iter()
            .position(|s| *s == finding.severity)
            .unwrap_or_default()] += 1;
    }
    let [critical, warning, info] = counts.map(count);
    let plural = if warning == "1" { "" } else { "s" };
    format!("{critical} critical, {warning} warning{plural}, {info} info")
}

/// `--summary`: the server's line, one line per account, then the totals.
fn summary_text(audit: &ServerAudit, out: &mut impl Write) -> io::Result<()> {
    let setting = u8::from(audit.settings.allow_deprecated_accesshash);
    writeln!(
        out,
        "server: allow_deprecated_accesshash={setting}; {}",
        severity_counts(audit.findings.iter())
    )?;
    let mut states: Vec<(findings::AccessHashState, usize)> = Vec::new();
    let mut tokens = 0;
    for account in &audit.accounts {
        match states.iter_mut().find(|(s, _)| *s == account.accesshash) {
            Some((_, n)) => *n += 1,
            None => states.push((account.accesshash, 1)),
        }
        tokens += account.tokens.len();
        writeln!(
            out,
            "{}: access hash {}, {}; {}",
            shown(&account.user),
            state_text(account.accesshash),
            tokens_text(account.tokens.len()),
            severity_counts(account.findings.iter())
        )?;
    }
    states.sort_by_key(|(state, _)| *state as u8);
    let states: Vec<String> = states
        .iter()
        .map(|(state, n)| format!("{} {}", count(*n), state_text(*state)))
        .collect();
    let accounts = audit.accounts.len();
    writeln!(
        out,
        "{} account{} (access hash: {}), {}; {}",
        count(accounts),
        if accounts == 1 { "" } else { "s" },
        if states.is_empty() {
            "none".to_owned()
        } else {
            states.join(", ")
        },
        tokens_text(tokens),
        severity_counts(audit.all_findings())
    )
}

/// `not converted`: an access hash's state as the text output says it.
fn state_text(state: findings::AccessHashState) -> String {
    state.as_str().replace('_', " ")
}

fn tokens_text(tokens: usize) -> String {
    format!(
        "{} token{}",
        count(tokens),
        if tokens == 1 { "" } else { "s" }
    )
}

/// `usage: …`: which logs the last uses come from, and how far back they reach.
fn usage_line(audited: &Audited, out: &mut impl Write) -> io::Result<()> {
    let dates = audited.dates;
    let Some(usage) = &audited.usage else {
        let why = if audited.no_usage {
            "not read (--no-usage)"
        } else {
            "no logs found: last uses unknown"
        };
        return writeln!(out, "usage: {why}");
    };
    let coverage = match usage.coverage.from {
        Some(from) if usage.coverage.complete => {
            format!("complete (the logs begin {})", dates.when(from))
        }
        Some(from) => format!(
            "INCOMPLETE: the logs begin {}; a credential shown unused may have been used before",
            dates.when(from)
        ),
        None => "none: no access_log line was read".to_owned(),
    };
    writeln!(
        out,
        "usage: {}, {} files, since {}; coverage {coverage}",
        shown(&usage.folder),
        usage.logs.len(),
        dates.when(usage.window.from)
    )
}

/// `2026-12-03 21:19:22 UTC (3 hours ago) from 192.0.2.1 “agent”`.
fn last_use_text(last: &whmtoken_core::usage::Use, dates: Dates) -> String {
    let agent = last
        .user_agent
        .as_ref()
        .map(|a| format!(" “{}”", shown(a)))
        .unwrap_or_default();
    format!("{} from {}{agent}", dates.when(last.time), shown(&last.ip))
}

/// One token's line; `last`: `None` when the logs were not read, `Some(None)` when it was
/// not used in the window.
fn token_line(
    token: &TokenView,
    last: Option<Option<&whmtoken_core::usage::Use>>,
    audited: &Audited,
    out: &mut impl Write,
) -> io::Result<()> {
    let dates = audited.dates;
    let expiry = match token.expires_at {
        None => "never expires".to_owned(),
        Some(at) if token.expired => format!("expired {}", dates.when(at)),
        Some(at) => format!("expires {}", dates.when(at)),
    };
    let access = match &token.acls {
        _ if token.full_access => "full access".to_owned(),
        Some(acls) => format!("acls: {}", shown(&acls.join(", "))),
        None => "full access".to_owned(),
    };
    let addresses = match token.allow_ips.as_deref() {
        None => "any address".to_owned(),
        Some([]) => "no address".to_owned(),
        Some(ips) => format!("allow: {}", shown(&ips.join(", "))),
    };
    let created = token
        .create_time
        .map_or_else(|| "unknown".to_owned(), |t| dates.utc(t));
    let origin = if token.from_accesshash {
        ", from the access hash"
    } else {
        ""
    };
    let used = match last {
        None => String::new(),
        Some(Some(last)) => format!(", last used {}", last_use_text(last, audited.dates)),
        Some(None) => ", not used in the window".to_owned(),
    };
    writeln!(
        out,
        "  token “{}” {}: created {created}, {expiry}, {access}, {addresses}{origin}{used}",
        shown(&token.name),
        token.hash_prefix
    )
}

fn findings_lines(findings: &[Finding], out: &mut impl Write) -> io::Result<()> {
    findings.iter().try_for_each(|f| finding_line(f, "  ", out))
}

/// `critical: bob: access hash not converted (accesshash_not_converted)`.
fn finding_line(finding: &Finding, indent: &str, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{indent}{}: {} ({})",
        finding.severity.as_str(),
        shown(&finding.message),
        finding.code.as_str()
    )
}

/// The `--json` document (version 1), serialized straight from the audit.
#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    /// The machine's host name, or `--host`: `whmtoken report` tells servers apart by it.
    host: &'a str,
    backend: &'a str,
    server: JsonServer<'a>,
    accounts: Vec<JsonAccount<'a>>,
    summary: JsonSummary,
    /// The logs read for the last uses: `null` when none were.
    usage: serde_json::Value,
}

#[derive(Serialize)]
struct JsonServer<'a> {
    allow_deprecated_accesshash: bool,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
struct JsonAccount<'a> {
    user: &'a str,
    accesshash: &'static str,
    /// Present when the logs were read: the last use, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    accesshash_last_used: Option<serde_json::Value>,
    tokens: Vec<JsonToken<'a>>,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
struct JsonToken<'a> {
    name: &'a str,
    hash_prefix: &'a str,
    create_time: Option<i64>,
    expires_at: Option<i64>,
    expired: bool,
    full_access: bool,
    acls: Option<&'a [String]>,
    allow_ips: Option<&'a [String]>,
    from_accesshash: bool,
    /// Present when the logs were read: the last use, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    severity: &'static str,
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonSummary {
    critical: usize,
    warning: usize,
    info: usize,
}

/// The machine's host name, as the kernel holds it.
fn host_name() -> Result<String, CliError> {
    const FILE: &str = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(FILE).map_err(|e| {
        CliError::Config(format!(
            "cannot read the host name ({FILE}: {e}); give it with --host NAME"
        ))
    })?;
    Ok(name.trim().to_owned())
}

fn document<'a>(audited: &'a Audited, host: &'a str, backend: &'a str) -> Document<'a> {
    let audit = &audited.audit;
    let findings = |list: &'a [Finding]| -> Vec<JsonFinding<'a>> {
        list.iter()
            .map(|f| JsonFinding {
                severity: f.severity.as_str(),
                code: f.code.as_str(),
                message: &f.message,
                token: f.token.as_deref(),
            })
            .collect()
    };
    let accounts = audit
        .accounts
        .iter()
        .map(|a| {
            let used = audited.usage.as_ref().map(|u| u.account(&a.user));
            let token_used = |name: &str| {
                used.map(|used| {
                    use_json(used.and_then(|u| {
                        u.tokens
                            .iter()
                            .find(|t| t.name == name)
                            .and_then(|t| t.usage.last_use.as_ref())
                    }))
                })
            };
            JsonAccount {
                user: &a.user,
                accesshash: a.accesshash.as_str(),
                accesshash_last_used: used
                    .map(|used| use_json(used.and_then(|u| u.accesshash.last_use.as_ref()))),
                tokens: a
                    .tokens
                    .iter()
                    .map(|t| JsonToken {
                        name: &t.name,
                        hash_prefix: &t.hash_prefix,
                        create_time: t.create_time,
                        expires_at: t.expires_at,
                        expired: t.expired,
                        full_access: t.full_access,
                        acls: t.acls.as_deref(),
                        allow_ips: t.allow_ips.as_deref(),
                        from_accesshash: t.from_accesshash,
                        last_used: token_used(&t.name),
                    })
                    .collect(),
                findings: findings(&a.findings),
            }
        })
        .collect();
    Document {
        version: 1,
        host,
        backend,
        server: JsonServer {
            allow_deprecated_accesshash: audit.settings.allow_deprecated_accesshash,
            findings: findings(&audit.findings),
        },
        accounts,
        summary: JsonSummary {
            critical: audit.count(Severity::Critical),
            warning: audit.count(Severity::Warning),
            info: audit.count(Severity::Info),
        },
        usage: audited.usage.as_ref().map_or(serde_json::Value::Null, |u| {
            serde_json::json!({
                "window": {"from": u.window.from, "to": u.window.to},
                "folder": u.folder,
                "files": logs_json(u),
                "coverage": {"from": u.coverage.from, "complete": u.coverage.complete},
            })
        }),
    }
}
