//! The fake WHM's throughput (`fake-server serve`): authenticated `version` calls with
//! keep-alive from 16 concurrent clients, measured with wrk (Debian's package, installed
//! when missing) against a 10,000-reseller SQLite server and a 10,000-reseller file tree (3
//! tokens each). One reseller is converted first, so that its access hash authenticates as
//! a token, looked up by its key among the server's 40,000 tokens.
//!
//! Then the same clients under a slow-connection attack (on the SQLite server): 2,000
//! connections kept open, each sending a request header a line a second and never
//! finishing it (reopened when the server closes one), while wrk measures; the loaded p99
//! is held to at most twice the quiet one.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Copies, Tools, generated, median, run_quiet};

/// Concurrent keep-alive connections, as the target says.
const CONNECTIONS: usize = 16;
/// Seconds per wrk run; runs per server.
const SECONDS: u64 = 10;
const RUNS: usize = 3;
const RESELLERS: usize = 10_000;
/// The reseller whose converted access hash the clients send.
const CALLER: &str = "res05000";
/// The slow connections kept open during the loaded runs.
const SLOW: usize = 2_000;

/// One wrk run: requests per second and the 99th percentile latency in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Load {
    per_second: f64,
    p99_ms: f64,
}

/// Measures both servers; returns the report's lines.
pub(super) fn measure(tools: &Tools, out: &Path, copies: &Copies) -> Result<String, String> {
    ensure_wrk()?;
    let mut notes = String::new();
    for backend in ["sqlite", "files"] {
        let template = out.join(format!("{backend}-{RESELLERS}-v{}", super::TEMPLATES));
        generated(tools, &template, backend, RESELLERS, 3, 1)?;
        let copy = copies.fresh(&template)?;
        let config = copy.join("whmtoken.toml");
        run_quiet(
            Command::new(&tools.converter)
                .arg("--config")
                .arg(&config)
                .arg(CALLER),
        )?;
        let loads = serve_and_load(tools, &config, &secret_of(CALLER)?)?;
        eprintln!("xtask: serve {backend} {RESELLERS}: {loads:?}");
        let per_second = median(loads.iter().map(|l| l.per_second));
        let p99 = median(loads.iter().map(|l| l.p99_ms));
        writeln!(
            notes,
            "- `fake-server serve` on {backend} {RESELLERS} (3 tokens each), `version` with a token, {CONNECTIONS} keep-alive clients (wrk, median of {RUNS} runs of {SECONDS} s): {per_second:.0} requests/s, p99 {p99:.2} ms (target: at least 5,000/s, p99 under 10 ms)."
        )
        .expect("write to a String");
        if backend == "sqlite" {
            notes.push_str(&under_slow_connections(
                tools,
                &config,
                &secret_of(CALLER)?,
            )?);
        }
    }
    Ok(notes)
}

/// wrk's p99 quiet, then with [`SLOW`] slow connections open: the report's line.
fn under_slow_connections(tools: &Tools, config: &Path, secret: &str) -> Result<String, String> {
    raise_open_files(SLOW as u64 + 512)?;
    let (mut server, url) = start(tools, config)?;
    let result = quiet_and_loaded(&url, secret);
    stop(&mut server);
    let (quiet, loaded, kept) = result?;
    eprintln!("xtask: serve slow: quiet {quiet:?}, loaded {loaded:?}, {kept:?}");
    let quiet_p99 = median(quiet.iter().map(|l| l.p99_ms));
    let loaded_p99 = median(loaded.iter().map(|l| l.p99_ms));
    let per_second = median(loaded.iter().map(|l| l.per_second));
    let met = if loaded_p99 <= 2.0 * quiet_p99 {
        "met"
    } else {
        "NOT met"
    };
    Ok(format!(
        "- `fake-server serve` on sqlite {RESELLERS} with {SLOW} slow connections open (each sends a header line a second and never ends it; {} open on average, {} reopened after the server closed them): p99 {loaded_p99:.2} ms at {per_second:.0} requests/s, against {quiet_p99:.2} ms quiet (target: loaded p99 at most 2x quiet: {met}).\n",
        kept.open, kept.reopened
    ))
}

