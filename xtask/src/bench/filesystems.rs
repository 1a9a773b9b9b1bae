//! The file-backend bench on the file systems cPanel servers use: XFS (the default of the
//! EL family) and ext4 with its journal, each on a fresh loop-mounted image under
//! `target/bench/images`. Needs root (to mount) and `mkfs.xfs` (Debian package
//! `xfsprogs`); without them it says what it skips.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Copies, FLOOR_THREADS, Sample, Tools, median, run_quiet, timed};

/// A file system made on a fresh image file and mounted for the bench; unmounted and its
/// image removed when dropped.
struct Image {
    file: PathBuf,
    mount: PathBuf,
}

/// The file systems measured: name, `mkfs` program and its options.
const FILE_SYSTEMS: [(&str, &str, &[&str]); 2] = [
    ("xfs", "mkfs.xfs", &["-q", "-f"]),
    ("ext4 (journal)", "mkfs.ext4", &["-q", "-F"]),
];

/// Big enough for every fresh copy of the 10,000-reseller server the bench makes (ext4's
/// inodes included: one per 16 KiB of the image; the image file is sparse).
const IMAGE_SIZE: &str = "14G";

impl Image {
    fn new(folder: &Path, name: &str, mkfs: &str, options: &[&str]) -> Result<Self, String> {
        let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let file = folder.join(format!("{slug}.img"));
        let mount = folder.join(format!("{slug}-mnt"));
        let _ = Command::new("umount").arg(&mount).output();
        let _ = std::fs::remove_file(&file);
        std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        run_quiet(Command::new("truncate").args(["-s", IMAGE_SIZE]).arg(&file))?;
        run_quiet(Command::new(mkfs).args(options).arg(&file))?;
        run_quiet(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&file)
                .arg(&mount),
        )?;
        Ok(Self { file, mount })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).output();
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// Why the file-system bench cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("skipped: mounting images needs root".into());
    }
    let missing: Vec<&str> = FILE_SYSTEMS
        .iter()
        .map(|(_, mkfs, _)| *mkfs)
        .filter(|mkfs| Command::new(mkfs).arg("-V").output().is_err())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "skipped: {} not installed (Debian packages xfsprogs, e2fsprogs)",
            missing.join(", ")
        )
    })
}

