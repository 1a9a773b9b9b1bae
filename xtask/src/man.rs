//! The sections the man pages add to what `clap_mangen` renders from the command-line
//! definitions: EXIT STATUS, FILES, ENVIRONMENT and EXAMPLES, and hyphenation turned off
//! (`.nh`) so that a name such as `allow-emaillimits-pkgs` is never split at the end of a
//! line and can be copied from the page.
//!
//! The exit statuses come from the same texts `--help` prints (the README's table for the
//! converter, whose `--help` is cPanel's), and the examples from the README: each line of
//! its `sh` blocks that runs the page's command, made one an operator runs on a real server
//! ([`for_operators`]: `--config` and its value dropped, the server's own config applying;
//! a line that only makes sense as the docs test's left out, and so is a block the docs
//! test expects to fail), and each
//! `<!-- man example: COMMAND -->` comment, an example for the pages alone (one the docs
//! test cannot run, such as a restore of a run id it cannot know).

use std::path::{Path, PathBuf};

use crate::workspace_root;

/// The sections every page has.
pub(crate) const SECTIONS: [&str; 6] = [
    "DESCRIPTION",
    "OPTIONS",
    "EXIT STATUS",
    "FILES",
    "ENVIRONMENT",
    "EXAMPLES",
];

/// The shipped pages (`*.8.gz` in `dir`) as `man -l` shows them at 80 columns: each has
/// [`SECTIONS`], and every ACL name its source holds is shown whole, and no line ends in
/// a hyphen (a word broken across lines).
pub(crate) fn check_rendered(dir: &Path) -> Result<(), String> {
    crate::tools::require(&[("man", "man-db")])?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".8.gz"))
        .collect();
    pages.sort();
    if pages.is_empty() {
        return Err(format!("{}: no man pages", dir.display()));
    }
    for page in &pages {
        let shown = crate::output(
            std::process::Command::new("man")
                .arg("-l")
                .arg(page)
                .env("MANWIDTH", "80")
                .env("MAN_KEEP_FORMATTING", "")
                .env("LANG", "C.UTF-8"),
        )?;
        let source = crate::output(std::process::Command::new("zcat").arg(page))?;
        let lines: Vec<&str> = shown.lines().map(str::trim).collect();
        for section in SECTIONS {
            if !lines.contains(&section) {
                return Err(format!(
                    "{}: no {section} section at 80 columns",
                    page.display()
                ));
            }
        }
        let words: std::collections::BTreeSet<&str> = shown
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | ':' | '`'))
            .collect();
        // A name with a hyphen is the one a line could break (with no hyphen, `.nh` holds).
        for acl in whmtoken_core::acl::BUILTIN_ACLS
            .iter()
            .filter(|a| a.contains('-'))
        {
            if source.contains(&acl.replace('-', "\\-")) && !words.contains(acl) {
                return Err(format!(
                    "{}: the ACL name {acl} is not shown whole at 80 columns",
                    page.display()
                ));
            }
        }
        if let Some(line) = shown
            .lines()
            .find(|l| l.ends_with(['-', '\u{2010}']) && !l.ends_with(" -"))
        {
            return Err(format!(
                "{}: a word is broken at the end of a line at 80 columns: {line:?}",
                page.display()
            ));
        }
    }
    eprintln!(
        "xtask: {} man pages at 80 columns (man -l): {} each, ACL names whole, no word broken",
        pages.len(),
        SECTIONS.join(", ")
    );
    Ok(())
}