/// How the slow connections fared during the loaded runs.
#[derive(Debug)]
struct Kept {
    /// Open, on average over the loaded runs.
    open: usize,
    /// Closed by the server (after its header timeout) and opened again.
    reopened: usize,
}

/// The quiet runs, then the loaded runs with the slow connections.
fn quiet_and_loaded(url: &str, secret: &str) -> Result<(Vec<Load>, Vec<Load>, Kept), String> {
    let target = format!("{url}/json-api/version?api.version=1");
    let header = format!("Authorization: whm {CALLER}:{secret}");
    wrk(&target, &header, 2)?;
    let quiet = (0..RUNS)
        .map(|_| wrk(&target, &header, SECONDS))
        .collect::<Result<Vec<_>, _>>()?;
    let address: SocketAddr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("not an http:// address: {url}"))?;
    let running = Arc::new(AtomicBool::new(true));
    let open = Arc::new(AtomicUsize::new(0));
    let reopened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (running, open, reopened) = (running.clone(), open.clone(), reopened.clone());
        std::thread::spawn(move || slow_clients(address, &running, &open, &reopened))
    };
    // Until every slow connection is open.
    let deadline = Instant::now() + Duration::from_secs(60);
    while open.load(Ordering::Relaxed) < SLOW && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let reopened_before = reopened.load(Ordering::Relaxed);
    let mut samples = Vec::new();
    let loaded = (0..RUNS)
        .map(|_| {
            let sampler = {
                let open = open.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(SECONDS / 2));
                    open.load(Ordering::Relaxed)
                })
            };
            let load = wrk(&target, &header, SECONDS);
            samples.push(sampler.join().unwrap_or(0));
            load
        })
        .collect::<Result<Vec<_>, _>>();
    running.store(false, Ordering::Relaxed);
    let _ = attacker.join();
    let kept = Kept {
        open: samples.iter().sum::<usize>() / samples.len().max(1),
        reopened: reopened.load(Ordering::Relaxed) - reopened_before,
    };
    Ok((quiet, loaded?, kept))
}

/// [`SLOW`] connections to `address`, each sent a request's first line and then a header
/// line a second, never the end of the header; one the server closes (after its header
/// timeout, with 408) is opened again.
/// Runs until `running` turns false; `open` counts the connections open.
fn slow_clients(
    address: SocketAddr,
    running: &AtomicBool,
    open: &AtomicUsize,
    reopened: &AtomicUsize,
) {
    let connect = || {
        let stream = TcpStream::connect(address).ok()?;
        stream.set_nonblocking(true).ok()?;
        (&stream)
            .write_all(b"GET /json-api/version HTTP/1.1\r\nHost: localhost\r\n")
            .ok()?;
        Some(stream)
    };
    let mut streams: Vec<Option<TcpStream>> = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        streams.push(connect());
    }
    let mut line = 0u64;
    let mut buffer = [0u8; 512];
    // A line a second to each, spread over the second in slices, as a patient attacker
    // would (not all 2,000 at once).
    let slices = 20;
    let slice = SLOW.div_ceil(slices);
    while running.load(Ordering::Relaxed) {
        line += 1;
        let header = format!("X-Slow-{line}: y\r\n");
        for start in (0..streams.len()).step_by(slice) {
            let end = (start + slice).min(streams.len());
            for stream in &mut streams[start..end] {
                let alive = stream.as_mut().is_some_and(|stream| {
                    let closed = match stream.read(&mut buffer) {
                        Ok(_) => true,
                        Err(e) => e.kind() != ErrorKind::WouldBlock,
                    };
                    !closed && stream.write_all(header.as_bytes()).is_ok()
                });
                if !alive {
                    *stream = connect();
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
            }
            open.store(streams_open(&streams), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1000 / slices as u64));
        }
    }
}

