//! What the command prints: cPanel's lines for people, or one JSON document for programs.
//! Only results go to stdout; errors and warnings go to stderr.
//!
//! The run ends with one summary line ([`summary_line`]) where [`Summary`] says, and the
//! users a signal kept from being started are one line ([`interrupted_line`]) unless
//! `--verbose` asks for one line each.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;
use serde_json::{Map, Value};
use whmtoken_core::{Report, Status, UserResult, error_chain};

use crate::dates::count;

/// Where the run's summary line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    /// The drop-in: its output stays cPanel's (nothing on stdout but `--verbose`'s lines,
    /// nothing on stderr but errors and warnings), so the summary goes to stderr, and only
    /// when stderr is a terminal: a script or a cron job sees what cPanel's script printed.
    StderrOnTerminal,
    /// `whmtoken convert`: the last line of stdout, when the run printed any line (on
    /// stdout or stderr) or stderr is a terminal.
    Stdout,
}

/// How many names of users not started an interrupted run shows without `--verbose`.
const NAMES_SHOWN: usize = 5;

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
    /// Users not started (a signal), shown in one line at the end without `verbose`.
    interrupted: Vec<String>,
    /// Whether any line was printed, on stdout or stderr.
    printed: bool,
}

impl<O: Write, E: Write> Human<O, E> {
    pub fn new(verbose: bool, dry_run: bool, out: O, err: E) -> Self {
        Self {
            verbose,
            dry_run,
            out,
            err,
            out_status: Ok(()),
            interrupted: Vec::new(),
            printed: false,
        }
    }

    /// Counts a line printed before the run (a warning) for [`Summary::Stdout`].
    pub fn printed_before(&mut self) {
        self.printed = true;
    }

    /// Prints one user's lines.
    /// Whether [`Human::result`] prints anything for `result` (a progress bar need not
    /// step aside for a result that prints nothing).
    pub fn prints(&self, result: &UserResult) -> bool {
        match result.status {
            Status::Converted | Status::Replaced | Status::AlreadyConverted if self.verbose => true,
            Status::Interrupted => self.verbose,
            Status::Failed => true,
            _ => result.restrictions_applied == Some(false),
        }
    }

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
            Status::Interrupted if !self.verbose => {
                self.interrupted.push(result.user.clone());
                return Ok(());
            }
            Status::Failed | Status::Interrupted => {
                self.printed = true;
                return error_line(result, &mut self.err);
            }
            _ => String::new(),
        };
        self.printed |= !line.is_empty() || result.restrictions_applied == Some(false);
        if !line.is_empty() && self.out_status.is_ok() {
            self.out_status = self
                .out
                .write_all(line.as_bytes())
                .and_then(|()| self.out.flush());
        }
        restrictions_warning(result, &mut self.err)
    }

    /// Ends the output: the users not started in one line, then the summary of `report`
    /// where `summary` says. Returns the first error stdout gave, if any.
    pub fn finish(mut self, report: &Report, summary: Summary) -> io::Result<()> {
        if let Some(line) = interrupted_line(&self.interrupted) {
            self.printed = true;
            // A closed stderr loses the line, never the run's status.
            let _ = writeln!(self.err, "{line}");
        }
        let line = summary_line(report, self.dry_run);
        let on_terminal = io::stderr().is_terminal();
        match summary {
            Summary::StderrOnTerminal if on_terminal => {
                let _ = writeln!(self.err, "{line}");
            }
            Summary::Stdout if (self.printed || on_terminal) && self.out_status.is_ok() => {
                self.out_status = writeln!(self.out, "{line}").and_then(|()| self.out.flush());
            }
            _ => {}
        }
        self.out_status
    }
}

