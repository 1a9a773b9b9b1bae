//! `cargo xtask bench`: the converter against an I/O floor, side by side, on generated fake
//! servers. It prints a table and writes it to `target/bench/report.md`. A benchmark, not
//! a test: nothing here runs in CI. `cargo xtask bench serve` measures the fake WHM alone
//! (the `serve` module), `cargo xtask bench usage` `whmtoken usage` on 2 GB of logs alone
//! (the `usage` module).

mod filesystems;
mod report;
mod serve;
mod usage;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, target_dir};

/// One measured command: wall, user and system seconds, peak resident kilobytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) wall: f64,
    pub(crate) user: f64,
    pub(crate) system: f64,
    max_rss_kb: f64,
}

impl Sample {
    /// The peak resident memory, in MiB.
    pub(crate) fn max_rss_mib(&self) -> f64 {
        self.max_rss_kb / 1024.0
    }
}

/// What one server size is measured with.
struct Case {
    backend: &'static str,
    resellers: usize,
    repeats: usize,
}

const CASES: [Case; 4] = [
    Case {
        backend: "files",
        resellers: 1_000,
        repeats: 5,
    },
    Case {
        backend: "files",
        resellers: 10_000,
        repeats: 3,
    },
    // Nine pairs: a SQLite run is under a second, and its floor is held to 1.1x.
    Case {
        backend: "sqlite",
        resellers: 10_000,
        repeats: 9,
    },
    Case {
        backend: "sqlite",
        resellers: 50_000,
        repeats: 9,
    },
];

/// The threads of the threaded floor: the reference the file backend is held to.
pub(crate) const FLOOR_THREADS: usize = 8;

pub(crate) struct Tools {
    pub(crate) converter: PathBuf,
    pub(crate) whmtoken: PathBuf,
    fake_server: PathBuf,
    pub(crate) floor: PathBuf,
    pub(crate) jobs: usize,
}

/// The manifest of `io-floor`, a program outside the workspace.
pub(crate) const FLOOR_MANIFEST: &str = "bench/io-floor/Cargo.toml";

/// Where `io-floor` is built, as cargo's `--target-dir`: the workspace's, so that the
/// SQLite both link is compiled once.
pub(crate) fn floor_target_dir() -> Result<String, String> {
    let dir = target_dir();
    dir.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: not UTF-8", dir.display()))
}

/// Builds the release binaries, and the floor from its own manifest, and says where they
/// are.
fn tools() -> Result<Tools, String> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "whmtoken-cli",
        "-p",
        "whmtoken-fake-server",
        "--bins",
    ])?;
    let floor_target = floor_target_dir()?;
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "--locked",
        "--manifest-path",
        FLOOR_MANIFEST,
        "--target-dir",
        &floor_target,
    ])?;
    let release = target_dir().join("release");
    Ok(Tools {
        // Another build's converter, to compare against: BENCH_CONVERTER=path.
        converter: std::env::var_os("BENCH_CONVERTER").map_or_else(
            || release.join("convert_accesshash_to_token"),
            PathBuf::from,
        ),
        whmtoken: release.join("whmtoken"),
        fake_server: release.join("fake-server"),
        floor: release.join("io-floor"),
        jobs: whmtoken_core::pipeline::default_jobs(),
    })
}

/// `cargo xtask bench serve`: the fake WHM's part alone.
pub fn bench_serve() -> Result<(), String> {
    let tools = tools()?;
    let out = target_dir().join("bench");
    let copies = Copies::new(out.join("work"))?;
    let notes = serve::measure(&tools, &out, &copies)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{notes}");
    }
    Ok(())
}

/// `cargo xtask bench report`: `whmtoken report` and its page on a fleet of a million
/// accounts.
pub fn bench_report() -> Result<(), String> {
    if !Path::new("/usr/bin/time").exists() {
        return Err("the bench needs GNU time at /usr/bin/time (Debian package `time`)".into());
    }
    let notes = report::measure()?;
    #[allow(clippy::print_stdout)]
    {
        println!("{notes}");
    }
    Ok(())
}

