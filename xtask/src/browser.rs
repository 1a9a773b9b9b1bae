//! `cargo xtask browser`: `whmtoken report` checked as its users see it. A small generated
//! fleet (`browser::documents`, a token named as markup among it) is written as the page,
//! CSV and JSON Lines by the debug build; the CSV and JSON Lines are read back with
//! Python's `csv` and `json` (`browser/readback.py`); the page is opened in headless
//! Chromium driven by Selenium (`browser/check.py`): no console error, the chart and the
//! tables in a screenshot (`target/browser/page.png`, and `page-narrow.png` at 760 pixels),
//! filtering by severity and sorting by server change the rows, text is found as shown,
//! the host given with `--missing` is shown, headers sit over their columns, rows are 24
//! pixels, cut cells have titles, an opened server shows its findings, the markup is shown
//! as text and runs nothing; and a fleet of one empty server (`edge.html`) says `1 server`
//! and why each table is empty.
//!
//! Debian's `chromium` and `chromium-driver` are installed with apt-get when missing (as
//! root; without root the check says so and is skipped), Selenium from PyPI (pinned) into
//! a virtualenv in `target/tools/selenium`. `cargo xtask bench report` uses the same.

pub(crate) mod documents;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run, target_dir, throwaway_root};

/// Selenium, pinned.
const SELENIUM: &str = "selenium==4.50.0";
const CHECK: &str = include_str!("browser/check.py");
const READBACK: &str = include_str!("browser/readback.py");

pub(crate) fn browser() -> Result<(), String> {
    let Some(chromium) = Chromium::ready()? else {
        return Ok(());
    };
    cargo(&["build", "-p", "whmtoken-cli", "--locked"])?;
    let work = target_dir().join("browser");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    let audits = work.join("audits");
    let generated = documents::write(&audits, 12, 40, true)?;
    let report = |format: &str, file: &str| -> Result<PathBuf, String> {
        let path = work.join(file);
        run(Command::new(target_dir().join("debug/whmtoken"))
            .args([
                "report",
                "--missing",
                documents::MISSING_HOST,
                "--format",
                format,
                "-o",
            ])
            .arg(&path)
            .arg(&audits))?;
        Ok(path)
    };
    let page = report("html", "fleet.html")?;
    let csv = report("csv", "findings.csv")?;
    let jsonl = report("jsonl", "fleet.jsonl")?;
    run(Command::new("python3")
        .arg(script(&work, "readback.py", READBACK)?)
        .arg(&csv)
        .arg(&jsonl)
        // Each finding, and the host that could not be audited.
        .arg((generated.findings + 1).to_string())
        .arg(generated.accounts.to_string())
        .arg(documents::HOSTILE_TOKEN))?;
    // A fleet of one server with no account and no finding: the empty states.
    let edge_audits = work.join("edge");
    std::fs::create_dir_all(&edge_audits).map_err(|e| format!("{}: {e}", edge_audits.display()))?;
    let empty = serde_json::json!({
        "version": 1, "host": "empty.example.net", "backend": "files",
        "server": { "allow_deprecated_accesshash": false, "findings": [] },
        "accounts": [], "summary": { "critical": 0, "warning": 0, "info": 0 }, "usage": null,
    });
    let edge_doc = edge_audits.join("empty.json");
    std::fs::write(&edge_doc, empty.to_string())
        .map_err(|e| format!("{}: {e}", edge_doc.display()))?;
    let edge = work.join("edge.html");
    run(Command::new(target_dir().join("debug/whmtoken"))
        .args(["report", "-o"])
        .arg(&edge)
        .arg(&edge_audits))?;
    let measured = chromium.check(&page, &work.join("page.png"), Some(&edge))?;
    eprintln!(
        "xtask: browser: the page of {} servers ({} findings) in headless Chromium: no console error, chart and table drawn (target/browser/page.png), filter and sort change the rows, the markup-named token shown as text and never run; {measured}",
        generated.servers, generated.findings
    );
    Ok(())
}

/// Headless Chromium, its driver, and the Python with Selenium.
pub(crate) struct Chromium {
    chromium: PathBuf,
    driver: PathBuf,
    python: PathBuf,
}

impl Chromium {
    /// Chromium and Selenium, installed when missing; `None` (said in one line) when
    /// Chromium is missing and this is not root.
    pub(crate) fn ready() -> Result<Option<Self>, String> {
        if find("chromium").is_none() || find("chromedriver").is_none() {
            if !throwaway_root::is_root() {
                eprintln!(
                    "xtask: not root and chromium or chromedriver is missing: skipped the page's check in a browser (as root it installs them: apt-get install chromium chromium-driver)"
                );
                return Ok(None);
            }
            run(Command::new("apt-get").args(["update", "-q"]))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        }
        let venv = target_dir().join("tools/selenium");
        let python = venv.join("bin/python");
        if !python.exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SELENIUM,
        ]))?;
        let missing = |name: &str| format!("{name} is still missing after apt-get install");
        Ok(Some(Self {
            chromium: find("chromium").ok_or_else(|| missing("chromium"))?,
            driver: find("chromedriver").ok_or_else(|| missing("chromedriver"))?,
            python,
        }))
    }

    /// Runs `check.py` on `page`, saving its first screen to `screenshot`: the times it
    /// measured, as JSON.
    pub(crate) fn check(
        &self,
        page: &Path,
        screenshot: &Path,
        edge: Option<&Path>,
    ) -> Result<serde_json::Value, String> {
        let work = page.parent().unwrap_or(Path::new("."));
        let mut command = Command::new(&self.python);
        command
            .arg(script(work, "check.py", CHECK)?)
            .arg(&self.chromium)
            .arg(&self.driver)
            .arg(page)
            .arg(screenshot)
            .args(edge);
        let shown = format!("{command:?}");
        let out = command
            .output()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|_| {
            format!(
                "browser: {shown} printed no result ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if result["ok"] != true || !out.status.success() {
            return Err(format!("browser: {}: {result}", page.display()));
        }
        Ok(result)
    }
}

/// Writes the script `text` as `dir/name`, returning its path.
fn script(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `name`'s path on `PATH`, if any.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| file.is_file())
}
