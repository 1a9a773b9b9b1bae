//! Every shell example in README.md, fixtures/README.md and docs/*.md runs as written
//! (issue: the documentation's examples run).
//!
//! Each file's shell blocks (```sh, ```bash, ```shell) run in order, as a reader runs them
//! from the workspace root after the README's set-up commands: in a fresh temporary folder
//! holding an empty `target/`, one folder per Markdown file (later blocks may use what
//! earlier ones wrote), under `sh -e`, with a folder holding `convert_accesshash_to_token`,
//! `whmtoken` (this test binary under those names) and `fake-server` (this package's
//! binary) first on `PATH`: each built by cargo for this test from the current sources,
//! none by the test itself (`support`). As a
//! safety net, `WHMTOKEN_CONFIG` names a file that does not exist, so that a command
//! missing its `--config` fails (exit 78) instead of reading the real server.
//!
//! Conventions in the Markdown, invisible once it is rendered:
//!
//! - `<!-- docs test: not run: REASON -->` on the line before a shell block: the block is
//!   skipped (it installs into the system, works on the real server, or runs cargo).
//! - `<!-- docs test: exit status N -->` on the line before a shell block: the block must
//!   exit with N instead of 0.
//! - A ```text or ```json block right after a shell block (only blank lines between) is what
//!   the shell block prints on stdout. Lines are compared with trailing blanks and trailing
//!   empty lines ignored, and every run of nine or more digits (times, and the token names
//!   made from them) reads as `<N>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod support;

/// The workspace root.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// How long one block may run.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

const DIRECTIVE: &str = "<!-- docs test:";

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Run { exit: i32 },
    Skip { reason: String },
}

/// One shell block, with what the Markdown says about it.
#[derive(Debug)]
struct Example {
    /// 1-based line of its opening fence.
    line: usize,
    code: String,
    mode: Mode,
    /// Its stdout, when an output block follows it.
    stdout: Option<String>,
}

/// A fenced block: the line of its opening fence, its language and its content, and
/// whether only blank lines separate it from the previous fenced block.
#[derive(Debug)]
struct Fence {
    line: usize,
    lang: String,
    content: String,
    /// The nearest non-blank line before the opening fence.
    before: Option<String>,
    follows_previous: bool,
}

