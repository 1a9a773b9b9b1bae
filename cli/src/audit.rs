//! `whmtoken audit`: every WHM credential of the server and what is wrong with it, as text
//! or JSON. Reads only.

use std::io::{self, Write};

use camino::Utf8Path;
use serde_json::{Value, json};
use whmtoken_core::findings::{self, Finding, ServerAudit, Severity};
use whmtoken_core::{backend::DEFAULT_LOCK_TIMEOUT, pipeline};

use crate::config;
use crate::error::{CliError, status};
use crate::output::shown;

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
    /// Read up to N accounts at once [default: 4 per core, 4 to 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
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
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(DEFAULT_LOCK_TIMEOUT)
        .map_err(CliError::Open)?;
    let jobs = args.jobs.map_or_else(pipeline::default_jobs, usize::from);
    let now = jiff::Timestamp::now().as_second();
    let audit =
        findings::audit(backend.as_ref(), &args.users, now, jobs).map_err(CliError::Read)?;
    let mut stdout = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut stdout, &document(&audit, backend.kind()))
            .map_err(io::Error::from)
            .and_then(|()| writeln!(stdout))
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
        .zip(audit.worst())
        .is_some_and(|(threshold, worst)| worst >= threshold);
    Ok(if failed { 1 } else { status::OK })
}

fn text(audit: &ServerAudit, out: &mut impl Write) -> io::Result<()> {
    let setting = u8::from(audit.settings.allow_deprecated_accesshash);
    writeln!(out, "server: allow_deprecated_accesshash={setting}")?;
    findings_lines(&audit.findings, out)?;
    for account in &audit.accounts {
        writeln!(
            out,
            "\n{}: access hash {}",
            shown(&account.user),
            account.accesshash.as_str().replace('_', " ")
        )?;
        findings_lines(&account.findings, out)?;
        for token in &account.tokens {
            let expiry = match token.expires_at {
                None => "never expires".to_owned(),
                Some(at) if token.expired => format!("expired at {at}"),
                Some(at) => format!("expires at {at}"),
            };
            let access = match &token.acls {
                _ if token.full_access => "full access".to_owned(),
                Some(acls) => format!("acls: {}", acls.join(", ")),
                None => "full access".to_owned(),
            };
            let addresses = match &token.allow_ips {
                None => "any address".to_owned(),
                Some(ips) => format!("allow: {}", ips.join(", ")),
            };
            let created = token
                .create_time
                .map_or_else(|| "unknown".to_owned(), |t| t.to_string());
            let origin = if token.from_accesshash {
                ", from the access hash"
            } else {
                ""
            };
            writeln!(
                out,
                "  token “{}” {}: created {created}, {expiry}, {access}, {addresses}{origin}",
                shown(&token.name),
                token.hash_prefix
            )?;
        }
    }
    let [critical, warning, info] = Severity::ALL.map(|s| audit.count(s));
    let plural = if warning == 1 { "" } else { "s" };
    writeln!(
        out,
        "\n{critical} critical, {warning} warning{plural}, {info} info"
    )
}

fn findings_lines(findings: &[Finding], out: &mut impl Write) -> io::Result<()> {
    for finding in findings {
        writeln!(
            out,
            "  {}: {} ({})",
            finding.severity.as_str(),
            shown(&finding.message),
            finding.code.as_str()
        )?;
    }
    Ok(())
}

fn document(audit: &ServerAudit, backend: &str) -> Value {
    let findings = |list: &[Finding]| -> Vec<Value> {
        list.iter()
            .map(|f| {
                let mut finding = json!({
                    "severity": f.severity.as_str(),
                    "code": f.code.as_str(),
                    "message": f.message,
                });
                if let Some(token) = &f.token {
                    finding["token"] = json!(token);
                }
                finding
            })
            .collect()
    };
    let accounts: Vec<Value> = audit
        .accounts
        .iter()
        .map(|a| {
            let tokens: Vec<Value> = a
                .tokens
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "hash_prefix": t.hash_prefix,
                        "create_time": t.create_time,
                        "expires_at": t.expires_at,
                        "expired": t.expired,
                        "full_access": t.full_access,
                        "acls": t.acls,
                        "allow_ips": t.allow_ips,
                        "from_accesshash": t.from_accesshash,
                    })
                })
                .collect();
            json!({
                "user": a.user,
                "accesshash": a.accesshash.as_str(),
                "tokens": tokens,
                "findings": findings(&a.findings),
            })
        })
        .collect();
    json!({
        "version": 1,
        "backend": backend,
        "server": {
            "allow_deprecated_accesshash": audit.settings.allow_deprecated_accesshash,
            "findings": findings(&audit.findings),
        },
        "accounts": accounts,
        "summary": {
            "critical": audit.count(Severity::Critical),
            "warning": audit.count(Severity::Warning),
            "info": audit.count(Severity::Info),
        },
    })
}