/// The page `roff` (as clap_mangen rendered it for the command `page`, such as
/// `whmtoken-audit`), finished: hyphenation off, clap's EXTRA section named NOTES, and
/// the added sections before VERSION.
pub(crate) fn finish(page: &str, exit_statuses: &str, roff: &str) -> Result<String, String> {
    let added = [
        ("EXIT STATUS", exit_status(page, exit_statuses)?),
        ("FILES", FILES.to_owned()),
        ("ENVIRONMENT", ENVIRONMENT.to_owned()),
        ("EXAMPLES", examples(page)?),
    ]
    .iter()
    .map(|(title, body)| format!(".SH \"{title}\"\n{body}"))
    .collect::<String>();
    let mut out = String::new();
    let mut inserted = false;
    let mut version_next = false;
    for line in acl_lists_filled(roff).lines() {
        // clap_mangen shows `v` and the version as `--version` prints it: `v(whmtoken)
        // 0.1.0`; the section says the version alone.
        let line = if std::mem::take(&mut version_next) {
            line.trim_start_matches('v')
                .trim_start_matches("(whmtoken) ")
        } else {
            line
        };
        version_next = line.starts_with(".SH VERSION");
        if line.starts_with(".SH VERSION") && !inserted {
            out.push_str(&added);
            inserted = true;
        }
        if line == ".SH EXTRA" {
            out.push_str(".SH NOTES\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with(".TH ") {
            out.push_str(".nh\n");
        }
    }
    if !inserted {
        out.push_str(&added);
    }
    Ok(out)
}

/// `roff` with each run of indented lines of ACL names (the `--help` text's list, laid
/// out for 80 columns there) made one filled paragraph, which the reader's width lays out.
fn acl_lists_filled(roff: &str) -> String {
    let is_acl_line = |line: &str| {
        line.starts_with("   ")
            && line.split_whitespace().all(|word| {
                let name = word.replace("\\-", "-");
                whmtoken_core::acl::BUILTIN_ACLS.contains(&name.as_str())
            })
    };
    let mut out = String::new();
    let mut in_list = false;
    for line in roff.lines() {
        if is_acl_line(line) {
            out.push_str(if in_list { " " } else { ".PP\n" });
            out.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
            in_list = true;
            continue;
        }
        if in_list {
            out.push('\n');
            in_list = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    if in_list {
        out.push('\n');
    }
    out
}

const FILES: &str = r".TP
\fI/etc/whmtoken.toml\fR
Which server the commands work on. The installed file is all comments, which means
cPanel's own files on \fI/\fR.
.TP
\fI/var/cpanel/authn/api_tokens_v2/whostmgr/\fRUSER\fI.json\fR
The API tokens of each WHM user (written by conversion).
.TP
\fI~USER/.accesshash\fR
Each user's access hash (read by conversion, removed by retire, put back by restore).
.TP
\fI/var/cpanel/accounting.log\fR
The audit trail: one line per token created, access hash retired or restored.
.TP
\fI/var/cpanel/cpanel.config\fR
cPanel's settings, among them \fBallow_deprecated_accesshash\fR.
.TP
\fI/var/lib/whmtoken/\fR
The journals and backups of retire runs (\fBwhmtoken runs\fR lists them).
.TP
\fI/usr/local/cpanel/logs/\fR
cPanel's access logs, which \fBwhmtoken usage\fR and \fBwhmtoken audit\fR read.
";

const ENVIRONMENT: &str = r".TP
\fBWHMTOKEN_CONFIG\fR
The config file to read when \fB\-\-config\fR is not given (else \fI/etc/whmtoken.toml\fR).
.TP
\fBWHMTOKEN_LOG\fR
Logs to stderr, off by default: an env\-filter such as \fBinfo\fR or \fBdebug\fR. No log
line ever shows an access hash, or more of a token than the first 12 hex characters of its
hash.
";

/// The exit statuses of `page`: the README's table for the converter (and `whmtoken
/// convert`), else `whmtoken`'s own summary of every subcommand's.
fn exit_status(page: &str, whmtoken_statuses: &str) -> Result<String, String> {
    if !matches!(page, "convert_accesshash_to_token" | "whmtoken-convert") {
        return Ok(format!("{}\n", escape(whmtoken_statuses)));
    }
    let readme = readme()?;
    let table = readme
        .split_once("### Exit status\n")
        .map(|(_, rest)| rest)
        .ok_or("README.md: no \"### Exit status\" section")?;
    let mut out = String::new();
    for row in table.lines().skip_while(|l| !l.starts_with("| 0 ")) {
        let Some(cells) = row.strip_prefix("| ").and_then(|r| r.strip_suffix(" |")) else {
            break;
        };
        let (status, meaning) = cells.split_once(" | ").ok_or("a table row")?;
        out.push_str(&format!(
            ".TP\n\\fB{status}\\fR\n{}\n",
            escape(&meaning.replace('`', ""))
        ));
    }
    if out.is_empty() {
        return Err("README.md: the exit status table has no rows".into());
    }
    Ok(out)
}

/// The lines of the README's `sh` blocks that run `page`'s command, as a no-fill block.
fn examples(page: &str) -> Result<String, String> {
    let readme = readme()?;
    let lines = command_lines(&readme);
    let wanted: Vec<&str> = match page {
        "convert_accesshash_to_token" | "whmtoken-convert" => lines
            .iter()
            .filter(|(command, _)| *command == "convert_accesshash_to_token")
            .map(|(_, line)| line.as_str())
            .collect(),
        "whmtoken" => {
            let mut seen = std::collections::BTreeSet::new();
            lines
                .iter()
                .filter(|(command, _)| command.starts_with("whmtoken-"))
                .filter(|(command, _)| seen.insert(command.as_str()))
                .map(|(_, line)| line.as_str())
                .collect()
        }
        page => lines
            .iter()
            .filter(|(command, _)| *command == page)
            .map(|(_, line)| line.as_str())
            .collect(),
    };
    if wanted.is_empty() {
        return Err(format!("README.md has no example of {page} in an sh block"));
    }
    let intro = if page == "whmtoken-convert" {
        "whmtoken convert takes what convert_accesshash_to_token takes:\n"
    } else {
        "From the README (\\fI/usr/share/doc/whmtoken/README.md\\fR):\n"
    };
    let mut seen = std::collections::BTreeSet::new();
    let body: String = wanted
        .iter()
        .filter(|l| seen.insert(**l))
        .map(|l| format!("{}\n", escape(l)))
        .collect();
    Ok(format!("{intro}.PP\n.nf\n.RS 4\n{body}.RE\n.fi\n"))
}

/// The README comment giving an example for the man pages alone.
const MAN_EXAMPLE: &str = "<!-- man example: ";

/// Each example for the pages in the README, in its order: (its page, the line as an
/// operator runs it). The lines of its `sh` blocks that run one of the commands, made
/// operators' ([`for_operators`]; those only the docs test can run left out), and the
/// `<!-- man example: COMMAND -->` comments.
fn command_lines(readme: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut in_sh = false;
    // The block after `<!-- docs test: exit status N -->` (N not 0) shows a failure on
    // purpose (a user the server does not have): not an example to follow.
    let mut failing = false;
    for line in readme.lines() {
        if let Some(tag) = line.strip_prefix("```") {
            in_sh = !in_sh && tag == "sh" && !failing;
            failing = false;
            continue;
        }
        if let Some(status) = line
            .trim()
            .strip_prefix("<!-- docs test: exit status ")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            failing = status.trim() != "0";
            continue;
        }
        if let Some(example) = line
            .trim()
            .strip_prefix(MAN_EXAMPLE)
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            let example = example.trim();
            if let Some(page) = example.split(" | ").find_map(page_of) {
                found.push((page, example.to_owned()));
            }
            continue;
        }
        if !in_sh {
            continue;
        }
        // The command may be the first of a pipeline, or read one (`printf … | whmtoken …`).
        let Some(page) = line.split(" | ").find_map(page_of) else {
            continue;
        };
        if let Some(line) = for_operators(line) {
            found.push((page, line));
        }
    }
    found
}

/// A README line as an operator runs it on a real server: every `--config PATH` dropped
/// (the server's own config applies). `None` for a line that only makes sense as the docs
/// test's: one that still names the workspace (`target/…`), runs a command substitution
/// (`$(cat target/run-id)`), or pipes our command's output into another (`| grep -c …`,
/// a check of the output, not a use), or writes a secret on the command line (`printf
/// '<secret>' | whmtoken verify …`).
fn for_operators(line: &str) -> Option<String> {
    // A secret written on the command line stays in the shell's history: not an example.
    if line.contains("$(") || line.contains('`') || line.starts_with("printf ") {
        return None;
    }
    let segments: Vec<&str> = line.split(" | ").collect();
    let ours = segments.iter().position(|s| page_of(s).is_some())?;
    if ours + 1 != segments.len() {
        return None;
    }
    let mut words = Vec::new();
    let mut rest = line.split(' ');
    while let Some(word) = rest.next() {
        if word == "--config" {
            rest.next();
        } else if !word.starts_with("--config=") {
            words.push(word);
        }
    }
    let line = words.join(" ");
    (!line.contains("target/")).then_some(line)
}

/// The page of the command a shell command runs, if it is one of ours.
fn page_of(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.first()?.trim_start_matches("/usr/sbin/") {
        "convert_accesshash_to_token" => Some("convert_accesshash_to_token".to_owned()),
        "whmtoken" => {
            // The first word that is neither an option nor `--config`'s value.
            let mut rest = words[1..].iter();
            while let Some(word) = rest.next() {
                if *word == "--config" {
                    rest.next();
                } else if !word.starts_with('-') {
                    return Some(format!("whmtoken-{word}"));
                }
            }
            None
        }
        _ => None,
    }
}

fn readme() -> Result<String, String> {
    let path = workspace_root().join("README.md");
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Text as roff shows it: backslashes and dashes escaped (a dash stays a plain `-` when
/// copied), and a line never starting with a control character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_lines_are_matched_to_their_pages() {
        let readme = "```sh\n/usr/sbin/convert_accesshash_to_token --verbose\n\
            whmtoken --config x.toml retire --all-resellers\nwhmtoken runs | grep -c x\necho no\n```\n\
            ```text\nwhmtoken audit [USER]...\n```\n\
            <!-- man example: whmtoken runs -->\n";
        let found = command_lines(readme);
        assert_eq!(
            found,
            [
                (
                    "convert_accesshash_to_token".to_owned(),
                    "/usr/sbin/convert_accesshash_to_token --verbose".to_owned()
                ),
                (
                    "whmtoken-retire".to_owned(),
                    "whmtoken retire --all-resellers".to_owned()
                ),
                ("whmtoken-runs".to_owned(), "whmtoken runs".to_owned()),
            ]
        );
        let failing = "<!-- docs test: exit status 65 -->\n```sh\nwhmtoken audit ghost\n```\n\
            ```sh\nwhmtoken audit root\n```\n";
        assert_eq!(
            command_lines(failing),
            [(
                "whmtoken-audit".to_owned(),
                "whmtoken audit root".to_owned()
            )],
            "a block that fails on purpose is no example"
        );
        let piped = "```sh\ncat secret-file | whmtoken --config c.toml verify bob\n```\n";
        assert_eq!(command_lines(piped)[0].0, "whmtoken-verify");
        assert_eq!(escape(".a-b\\c"), "\\&.a\\-b\\ec");
    }

    #[test]
    fn examples_are_lines_an_operator_runs_on_a_real_server() {
        for (line, operators) in [
            (
                "whmtoken --config target/runbook/whmtoken.toml retire --all-resellers --dry-run",
                Some("whmtoken retire --all-resellers --dry-run"),
            ),
            (
                "convert_accesshash_to_token --config target/x/whmtoken.toml --verbose root bob",
                Some("convert_accesshash_to_token --verbose root bob"),
            ),
            (
                "printf 'x' | whmtoken --config target/r/whmtoken.toml verify bob",
                None,
            ),
            (
                "whmtoken --config target/r/whmtoken.toml verify bob < secret-file",
                Some("whmtoken verify bob < secret-file"),
            ),
            (
                "whmtoken --config target/r/whmtoken.toml runs | grep -c 'restored at'",
                None,
            ),
            (
                "whmtoken --config c.toml restore \"$(cat target/run-id)\" --json",
                None,
            ),
            (
                "whmtoken --config c.toml retire root --json > target/retired.json",
                None,
            ),
        ] {
            assert_eq!(for_operators(line).as_deref(), operators, "{line}");
        }
    }

    #[test]
    fn the_pages_examples_from_the_readme_run_on_a_real_server() {
        for page in [
            "convert_accesshash_to_token",
            "whmtoken",
            "whmtoken-convert",
            "whmtoken-audit",
            "whmtoken-verify",
            "whmtoken-retire",
            "whmtoken-restore",
            "whmtoken-runs",
            "whmtoken-usage",
            "whmtoken-report",
        ] {
            let examples = examples(page).unwrap();
            for test_only in [
                "target/",
                "$(",
                "| grep",
                "| sed",
                "\\-\\-config ",
                "printf",
            ] {
                assert!(
                    !examples.contains(test_only),
                    "{page}: {test_only}\n{examples}"
                );
            }
        }
        let runs = examples("whmtoken-runs").unwrap();
        assert!(runs.contains("\\-\\-prune \\-\\-older\\-than"), "{runs}");
        let retire = examples("whmtoken-retire").unwrap();
        assert!(
            retire.contains("\\-\\-setting\\-only \\-\\-disable\\-accesshash\\-auth\n"),
            "{retire}"
        );
    }
}
