//! `cargo xtask bench report`: `whmtoken report` at fleet scale. 1,000 generated audit
//! documents of 1,000 accounts each (`browser::documents`, kept in
//! `target/bench/report/audits` for the next run) written as the page by the release
//! build, timed with its peak memory (GNU time); then the page opened in headless Chromium
//! (`browser::Chromium`): its first screen, the findings read after it, and sorting and
//! filtering the findings (by severity, and by text as shown), timed in the page. The
//! goals: the page in under 10 s and 1 GiB, its first screen in under 2 s, sorting and
//! filtering answering in under 200 ms (a search shows its first rows at once and goes
//! on in slices of 50 ms).

use std::fmt::Write as _;
use std::process::Command;

use crate::browser::{Chromium, documents};
use crate::{cargo, target_dir};

const SERVERS: usize = 1_000;
const ACCOUNTS: usize = 1_000;

pub(super) fn measure() -> Result<String, String> {
    cargo(&["build", "--release", "-p", "whmtoken-cli", "--locked"])?;
    let dir = target_dir().join("bench/report");
    let audits = dir.join("audits");
    // Named after the generator's version: documents of an older generator are made again.
    let marker = dir.join(format!("generated-v{}", documents::VERSION));
    let findings = match std::fs::read_to_string(&marker) {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|e| format!("{}: {e}", marker.display()))?,
        Err(_) => {
            eprintln!(
                "xtask: bench report: generating {SERVERS} audit documents of {ACCOUNTS} accounts"
            );
            let _ = std::fs::remove_dir_all(&audits);
            let generated = documents::write(&audits, SERVERS, ACCOUNTS, true)?;
            std::fs::write(&marker, generated.findings.to_string())
                .map_err(|e| format!("{}: {e}", marker.display()))?;
            generated.findings
        }
    };
    let input: u64 = std::fs::read_dir(&audits)
        .map_err(|e| format!("{}: {e}", audits.display()))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let page = dir.join("fleet.html");
    let sample = super::timed(
        Command::new(target_dir().join("release/whmtoken"))
            .args(["report", "--missing", documents::MISSING_HOST, "-o"])
            .arg(&page)
            .arg(&audits),
    )?;
    let size = std::fs::metadata(&page)
        .map_err(|e| format!("{}: {e}", page.display()))?
        .len();
    let mib = |bytes: f64| bytes / f64::from(1 << 20);
    let mut notes = format!(
        "## whmtoken report, {SERVERS} servers x {ACCOUNTS} accounts ({findings} findings)\n\n\
         | measure | result | goal |\n| --- | --- | --- |\n\
         | input (audit documents) | {:.0} MiB | |\n\
         | writing the page | {:.2} s ({:.2} s of CPU, user and system), peak {:.0} MiB | < 10 s, < 1024 MiB |\n\
         | the page | {:.0} MiB | |\n",
        mib(input as f64),
        sample.wall,
        sample.user + sample.system,
        sample.max_rss_mib(),
        mib(size as f64),
    );
    match Chromium::ready()? {
        None => notes.push_str("| the page in Chromium | skipped (not root, no chromium) | |\n"),
        Some(chromium) => {
            let measured = chromium.check(&page, &dir.join("page.png"), None)?;
            let ms = |key: &str| measured[key].as_f64().unwrap_or(f64::NAN);
            let texts: Vec<String> = measured["text_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{:.0} ms (done {:.0} ms)",
                        t[0].as_f64().unwrap_or(f64::NAN),
                        t[1].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            let _ = write!(
                notes,
                "| first screen: totals, chart, servers (page script done, drawn) | {:.0} ms, {:.0} ms | < 2000 ms |\n\
                 | the findings read and drawn | {:.0} ms | |\n\
                 | filter the findings by severity (first rows, done) | {:.0} ms, {:.0} ms | < 200 ms |\n\
                 | sort the findings by server | {:.0} ms | < 200 ms |\n\
                 | filter by text, the first search then two more (first rows, done) | {} | < 200 ms |\n",
                ms("ready_ms"),
                ms("painted_ms"),
                ms("findings_ms"),
                ms("filter_ms"),
                ms("filter_done_ms"),
                ms("sort_ms"),
                texts.join("; "),
            );
        }
    }
    let file = target_dir().join("bench/report-fleet.md");
    std::fs::write(&file, &notes).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(notes)
}
