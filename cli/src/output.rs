//! What the command prints: cPanel's lines for people, or one JSON document for programs.
//! Only results go to stdout; errors and warnings go to stderr.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};
use whmtoken_core::{Report, Status, UserResult, error_chain};

/// Human output: with `verbose`, one line per user that has a token; always one
/// `error: <user>: <message>` line on stderr per failed user. A stdout that fails (a
/// closed pipe) stops the stdout lines only: every `error:` line is still written, and the
/// first stdout error is returned at the end.
pub fn human(
    report: &Report,
    verbose: bool,
    dry_run: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<()> {
    let mut out_status = Ok(());
    for result in &report.results {
        let name = result.token_name.as_deref().unwrap_or_default();
        let user = &result.user;
        let line = match result.status {
            Status::Converted | Status::Replaced if verbose => {
                let verb = if dry_run { "Would import" } else { "Imported" };
                format!("{verb} accesshash for “{user}” as “{name}”\n")
            }
            Status::AlreadyConverted if verbose => {
                format!("Already imported accesshash for “{user}” as “{name}”\n")
            }
            Status::Failed => {
                error_line(result, err)?;
                continue;
            }
            _ => continue,
        };
        if out_status.is_ok() {
            out_status = out.write_all(line.as_bytes());
        }
    }
    out_status
}

fn error_line(result: &UserResult, err: &mut impl Write) -> io::Result<()> {
    match &result.error {
        Some(e) => writeln!(err, "error: {}: {}", result.user, error_chain(e)),
        None => writeln!(err, "error: {}: failed", result.user),
    }
}

/// The `--json` document (schema version 1, documented in the README).
#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    dry_run: bool,
    backend: &'a str,
    results: Vec<JsonResult<'a>>,
    summary: Map<String, Value>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    user: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_hash_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Prints the JSON document on stdout, and the `error:` lines on stderr as well.
pub fn json(
    report: &Report,
    backend: &str,
    dry_run: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<()> {
    let results = report
        .results
        .iter()
        .map(|r| JsonResult {
            user: &r.user,
            status: r.status.as_str(),
            token_name: r.token_name.as_deref(),
            token_hash_prefix: r.token_hash_prefix.as_deref(),
            error: r.error.as_ref().map(|e| error_chain(e)),
        })
        .collect();
    let summary = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), Value::from(report.count(*s))))
        .collect();
    let document = JsonReport {
        version: 1,
        dry_run,
        backend,
        results,
        summary,
    };
    // One buffer for the whole document: stdout's own writes each of its lines on its own.
    let mut buffered = io::BufWriter::with_capacity(1 << 16, &mut *out);
    let printed = serde_json::to_writer_pretty(&mut buffered, &document)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(buffered))
        .and_then(|()| buffered.flush());
    drop(buffered);
    for result in report.results.iter().filter(|r| r.status == Status::Failed) {
        error_line(result, err)?;
    }
    printed
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): names and messages read
/// from the server are shown this way, so that a crafted name cannot move the cursor or
/// forge a line.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