fn fences(markdown: &str) -> Vec<Fence> {
    let mut fences = Vec::new();
    let mut open: Option<Fence> = None;
    let mut last_text: Option<String> = None;
    let mut only_blank_since_fence = false;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        match open.as_mut() {
            Some(_) if trimmed == "```" => {
                fences.push(open.take().expect("open"));
                last_text = None;
                only_blank_since_fence = true;
            }
            Some(fence) => {
                fence.content.push_str(line);
                fence.content.push('\n');
            }
            None if trimmed.starts_with("```") => {
                let info = trimmed.trim_start_matches('`').trim();
                open = Some(Fence {
                    line: index + 1,
                    lang: info.split_whitespace().next().unwrap_or("").to_owned(),
                    content: String::new(),
                    before: last_text.take(),
                    follows_previous: only_blank_since_fence,
                });
            }
            None if trimmed.is_empty() => {}
            None => {
                last_text = Some(trimmed.to_owned());
                only_blank_since_fence = false;
            }
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    fences
}

fn is_shell(lang: &str) -> bool {
    matches!(lang, "sh" | "bash" | "shell")
}

/// The shell examples of a Markdown file, with their directives and expected outputs.
fn examples(markdown: &str) -> Result<Vec<Example>, String> {
    let fences = fences(markdown);
    let mut examples: Vec<Example> = Vec::new();
    let mut directives_used = 0;
    for (i, fence) in fences.iter().enumerate() {
        let directive = fence
            .before
            .as_deref()
            .filter(|line| line.starts_with(DIRECTIVE));
        if !is_shell(&fence.lang) {
            if directive.is_some() {
                return Err(format!(
                    "line {}: a docs test directive before a {:?} block, not a shell block",
                    fence.line, fence.lang
                ));
            }
            let after_shell = i > 0 && is_shell(&fences[i - 1].lang);
            if fence.follows_previous
                && after_shell
                && matches!(fence.lang.as_str(), "text" | "json")
            {
                let example = examples.last_mut().expect("the shell block before");
                example.stdout = Some(fence.content.clone());
            }
            continue;
        }
        let mode = match directive {
            None => Mode::Run { exit: 0 },
            Some(line) => {
                directives_used += 1;
                parse_directive(line).map_err(|e| format!("line {}: {e}", fence.line))?
            }
        };
        examples.push(Example {
            line: fence.line,
            code: fence.content.clone(),
            mode,
            stdout: None,
        });
    }
    let directives = markdown
        .lines()
        .filter(|line| line.trim().starts_with(DIRECTIVE))
        .count();
    if directives != directives_used {
        return Err(format!(
            "{} docs test directive(s) not on the line right before a shell block",
            directives - directives_used
        ));
    }
    Ok(examples)
}

fn parse_directive(line: &str) -> Result<Mode, String> {
    let body = line
        .strip_prefix(DIRECTIVE)
        .and_then(|rest| rest.trim_end().strip_suffix("-->"))
        .map(str::trim)
        .ok_or_else(|| format!("malformed directive {line:?}"))?;
    if let Some(reason) = body.strip_prefix("not run:") {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(format!("{line:?} gives no reason"));
        }
        return Ok(Mode::Skip {
            reason: reason.to_owned(),
        });
    }
    if let Some(status) = body.strip_prefix("exit status ") {
        let exit = status
            .trim()
            .parse()
            .map_err(|_| format!("{line:?}: not a status"))?;
        return Ok(Mode::Run { exit });
    }
    Err(format!(
        "unknown directive {line:?} (`not run: REASON` or `exit status N`)"
    ))
}

/// Output as compared: trailing blanks and empty lines dropped, runs of nine or more digits
/// read as `<N>`.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut digits = String::new();
        for c in line.trim_end().chars().chain(std::iter::once('\n')) {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.len() >= 9 {
                out.push_str("<N>");
            } else {
                out.push_str(&digits);
            }
            digits.clear();
            out.push(c);
        }
    }
    out.trim_end_matches('\n').to_owned()
}

/// The folder holding the three programs the examples run by name, made by `main`.
static PROGRAMS: OnceLock<PathBuf> = OnceLock::new();

fn programs() -> &'static Path {
    PROGRAMS.get().expect("main made the programs' folder")
}