/// `Converted 1,997, already converted 2, failed 1, not attempted 0.`: the count of every
/// status, `replaced` and `no access hash` only when there are some (`Would convert …` in a
/// dry run).
pub fn summary_line(report: &Report, dry_run: bool) -> String {
    let n = |status| report.count(status);
    let (convert, replace) = if dry_run {
        ("Would convert", "would replace")
    } else {
        ("Converted", "replaced")
    };
    let mut parts = vec![format!("{convert} {}", count(n(Status::Converted)))];
    if n(Status::Replaced) > 0 {
        parts.push(format!("{replace} {}", count(n(Status::Replaced))));
    }
    parts.push(format!(
        "already converted {}",
        count(n(Status::AlreadyConverted))
    ));
    if n(Status::NoAccesshash) > 0 {
        parts.push(format!("no access hash {}", count(n(Status::NoAccesshash))));
    }
    parts.push(format!("failed {}", count(n(Status::Failed))));
    parts.push(format!("not attempted {}", count(n(Status::Interrupted))));
    format!("{}.", parts.join(", "))
}

/// `error: 2,998 users not attempted: interrupted (res00003, res00004, res00005, res00006,
/// res00007 and 2,993 more; --verbose lists them all); run again to convert the rest`, or
/// `None` when every user was started.
pub fn interrupted_line(users: &[String]) -> Option<String> {
    let shown_names: Vec<String> = users.iter().take(NAMES_SHOWN).map(|u| shown(u)).collect();
    let more = users.len().saturating_sub(NAMES_SHOWN);
    let names = if more == 0 {
        shown_names.join(", ")
    } else {
        format!(
            "{} and {} more; --verbose lists them all",
            shown_names.join(", "),
            count(more)
        )
    };
    (!users.is_empty()).then(|| {
        format!(
            "error: {} user{} not attempted: interrupted ({names}); run again to convert the rest",
            count(users.len()),
            if users.len() == 1 { "" } else { "s" }
        )
    })
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

/// Prints the JSON document on stdout, and the `error:` lines on stderr as well (the users
/// not started in one line, unless `verbose`).
pub fn json(
    report: &Report,
    backend: &str,
    (dry_run, verbose): (bool, bool),
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
    let mut interrupted = Vec::new();
    for result in &report.results {
        match result.status {
            Status::Interrupted if !verbose => interrupted.push(result.user.clone()),
            Status::Failed | Status::Interrupted => error_line(result, err)?,
            _ => {}
        }
        restrictions_warning(result, err)?;
    }
    if let Some(line) = interrupted_line(&interrupted) {
        writeln!(err, "{line}")?;
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
    use whmtoken_core::{Report, Status, UserResult};

    fn report(statuses: &[(Status, usize)]) -> Report {
        let mut results = Vec::new();
        for (status, n) in statuses {
            for i in 0..*n {
                results.push(UserResult {
                    user: format!("u{i}"),
                    status: *status,
                    token_name: None,
                    token_hash_prefix: None,
                    restrictions_applied: None,
                    error: None,
                });
            }
        }
        Report { results }
    }

    #[test]
    fn the_summary_counts_every_status() {
        let r = report(&[
            (Status::Converted, 1_997),
            (Status::AlreadyConverted, 2),
            (Status::Failed, 1),
        ]);
        assert_eq!(
            super::summary_line(&r, false),
            "Converted 1,997, already converted 2, failed 1, not attempted 0."
        );
        let r = report(&[
            (Status::Replaced, 3),
            (Status::NoAccesshash, 1),
            (Status::Interrupted, 1_200),
        ]);
        assert_eq!(
            super::summary_line(&r, true),
            "Would convert 0, would replace 3, already converted 0, no access hash 1, failed 0, not attempted 1,200."
        );
    }

    #[test]
    fn users_not_started_are_one_line_with_the_first_names() {
        let names = |n: usize| -> Vec<String> { (1..=n).map(|i| format!("res{i:05}")).collect() };
        assert_eq!(super::interrupted_line(&[]), None);
        assert_eq!(
            super::interrupted_line(&names(1)).unwrap(),
            "error: 1 user not attempted: interrupted (res00001); run again to convert the rest"
        );
        assert_eq!(
            super::interrupted_line(&names(2_998)).unwrap(),
            "error: 2,998 users not attempted: interrupted (res00001, res00002, res00003, res00004, res00005 and 2,993 more; --verbose lists them all); run again to convert the rest"
        );
    }

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