fn streams_open(streams: &[Option<TcpStream>]) -> usize {
    streams.iter().filter(|s| s.is_some()).count()
}

/// Raises this process's open-file limit (inherited by the server it starts) to at least
/// `wanted`, within the hard limit.
fn raise_open_files(wanted: u64) -> Result<(), String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut files = getrlimit(Resource::Nofile);
    if files.current.is_some_and(|n| n < wanted) {
        files.current = files.maximum.map(|max| max.min(wanted.max(65_536)));
        setrlimit(Resource::Nofile, files)
            .map_err(|e| format!("cannot raise the open-file limit to {wanted}: {e}"))?;
    }
    Ok(())
}

/// The access hash `fake-server generate --seed 1` gave `user`, without its whitespace.
fn secret_of(user: &str) -> Result<String, String> {
    let scenario = whmtoken_fixtures::generate(RESELLERS, 3, 1);
    let raw = scenario
        .users
        .iter()
        .find(|u| u.name == user)
        .and_then(|u| u.accesshash.clone())
        .ok_or_else(|| format!("the generated server has no access hash for {user}"))?;
    Ok(raw.split_whitespace().collect())
}

/// Starts the server, runs wrk [`RUNS`] times after a warm-up, stops the server.
fn serve_and_load(tools: &Tools, config: &Path, secret: &str) -> Result<Vec<Load>, String> {
    let (mut server, url) = start(tools, config)?;
    let target = format!("{url}/json-api/version?api.version=1");
    let header = format!("Authorization: whm {CALLER}:{secret}");
    let result = wrk(&target, &header, 2)
        .and_then(|_| (0..RUNS).map(|_| wrk(&target, &header, SECONDS)).collect());
    stop(&mut server);
    result
}

/// Starts `fake-server serve` on a free port: the process and its URL.
fn start(tools: &Tools, config: &Path) -> Result<(Child, String), String> {
    let mut server = Command::new(&tools.fake_server)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run fake-server serve: {e}"))?;
    let mut first = String::new();
    let read = BufReader::new(server.stdout.take().expect("piped")).read_line(&mut first);
    let url = first
        .trim_end()
        .strip_prefix("listening on ")
        .map(str::to_owned);
    match (read, url) {
        (Ok(_), Some(url)) => Ok((server, url)),
        _ => {
            stop(&mut server);
            Err(format!(
                "fake-server serve did not say where it listens: {first:?}"
            ))
        }
    }
}

/// SIGTERM, then waits.
fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
}

fn wrk(target: &str, header: &str, seconds: u64) -> Result<Load, String> {
    let out = Command::new("wrk")
        .args(["--threads", "2", "--connections", &CONNECTIONS.to_string()])
        .args([
            "--duration",
            &format!("{seconds}s"),
            "--latency",
            "--header",
            header,
            target,
        ])
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") {
        return Err(format!("wrk failed or got errors:\n{text}"));
    }
    let per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| milliseconds(v.trim()));
    match (per_second, p99) {
        (Some(per_second), Some(p99_ms)) => Ok(Load { per_second, p99_ms }),
        _ => Err(format!("cannot read wrk's output:\n{text}")),
    }
}

/// wrk's latency (`812.00us`, `1.23ms`, `1.02s`) in milliseconds.
fn milliseconds(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(value * scale)
}

/// wrk from Debian's package, installed when missing.
fn ensure_wrk() -> Result<(), String> {
    let present = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing wrk (apt-get) for the fake WHM's bench");
    run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::milliseconds;

    #[test]
    fn wrk_latencies_read_as_milliseconds() {
        assert_eq!(milliseconds("812.00us"), Some(0.812));
        assert_eq!(milliseconds("1.23ms"), Some(1.23));
        assert_eq!(milliseconds("1.02s"), Some(1020.0));
        assert_eq!(milliseconds("fast"), None);
    }
}