/// What one block did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `code` under `sh -e` in `cwd`, its output kept in `scratch`.
fn run_block(code: &str, cwd: &Path, scratch: &Path) -> Ran {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![programs().to_owned()];
    paths.extend(std::env::split_paths(&path));
    let (stdout_path, stderr_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-e", "-c", code])
        .current_dir(cwd)
        .env("PATH", std::env::join_paths(paths).expect("PATH"))
        .env("WHMTOKEN_CONFIG", scratch.join("no-config-given.toml"))
        .env_remove("WHMTOKEN_LOG")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run sh");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sh") {
            break Some(status);
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |path: &Path| String::from_utf8_lossy(&fs::read(path).expect("output")).into_owned();
    Ran {
        code: status.and_then(|s| s.code()),
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
        elapsed: started.elapsed(),
    }
}

/// Runs the examples of the Markdown file `relative` (to the workspace root); returns how
/// many ran, or every failure.
fn check_file(relative: &str) -> Result<usize, String> {
    let markdown = fs::read_to_string(Path::new(WORKSPACE).join(relative))
        .map_err(|e| format!("{relative}: {e}"))?;
    let examples = examples(&markdown).map_err(|e| format!("{relative}: {e}"))?;
    let cwd = tempfile::tempdir().expect("temporary folder");
    fs::create_dir(cwd.path().join("target")).expect("target/");
    let scratch = tempfile::tempdir().expect("temporary folder");
    let mut ran = 0;
    for example in &examples {
        let Mode::Run { exit } = example.mode else {
            continue;
        };
        let outcome = run_block(&example.code, cwd.path(), scratch.path());
        ran += 1;
        let place = format!("{relative}:{}", example.line);
        let shown = format!(
            "```sh\n{}```\nexit status {:?} after {:.1?}\n--- stdout\n{}--- stderr\n{}",
            example.code, outcome.code, outcome.elapsed, outcome.stdout, outcome.stderr
        );
        if outcome.code != Some(exit) {
            // Later blocks rely on this one: stop at the first failure.
            return Err(format!("{place}: exit status {exit} expected\n{shown}"));
        }
        if let Some(expected) = &example.stdout {
            let (expected, actual) = (normalized(expected), normalized(&outcome.stdout));
            if expected != actual {
                let first = expected
                    .lines()
                    .zip(actual.lines())
                    .position(|(e, a)| e != a)
                    .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
                return Err(format!(
                    "{place}: stdout differs from the output block (normalized line {}):\n\
                     --- the doc shows\n{expected}\n--- it printed\n{actual}\n{shown}",
                    first + 1
                ));
            }
        }
    }
    Ok(ran)
}

fn readme_examples_run() {
    let ran = check_file("README.md").unwrap_or_else(|e| panic!("{e}"));
    assert!(ran >= 3, "only {ran} README examples ran");
}

fn fixtures_readme_examples_run() {
    let ran = check_file("fixtures/README.md").unwrap_or_else(|e| panic!("{e}"));
    assert!(ran >= 2, "only {ran} fixtures/README.md examples ran");
}

fn docs_folder_examples_run() {
    let mut files: Vec<String> = fs::read_dir(Path::new(WORKSPACE).join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Markdown in docs/");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| check_file(file).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn the_conventions_are_read_as_documented() {
    let markdown = "\
Intro.

<!-- docs test: not run: installs into /usr/local/sbin -->
```sh
install x /usr/local/sbin/
```

```sh
echo accesshash-1700000000
```

```text
accesshash-1800000000
```

<!-- docs test: exit status 65 -->
```bash
false
```

```json
{}
```

Prose between.

```json
{\"not\": \"output\"}
```

```rust
fn main() {}
```
";
    let parsed = examples(markdown).unwrap();
    let modes: Vec<&Mode> = parsed.iter().map(|e| &e.mode).collect();
    assert_eq!(
        modes,
        [
            &Mode::Skip {
                reason: "installs into /usr/local/sbin".into()
            },
            &Mode::Run { exit: 0 },
            &Mode::Run { exit: 65 },
        ]
    );
    assert_eq!(parsed[0].stdout, None);
    assert_eq!(
        normalized(parsed[1].stdout.as_deref().unwrap()),
        normalized("accesshash-1700000000\n")
    );
    assert_eq!(parsed[2].stdout.as_deref(), Some("{}\n"));
    assert_eq!(parsed[1].line, 8);

    for bad in [
        "<!-- docs test: skip -->\n```sh\ntrue\n```\n",
        "<!-- docs test: not run: -->\n```sh\ntrue\n```\n",
        "<!-- docs test: exit status 65 -->\n```json\n{}\n```\n",
        "<!-- docs test: exit status 65 -->\n\nProse.\n\n```sh\ntrue\n```\n",
    ] {
        assert!(examples(bad).is_err(), "{bad}");
    }
}

fn main() -> ExitCode {
    if let Some(status) = support::act_as_a_program() {
        return status;
    }
    let folder = tempfile::tempdir().expect("temporary folder");
    support::link_programs(folder.path());
    PROGRAMS.set(folder.path().to_owned()).expect("set once");
    support::run(tests![
        readme_examples_run,
        fixtures_readme_examples_run,
        docs_folder_examples_run,
        the_conventions_are_read_as_documented,
    ])
}
