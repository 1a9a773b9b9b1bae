//! What the command prints: cPanel's lines for people, or one JSON document for programs.
//! Only results go to stdout; errors and warnings go to stderr.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};
use whmtoken_core::{Report, Status, UserResult, error_chain};

/// Human output, one user at a time as results arrive: with `verbose`, one line per user
/// that has a token; always one `error: <user>: <message>` line on stderr per failed user,
/// and a warning for restrictions that were not applied. A stdout that fails (a closed
/// pipe) stops the stdout lines only: every stderr line is still written, and the first
/// stdout error is returned by [`finish`](Human::finish).
pub struct Human<O, E> {
    pub verbose: bool,
    pub dry_run: bool,
    pub out: O,
    pub err: E,
    out_status: io::Result<()>,
}

impl<O: Write, E: Write> Human<O, E> {
    pub fn new(verbose: bool, dry_run: bool, out: O, err: E) -> Self {
        Self {
            verbose,
            dry_run,
            out,
            err,
            out_status: Ok(()),
        }
    }

    /// Prints one user's lines.
    pub fn result(&mut self, result: &UserResult) -> io::Result<()> {
        let name = shown(result.token_name.as_deref().unwrap_or_default());
        let user = shown(&result.user);
        let line = match result.status {
            Status::Converted if self.verbose => {
                let verb = if self.dry_run {
                    "Would import"
                } else {
                    "Imported"
                };
                format!("{verb} accesshash for “{user}” as “{name}”\n")
            }
            Status::Replaced if self.verbose => {
                let verb = if self.dry_run {
                    "Would replace"
                } else {
                    "Replaced"
                };
                format!("{verb} accesshash token for “{user}” as “{name}”\n")
            }
            Status::AlreadyConverted if self.verbose => {
                format!("Already imported accesshash for “{user}” as “{name}”\n")
            }
            Status::Failed | Status::Interrupted => return error_line(result, &mut self.err),
            _ => String::new(),
        };
        if !line.is_empty() && self.out_status.is_ok() {
            self.out_status = self
                .out
                .write_all(line.as_bytes())
                .and_then(|()| self.out.flush());
        }
        restrictions_warning(result, &mut self.err)
    }

    /// The first error stdout gave, if any.
    pub fn finish(self) -> io::Result<()> {
        self.out_status
    }
}

/// `warning: <user>: already converted as “<name>”; …` when restrictions were asked for and
/// the existing token was kept as it was.
fn restrictions_warning(result: &UserResult, err: &mut impl Write) -> io::Result<()> {
    if result.restrictions_applied != Some(false) {
        return Ok(());
    }
    writeln!(
        err,
        "warning: {}: already converted as “{}”; --acl/--expires/--allow-ip not applied (use --replace to reissue the token with them)",
        shown(&result.user),
        shown(result.token_name.as_deref().unwrap_or_default())
    )
}

fn error_line(result: &UserResult, err: &mut impl Write) -> io::Result<()> {
    match &result.error {
        Some(e) => writeln!(
            err,
            "error: {}: {}",
            shown(&result.user),
            shown(&error_chain(e))
        ),
        None => writeln!(err, "error: {}: failed", shown(&result.user)),
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
    restrictions_applied: Option<bool>,
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
            restrictions_applied: r.restrictions_applied,
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
    for result in &report.results {
        if matches!(result.status, Status::Failed | Status::Interrupted) {
            error_line(result, err)?;
        }
        restrictions_warning(result, err)?;
    }
    printed
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): names and messages read
/// from the server are shown this way, so that a crafted name cannot move the cursor or
/// forge a line.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_invisible_format(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that reorder or hide text without being control characters: bidirectional
/// overrides and isolates, zero-width characters, line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_escapes_what_could_forge_or_hide_text() {
        assert_eq!(super::shown("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(
            super::shown("r\u{202e}evil\u{2028}x"),
            "r\\u{202e}evil\\u{2028}x"
        );
        assert_eq!(super::shown("plain “quoted” name"), "plain “quoted” name");
    }
}
