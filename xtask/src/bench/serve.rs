//! The fake WHM's throughput (`fake-server serve`): authenticated `version` calls with
//! keep-alive from 16 concurrent clients, measured with wrk (Debian's package, installed
//! when missing) against a 10,000-reseller SQLite server and a 10,000-reseller file tree (3
//! tokens each). One reseller is converted first, so that its access hash authenticates as
//! a token, looked up by its key among the server's 40,000 tokens.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Copies, Tools, generated, median, run_quiet};

/// Concurrent keep-alive connections, as the target says.
const CONNECTIONS: usize = 16;
/// Seconds per wrk run; runs per server.
const SECONDS: u64 = 10;
const RUNS: usize = 3;
const RESELLERS: usize = 10_000;
/// The reseller whose converted access hash the clients send.
const CALLER: &str = "res05000";

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
    }
    Ok(notes)
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
    let result = match (read, url) {
        (Ok(_), Some(url)) => {
            let target = format!("{url}/json-api/version?api.version=1");
            let header = format!("Authorization: whm {CALLER}:{secret}");
            wrk(&target, &header, 2)
                .and_then(|_| (0..RUNS).map(|_| wrk(&target, &header, SECONDS)).collect())
        }
        _ => Err(format!(
            "fake-server serve did not say where it listens: {first:?}"
        )),
    };
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
    result
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