/// `cargo xtask bench usage`: `whmtoken usage` on 2 GB of logs alone.
pub fn bench_usage() -> Result<(), String> {
    if !Path::new("/usr/bin/time").exists() {
        return Err("the bench needs GNU time at /usr/bin/time (Debian package `time`)".into());
    }
    let tools = tools()?;
    let notes = usage::measure(&tools, &target_dir().join("bench"))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{notes}");
    }
    Ok(())
}

/// The whole bench, or with `only_filesystems` the part on XFS and ext4 images alone.
pub fn bench(only_filesystems: bool) -> Result<(), String> {
    if !Path::new("/usr/bin/time").exists() {
        return Err("the bench needs GNU time at /usr/bin/time (Debian package `time`)".into());
    }
    let tools = tools()?;
    let out = target_dir().join("bench");
    let mut report = String::from(
        "| server | users | converter (median) | per user | user CPU/user | user+sys CPU | peak RSS | floor serial | floor threaded | ratio serial | ratio threaded |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut notes = String::new();
    let mut file_medians = Vec::new();
    let copies = Copies::new(out.join("work"))?;
    let mut file_templates = Vec::new();
    // `bench filesystems` alone can be held to one server size: BENCH_RESELLERS=1000.
    let only_resellers: Option<usize> = std::env::var("BENCH_RESELLERS")
        .ok()
        .filter(|_| only_filesystems)
        .map(|n| n.parse().map_err(|e| format!("BENCH_RESELLERS={n}: {e}")))
        .transpose()?;
    for case in CASES
        .iter()
        .filter(|c| c.backend == "files" && only_resellers.is_none_or(|n| n == c.resellers))
    {
        let template = out.join(format!("{}-{}-v{TEMPLATES}", case.backend, case.resellers));
        generated(&tools, &template, case.backend, case.resellers, 3, 1)?;
        file_templates.push((case.resellers, template));
    }
    if only_filesystems {
        let text = filesystems::bench(&tools, &file_templates, &out);
        #[allow(clippy::print_stdout)]
        {
            println!("{text}");
        }
        return Ok(());
    }
    for case in &CASES {
        let template = out.join(format!("{}-{}-v{TEMPLATES}", case.backend, case.resellers));
        generated(&tools, &template, case.backend, case.resellers, 3, 1)?;
        let measured = measure(&tools, case, &template, &copies)?;
        eprintln!("xtask: {} {}: done", case.backend, case.resellers);
        let conv = measured.write(case, &mut report, &mut notes);
        if case.backend == "files" {
            file_medians.push(conv);
        }
    }
    let (files, rss) = large_token_files(&tools, &out, &copies)?;
    writeln!(
        notes,
        "- {files} token files of just under 16 MiB each, `--jobs 16`: peak RSS {:.0} MiB (target: under 1,024 MiB).",
        rss / 1024.0
    )
    .expect("write to a String");
    notes.push_str(&serve::measure(&tools, &out, &copies)?);
    notes.push_str(&usage::measure(&tools, &out)?);
    if let [small, large] = file_medians[..] {
        writeln!(
            notes,
            "- Growth, files 10,000 / 1,000 resellers: {:.2}x.",
            large / small
        )
        .expect("write to a String");
    }
    let filesystems = filesystems::bench(&tools, &file_templates, &out);
    let text = format!(
        "# whmtoken benchmark\n\nConverter (`--all-resellers`, default `--jobs` = {}) against the I/O floor (serial, and on {FLOOR_THREADS} threads), timed pair by pair on fresh copies; ratios are medians of the pairwise ratios.\n\n{report}\n{notes}{filesystems}",
        tools.jobs
    );
    std::fs::write(out.join("report.md"), &text).map_err(|e| e.to_string())?;
    #[allow(clippy::print_stdout)]
    {
        println!("{text}\nWritten to {}", out.join("report.md").display());
    }
    Ok(())
}

struct Measured {
    converter: Vec<Sample>,
    floor_serial: Vec<Sample>,
    floor_threaded: Option<Vec<Sample>>,
    dry_run: Option<f64>,
    audit: Option<f64>,
    verify: Option<f64>,
}

impl Measured {
    /// Writes this case's row of the table to `report` and its notes to `notes`; returns
    /// the converter's median wall time.
    fn write(&self, case: &Case, report: &mut String, notes: &mut String) -> f64 {
        let users = case.resellers as f64;
        let conv = median(self.converter.iter().map(|s| s.wall));
        let user_cpu = median(self.converter.iter().map(|s| s.user));
        let all_cpu = median(self.converter.iter().map(|s| s.user + s.system));
        let rss = self
            .converter
            .iter()
            .map(|s| s.max_rss_kb)
            .fold(0.0, f64::max);
        let floor_serial = median(self.floor_serial.iter().map(|s| s.wall));
        let floor_threaded = self
            .floor_threaded
            .as_ref()
            .map(|f| median(f.iter().map(|s| s.wall)));
        let ratio_serial = median(
            self.converter
                .iter()
                .zip(&self.floor_serial)
                .map(|(c, f)| c.wall / f.wall),
        );
        let ratio_threaded = self
            .floor_threaded
            .as_ref()
            .map(|f| median(self.converter.iter().zip(f).map(|(c, f)| c.wall / f.wall)));
        let floor_cpu = median(self.floor_serial.iter().map(|s| s.user + s.system));
        writeln!(
            report,
            "| {} | {} | {:.3} s | {:.1} µs | {:.1} µs | {:.3} s ({:.2}x floor) | {:.1} MiB | {:.3} s | {} | {:.2}x | {} |",
            case.backend,
            case.resellers,
            conv,
            conv / users * 1e6,
            user_cpu / users * 1e6,
            all_cpu,
            all_cpu / floor_cpu.max(1e-9),
            rss / 1024.0,
            floor_serial,
            floor_threaded.map_or("-".into(), |t| format!("{t:.3} s")),
            ratio_serial,
            ratio_threaded.map_or("-".into(), |r| format!("{r:.2}x")),
        )
        .expect("write to a String");
        if let Some(dry) = self.dry_run {
            writeln!(
                notes,
                "- `--dry-run` on files {}: {:.3} s, {:.2}x the real run.",
                case.resellers,
                dry,
                dry / conv
            )
            .expect("write to a String");
            if let Some(audit) = self.audit {
                writeln!(
                    notes,
                    "- `whmtoken audit --json` on files {}: {:.3} s, {:.2}x the dry run (target: at most 1.5x).",
                    case.resellers,
                    audit,
                    audit / dry
                )
                .expect("write to a String");
            }
        }
        if let Some(verify) = self.verify {
            writeln!(
                notes,
                "- `whmtoken verify` on {} {}, whole process: {:.1} ms (median of {VERIFY_RUNS}; target: under 10 ms).",
                case.backend,
                case.resellers,
                verify * 1e3
            )
            .expect("write to a String");
        }
        conv
    }
}

/// How many `whmtoken verify` runs the verify figure is the median of.
const VERIFY_RUNS: usize = 21;

/// The median wall time of `whmtoken verify res00001` (an unknown secret: the whole
/// decision, account, role, key lookup and access hash, is made) as a whole process.
fn verify_seconds(tools: &Tools, copy: &Path) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..VERIFY_RUNS {
        let started = std::time::Instant::now();
        let mut child = Command::new(&tools.whmtoken)
            .arg("--config")
            .arg(copy.join("whmtoken.toml"))
            .args(["verify", "res00001"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run whmtoken: {e}"))?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("piped");
            stdin
                .write_all(b"not-the-secret\n")
                .map_err(|e| e.to_string())?;
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.code() != Some(1) {
            return Err(format!("whmtoken verify: expected a refusal, got {status}"));
        }
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(median(times.into_iter()))
}

fn measure(tools: &Tools, case: &Case, template: &Path, work: &Copies) -> Result<Measured, String> {
    let mut converter = Vec::new();
    let mut floor_serial = Vec::new();
    let mut floor_threaded = Vec::new();
    let mut dry_runs = Vec::new();
    let mut audits = Vec::new();
    let convert = |copy: &Path, extra: &[&str]| -> Command {
        let mut c = Command::new(&tools.converter);
        c.arg("--config")
            .arg(copy.join("whmtoken.toml"))
            .arg("--all-resellers")
            .args(extra);
        c
    };
    let floor = |copy: &Path, threads: usize| -> Command {
        let mut c = Command::new(&tools.floor);
        if case.backend == "files" {
            c.arg("files").arg(copy).arg(threads.to_string());
        } else {
            c.arg("sqlite")
                .arg(copy.join("server.db"))
                .arg(whmtoken_core::pipeline::BATCH_USERS.to_string());
        }
        c
    };
    for _ in 0..case.repeats {
        converter.push(timed(&mut convert(&work.fresh(template)?, &[]))?);
        floor_serial.push(timed(&mut floor(&work.fresh(template)?, 1))?);
        if case.backend == "files" {
            floor_threaded.push(timed(&mut floor(&work.fresh(template)?, FLOOR_THREADS))?);
            if case.resellers >= 10_000 {
                let dry = timed(&mut convert(&work.fresh(template)?, &["--dry-run"]))?;
                dry_runs.push(dry.wall);
                let mut audit = Command::new(&tools.whmtoken);
                audit
                    .arg("--config")
                    .arg(work.fresh(template)?.join("whmtoken.toml"))
                    .args(["audit", "--json", "--fail-on", "never"]);
                audits.push(timed(&mut audit)?.wall);
            }
        }
    }
    let verify = if case.backend == "sqlite" && case.resellers == 10_000 {
        Some(verify_seconds(tools, &work.fresh(template)?)?)
    } else {
        None
    };
    Ok(Measured {
        converter,
        floor_serial,
        floor_threaded: (case.backend == "files").then_some(floor_threaded),
        dry_run: (!dry_runs.is_empty()).then(|| median(dry_runs.into_iter())),
        audit: (!audits.is_empty()).then(|| median(audits.into_iter())),
        verify,
    })
}

/// Fresh copies of the templates, one per timed run, all removed when the bench ends.
///
/// None is removed before that: ext4 without a journal (these machines' disks) skips, for
/// every new inode, the inodes deleted in the last few minutes, so deleting a 30,000-file
/// copy right before a run slows that run's file creations by an amount that grows with
/// the size of the copy, not with the work being measured.
pub(crate) struct Copies {
    folder: PathBuf,
    made: std::cell::Cell<usize>,
}

impl Copies {
    pub(crate) fn new(folder: PathBuf) -> Result<Self, String> {
        if folder.exists() {
            // Left by an interrupted bench.
            std::fs::remove_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        }
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        Ok(Self {
            folder,
            made: std::cell::Cell::new(0),
        })
    }

    pub(crate) fn fresh(&self, template: &Path) -> Result<PathBuf, String> {
        let n = self.made.get();
        self.made.set(n + 1);
        let copy = self.folder.join(n.to_string());
        run_quiet(Command::new("cp").arg("-a").arg(template).arg(&copy))?;
        // Start every timed run from the same place: dirty pages of the copy written out.
        run_quiet(&mut Command::new("sync"))?;
        Ok(copy)
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Runs `command` under GNU time and returns what it measured.
pub(crate) fn timed(command: &mut Command) -> Result<Sample, String> {
    let out = tempfile_path();
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let mut time = Command::new("/usr/bin/time");
    // What was set on `command` (variables, folder) applies to it under time too.
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => time.env(key, value),
            None => time.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        time.current_dir(dir);
    }
    let status = time
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&out)
        .arg(&program)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        return Err(format!(
            "{} failed ({status}): {text}",
            program.to_string_lossy()
        ));
    }
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [wall, user, system, max_rss_kb] = fields[..] else {
        return Err(format!("unexpected output from /usr/bin/time: {text}"));
    };
    Ok(Sample {
        wall,
        user,
        system,
        max_rss_kb,
    })
}

fn tempfile_path() -> PathBuf {
    target_dir().join(format!("bench/time-{}.txt", std::process::id()))
}

pub(crate) fn run_quiet(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The generation of the fake servers kept between benches (in `target/bench`): raised
/// when `fake-server` builds them differently, so that stale ones are not reused.
const TEMPLATES: u32 = 3;

/// Generates a fake server into `template` with `fake-server generate`, unless one from an
/// earlier bench is there; returns whether it was made now.
fn generated(
    tools: &Tools,
    template: &Path,
    backend: &str,
    resellers: usize,
    tokens_per_user: usize,
    seed: u64,
) -> Result<bool, String> {
    if template.join("whmtoken.toml").exists() {
        return Ok(false);
    }
    let _ = std::fs::remove_dir_all(template);
    run_quiet(
        Command::new(&tools.fake_server)
            .args(["generate", "--resellers", &resellers.to_string()])
            .args(["--tokens-per-user", &tokens_per_user.to_string()])
            .args(["--seed", &seed.to_string(), "--backend", backend, "--out"])
            .arg(template),
    )?;
    Ok(true)
}

/// How many huge token files the memory case converts at once.
const HUGE_FILES: usize = 16;

/// Builds a file tree of [`HUGE_FILES`] resellers whose token files are just under the
/// 16 MiB limit, converts them all with `--jobs 16`, and returns (files, peak RSS in KiB).
fn large_token_files(tools: &Tools, out: &Path, copies: &Copies) -> Result<(usize, f64), String> {
    let template = out.join(format!("files-huge-{HUGE_FILES}-v{TEMPLATES}"));
    if generated(tools, &template, "files", HUGE_FILES, 0, 2)? {
        let folder = template.join("var/cpanel/authn/api_tokens_v2/whostmgr");
        std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
        for n in 1..=HUGE_FILES {
            let path = folder.join(format!("res{n:05}.json"));
            std::fs::write(&path, huge_token_file(n))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
    }
    let copy = copies.fresh(&template)?;
    let sample = timed(
        Command::new(&tools.converter)
            .arg("--config")
            .arg(copy.join("whmtoken.toml"))
            .args(["--all-resellers", "--jobs", "16"]),
    )?;
    Ok((HUGE_FILES, sample.max_rss_kb))
}

/// A token file of just under 16 MiB: many entries, each with an unknown key, as a server
/// whose tokens were planted in bulk might hold.
fn huge_token_file(seed: usize) -> String {
    const LIMIT: usize = 16 << 20;
    let mut text = String::from("{\"tokens\":{");
    let mut n = 0usize;
    loop {
        let key = whmtoken_core::TokenHash::of_secret(format!("{seed}/{n}").as_bytes());
        let entry = format!(
            "\"{key}\":{{\"name\":\"t{n}\",\"create_time\":1700000000,\"expires_at\":null,\"acls\":[\"list-accts\"],\"note\":\"{}\"}}",
            "x".repeat(64),
            key = key.as_str()
        );
        if text.len() + entry.len() + 3 > LIMIT - 4096 {
            break;
        }
        if n > 0 {
            text.push(',');
        }
        text.push_str(&entry);
        n += 1;
    }
    text.push_str("}}");
    text
}