/// The converter and the floors on each file system, for each template: a markdown section.
pub(crate) fn bench(tools: &Tools, templates: &[(usize, PathBuf)], out: &Path) -> String {
    let mut text = String::from("\n## On XFS and ext4 with its journal (loop-mounted images)\n\n");
    let baseline = std::env::var_os("BENCH_BASELINE").map(PathBuf::from);
    if let Some(why) = cannot_run() {
        eprintln!("xtask: file systems: {why}");
        writeln!(text, "{why}.").expect("write to a String");
        return text;
    }
    if let Some(baseline) = &baseline {
        writeln!(
            text,
            "Baseline (`BENCH_BASELINE`), timed in the same pairs: `{}`.\n",
            baseline.display()
        )
        .expect("write to a String");
    }
    text.push_str(
        "| file system | users | baseline | baseline vs 8 threads | baseline vs `syncfs` | baseline: user CPU/user | baseline: total CPU/user | converter | floor serial | floor, 8 threads | floor, chunks of 16 | floor one `syncfs` | vs 8 threads | vs chunks | vs `syncfs` | vs serial | user CPU/user | total CPU/user | load average (1 min) before, after |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut growth = String::new();
    for (name, mkfs, options) in FILE_SYSTEMS {
        let image = match Image::new(&out.join("images"), name, mkfs, options) {
            Ok(image) => image,
            Err(e) => {
                writeln!(text, "| {name} | could not make the image: {e} |").expect("write");
                continue;
            }
        };
        let mut medians = Vec::new();
        for (resellers, template) in templates {
            let repeats = if *resellers <= 1_000 {
                REPEATS_SMALL
            } else {
                REPEATS
            };
            match measure(tools, baseline.as_deref(), template, &image.mount, repeats) {
                Ok(row) => {
                    medians.push(row.converter);
                    writeln!(text, "{}", row.line(name, *resellers)).expect("write");
                }
                Err(e) => writeln!(text, "| {name} | {resellers} | failed: {e} |").expect("write"),
            }
            eprintln!("xtask: {name} {resellers}: done");
        }
        if let [small, large] = medians[..] {
            writeln!(
                growth,
                "- Growth on {name}, 10,000 / 1,000 resellers: {:.2}x.",
                large / small
            )
            .expect("write to a String");
        }
    }
    text.push('\n');
    text.push_str(&growth);
    text
}

/// Medians of one server on one file system.
struct Row {
    baseline: Option<Baseline>,
    converter: f64,
    floor_serial: f64,
    floor_threaded: f64,
    floor_chunked: f64,
    floor_syncfs: f64,
    ratio_threaded: f64,
    ratio_chunked: f64,
    ratio_syncfs: f64,
    ratio_serial: f64,
    user_cpu_per_user: f64,
    total_cpu_per_user: f64,
    /// The machine's load average over the last minute, before and after the runs.
    load: (String, String),
}

/// The baseline binary's medians, timed in the same pairs as the converter.
#[derive(Clone, Copy)]
struct Baseline {
    wall: f64,
    ratio_threaded: f64,
    ratio_syncfs: f64,
    user_cpu_per_user: f64,
    total_cpu_per_user: f64,
}

impl Row {
    fn line(&self, name: &str, users: usize) -> String {
        let baseline = self.baseline.map_or_else(
            || "- | - | - | - | -".to_owned(),
            |b| {
                format!(
                    "{:.3} s | {:.2}x | {:.2}x | {:.1} µs | {:.1} µs",
                    b.wall,
                    b.ratio_threaded,
                    b.ratio_syncfs,
                    b.user_cpu_per_user * 1e6,
                    b.total_cpu_per_user * 1e6
                )
            },
        );
        format!(
            "| {name} | {users} | {baseline} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.1} µs | {:.1} µs | {}, {} |",
            self.converter,
            self.floor_serial,
            self.floor_threaded,
            self.floor_chunked,
            self.floor_syncfs,
            self.ratio_threaded,
            self.ratio_chunked,
            self.ratio_syncfs,
            self.ratio_serial,
            self.user_cpu_per_user * 1e6,
            self.total_cpu_per_user * 1e6,
            self.load.0,
            self.load.1,
        )
    }
}

/// The load average over the last minute (`/proc/loadavg`), or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// How many times each command runs on each file system...
const REPEATS: usize = 3;
/// ...and on the 1,000-reseller server, whose runs are short and noisy.
const REPEATS_SMALL: usize = 5;

fn measure(
    tools: &Tools,
    baseline: Option<&Path>,
    template: &Path,
    mount: &Path,
    repeats: usize,
) -> Result<Row, String> {
    let load_before = load_average();
    let copies = Copies::new(mount.join("work"))?;
    let users = std::fs::read_dir(template.join("home"))
        .map_err(|e| e.to_string())?
        .count() as f64;
    let [
        mut before,
        mut converter,
        mut serial,
        mut threaded,
        mut chunked,
        mut syncfs,
    ]: [Vec<Sample>; 6] = Default::default();
    let floor = |mode: &str, copy: &Path, jobs: usize| {
        let mut c = Command::new(&tools.floor);
        c.arg(mode).arg(copy).arg(jobs.to_string());
        c
    };
    let convert = |program: &Path, copy: &Path| {
        let mut c = Command::new(program);
        c.arg("--config")
            .arg(copy.join("whmtoken.toml"))
            .arg("--all-resellers");
        c
    };
    for _ in 0..repeats {
        if let Some(baseline) = baseline {
            before.push(timed(&mut convert(baseline, &copies.fresh(template)?))?);
        }
        converter.push(timed(&mut convert(
            &tools.converter,
            &copies.fresh(template)?,
        ))?);
        serial.push(timed(&mut floor("files", &copies.fresh(template)?, 1))?);
        // The faster of the two ways to flush the shared log and folder (io-floor's doc).
        let group = timed(&mut floor("files", &copies.fresh(template)?, FLOOR_THREADS))?;
        let each = timed(&mut floor(
            "files-each",
            &copies.fresh(template)?,
            FLOOR_THREADS,
        ))?;
        threaded.push(if group.wall <= each.wall { group } else { each });
        chunked.push(timed(&mut floor(
            "files-chunked",
            &copies.fresh(template)?,
            tools.jobs,
        ))?);
        syncfs.push(timed(&mut floor(
            "syncfs",
            &copies.fresh(template)?,
            tools.jobs,
        ))?);
    }
    let wall = |samples: &[Sample]| median(samples.iter().map(|s| s.wall));
    let ratio_of = |ours: &[Sample], floor: &[Sample]| {
        median(ours.iter().zip(floor).map(|(c, f)| c.wall / f.wall))
    };
    let user_cpu = |samples: &[Sample]| median(samples.iter().map(|s| s.user)) / users;
    let cpu = |samples: &[Sample]| median(samples.iter().map(|s| s.user + s.system)) / users;
    Ok(Row {
        baseline: (!before.is_empty()).then(|| Baseline {
            wall: wall(&before),
            ratio_threaded: ratio_of(&before, &threaded),
            ratio_syncfs: ratio_of(&before, &syncfs),
            user_cpu_per_user: user_cpu(&before),
            total_cpu_per_user: cpu(&before),
        }),
        converter: wall(&converter),
        floor_serial: wall(&serial),
        floor_threaded: wall(&threaded),
        floor_chunked: wall(&chunked),
        floor_syncfs: wall(&syncfs),
        ratio_threaded: ratio_of(&converter, &threaded),
        ratio_chunked: ratio_of(&converter, &chunked),
        ratio_syncfs: ratio_of(&converter, &syncfs),
        ratio_serial: ratio_of(&converter, &serial),
        user_cpu_per_user: user_cpu(&converter),
        total_cpu_per_user: cpu(&converter),
        load: (load_before, load_average()),
    })
}
