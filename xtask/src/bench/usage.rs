//! `whmtoken usage` on 2 GB of cPanel's logs: generated traffic (`whmtoken_fixtures::traffic`)
//! written once as one plain `access_log` of 2 GiB plus its `api_tokens_log`, and the same
//! traffic again as cPanel's gzip archives; measured against `LC_ALL=C grep -c '"a"'` over
//! the same plain files, and `zcat … | grep -c` over the archives, alternating, warm page
//! cache, median of [`RUNS`]. Targets: at most 1.0x each, and under 256 MiB of memory.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use camino::Utf8Path;
use whmtoken_fixtures::traffic::{self, Layout};

use super::{Sample, Tools, generated, median, timed};

/// The size of the plain `access_log`.
const ACCESS_LOG_BYTES: u64 = 2 << 30;
const RUNS: usize = 3;
/// The server the traffic is about: its accounts and tokens.
const RESELLERS: usize = 200;
const SEED: u64 = 5;

/// One kind of logs: the folder, and the baseline's shell command.
struct Logs {
    name: &'static str,
    folder: &'static str,
    baseline: &'static str,
    baseline_name: &'static str,
}

const LOGS: [Logs; 2] = [
    Logs {
        name: "plain",
        folder: "plain",
        baseline: "LC_ALL=C grep -c '\"a\"' access_log api_tokens_log > ../grep.out",
        baseline_name: "`LC_ALL=C grep -c '\"a\"'`",
    },
    Logs {
        name: "gzip archives",
        folder: "archived",
        baseline: "zcat archive/*.gz | LC_ALL=C grep -c '\"a\"' > ../grep.out",
        baseline_name: "`zcat … \\| LC_ALL=C grep -c '\"a\"'`",
    },
];

/// Measures both; returns the report's table.
pub(super) fn measure(tools: &Tools, out: &Path) -> Result<String, String> {
    let root = out.join("usage-v1");
    let server = root.join("server");
    generated(tools, &server, "files", RESELLERS, 2, SEED)?;
    write_traffic(&root)?;
    let mut table = String::from(
        "| logs | size on disk | baseline | whmtoken usage | ratio | peak RSS | target |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for logs in &LOGS {
        let folder = root.join(logs.folder);
        // In the logs' folder (`timed` keeps no working folder): `sh -c SCRIPT sh FOLDER`.
        let script = format!("cd \"$1\" && {}", logs.baseline);
        let baseline = || timed(Command::new("sh").args(["-c", &script, "sh"]).arg(&folder));
        let usage = || {
            timed(
                Command::new(&tools.whmtoken)
                    .arg("--config")
                    .arg(server.join("whmtoken.toml"))
                    .args(["usage", "--json", "--since", "1", "--logs"])
                    .arg(&folder),
            )
        };
        // Once each, untimed: the page cache holds the files for every timed run.
        baseline()?;
        usage()?;
        let mut pairs: Vec<(Sample, Sample)> = Vec::new();
        for _ in 0..RUNS {
            pairs.push((baseline()?, usage()?));
        }
        eprintln!("xtask: usage on {}: {pairs:?}", logs.name);
        let base = median(pairs.iter().map(|(b, _)| b.wall));
        let ours = median(pairs.iter().map(|(_, u)| u.wall));
        let ratio = median(pairs.iter().map(|(b, u)| u.wall / b.wall));
        let rss = pairs.iter().map(|(_, u)| u.max_rss_kb).fold(0.0, f64::max);
        writeln!(
            table,
            "| {} | {:.2} GiB | {} {base:.2} s | {ours:.2} s | {ratio:.2}x | {:.0} MiB | at most 1.0x, under 256 MiB |",
            logs.name,
            size_of(&folder)? as f64 / f64::from(1u32 << 30),
            logs.baseline_name,
            rss / 1024.0
        )
        .expect("write to a String");
    }
    Ok(format!(
        "\n`whmtoken usage --since 1 --logs DIR --json` on generated traffic ({RESELLERS} resellers, 2 tokens each; the same lines in both layouts), median of {RUNS} runs alternating with the baseline:\n\n{table}"
    ))
}

/// Writes the traffic once (a `done` file marks it written): the lines for a 2 GiB
/// `access_log`, counted from a sample, in both layouts.
fn write_traffic(root: &Path) -> Result<(), String> {
    if root.join("done").exists() {
        return Ok(());
    }
    let utf8 = |p: &Path| {
        Utf8Path::from_path(p)
            .map(Utf8Path::to_owned)
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))
    };
    let scenario = whmtoken_fixtures::generate(RESELLERS, 2, SEED);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let sample = root.join("sample");
    let _ = std::fs::remove_dir_all(&sample);
    let sample_lines = 20_000;
    traffic::write(
        &utf8(&sample)?,
        &scenario,
        sample_lines,
        SEED,
        now,
        Layout::Plain,
    )
    .map_err(|e| format!("{}: {e}", sample.display()))?;
    let per_line = std::fs::metadata(sample.join("access_log"))
        .map_err(|e| e.to_string())?
        .len() as f64
        / sample_lines as f64;
    let _ = std::fs::remove_dir_all(&sample);
    let lines = (ACCESS_LOG_BYTES as f64 / per_line) as u64;
    eprintln!(
        "xtask: writing {lines} lines of traffic, plain and archived, into {}",
        root.display()
    );
    for (folder, layout) in [("plain", Layout::Plain), ("archived", Layout::Archived)] {
        let folder = root.join(folder);
        let _ = std::fs::remove_dir_all(&folder);
        traffic::write(&utf8(&folder)?, &scenario, lines, SEED, now, layout)
            .map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    std::fs::write(root.join("done"), lines.to_string()).map_err(|e| e.to_string())
}

/// The bytes of the files in `folder` and its `archive/`.
fn size_of(folder: &Path) -> Result<u64, String> {
    let mut total = 0;
    for dir in [folder.to_owned(), folder.join("archive")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let meta = entry
                .map_err(|e| e.to_string())?
                .metadata()
                .map_err(|e| e.to_string())?;
            if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
