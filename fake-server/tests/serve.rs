//! `fake-server serve` driven by clients nobody here wrote (curl, pycpanel from PyPI, and
//! ureq), telling the story of a migration on both backends: the access hash accepted while
//! `allow_deprecated_accesshash` is on, refused once it is off, accepted again as a token
//! after `convert_accesshash_to_token`, refused from 127.0.0.1 once the token is limited to
//! 192.0.2.1, and refused once the token has expired; and the rehearsal: the logs the fake
//! WHM writes, read by `whmtoken usage`, name the client of an access hash and of a token.
//!
//! `fake-server` is this package's binary; `convert_accesshash_to_token` is this test binary
//! itself, started under that name (`support`). pycpanel is installed
//! into `target/tools/pycpanel` by `tests/pycpanel/install.sh` (which `cargo xtask ci` runs
//! first); its tests are skipped, saying so, only where python3 is missing.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use whmtoken_core::TokenHash;

/// bob's access hash as cPanel writes it: lines of hex. Clients send it without the line
/// feeds.
const ACCESS_HASH: &str = "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n";

fn secret() -> String {
    ACCESS_HASH.replace('\n', "")
}

/// The target folder (`target/`), whose `tools/` holds the test clients.
fn target_folder() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_owned()
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = support::program(program)
        .args(args)
        .env("WHMTOKEN_CONFIG", "/nonexistent/whmtoken.toml")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scenario with root and the reseller bob, holding bob's access hash; `expired_token`
/// instead gives bob a token for that secret with this `expires_at` and no access hash (as
/// after the access hashes are retired).
fn scenario(allow_access_hash: bool, expired_token: Option<i64>) -> String {
    let access_hash = match expired_token {
        None => format!("accesshash = \"\"\"\n{ACCESS_HASH}\"\"\"\n"),
        Some(_) => String::new(),
    };
    let mut text = format!(
        "[server]\nallow_deprecated_accesshash = {allow_access_hash}\n\n\
         [[user]]\nname = \"root\"\n\n\
         [[user]]\nname = \"carol\"\nowner = \"bob\"\ndomain = \"carol.example\"\n\n\
         [[user]]\nname = \"bob\"\nreseller = [\"list-accts\"]\n{access_hash}"
    );
    if let Some(expires_at) = expired_token {
        let hash = TokenHash::of_secret(secret().as_bytes());
        text.push_str(&format!(
            "\n[[user.token]]\nhash = \"{}\"\nname = \"accesshash-1000000000\"\ncreate_time = 1000000000\nexpires_at = {expires_at}\n",
            hash.as_str()
        ));
    }
    text
}

/// Builds the scenario as a `backend` server in a new folder of `dir`; returns its config.
fn build(dir: &Path, name: &str, backend: &str, scenario: &str) -> String {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let out_dir = dir.join(name);
    let out = run(
        "fake-server",
        &[
            "build",
            file.to_str().unwrap(),
            "--backend",
            backend,
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A running `fake-server serve`, stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    url: String,
    /// Lines after the first on stdout (the fingerprint with --tls).
    more: Vec<String>,
}

impl Served {
    fn start(config: &str, extra: &[&str]) -> Self {
        let mut child = support::program("fake-server")
            .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fake-server runs");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .to_owned();
        let mut more = Vec::new();
        if extra.contains(&"--tls") {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            more.push(line.trim_end().to_owned());
        }
        Self { child, url, more }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit; returns whether it exited 0 and
    /// its stderr (the access log).
    fn stop(mut self) -> (bool, String) {
        let status = self.terminate();
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (status, log)
    }

    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// A client's verdict on one authenticated call.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Authenticated; the applist it read.
    Accepted(Vec<String>),
    /// Refused (HTTP 403), with the reason when the client shows it.
    Refused(String),
}

/// A third-party client: how it asks the fake WHM for the applist as `user` with `secret`.
trait Client {
    fn applist(&self, url: &str, user: &str, secret: &str) -> Answer;
}

fn apps(body: &serde_json::Value) -> Vec<String> {
    body["app"]
        .as_array()
        .unwrap_or_else(|| panic!("no applist: {body}"))
        .iter()
        .map(|app| app.as_str().unwrap().to_owned())
        .collect()
}

fn reason(body: &str) -> String {
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    body["metadata"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// curl, as a shell script would call it.
struct Curl;

impl Client for Curl {
    fn applist(&self, url: &str, user: &str, secret: &str) -> Answer {
        let mut child = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--insecure",
                "--write-out",
                "\n%{http_code}",
            ])
            // The header from a file (stdin), so that the secret is not on the command line.
            .args(["--header", "@-", &format!("{url}/json-api/applist")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl is installed (cargo xtask ci installs it)");
        let header = format!("Authorization: whm {user}:{secret}\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(header.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "curl failed: {}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        match code {
            "200" => Answer::Accepted(apps(&serde_json::from_str(body).unwrap())),
            "403" => Answer::Refused(reason(body)),
            other => panic!("HTTP {other}: {body}"),
        }
    }
}

/// ureq, a Rust HTTP client, with WHM API 1's shape.
struct Ureq;

impl Client for Ureq {
    fn applist(&self, url: &str, user: &str, secret: &str) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .get(&format!("{url}/json-api/applist?api.version=1"))
            .header("Authorization", &format!("WHM {user}:{secret}"))
            .call()
            .expect("the server answers");
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        match status {
            200 => {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["metadata"]["result"], 1, "{body}");
                assert_eq!(body["metadata"]["command"], "applist", "{body}");
                Answer::Accepted(apps(&body["data"]))
            }
            403 => Answer::Refused(reason(&body)),
            other => panic!("HTTP {other}: {body}"),
        }
    }
}

/// pycpanel from PyPI, in a virtualenv under target/tools.
struct PyCpanel {
    python: PathBuf,
}

impl PyCpanel {
    /// The client, installed when missing; `None` (the test then says it skipped) only
    /// where python3 is missing.
    fn installed() -> Option<Self> {
        static INSTALLED: OnceLock<Option<PathBuf>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                let python3 = Command::new("python3").arg("--version").output();
                if !python3.is_ok_and(|out| out.status.success()) {
                    return None;
                }
                let venv = target_folder().join("tools/pycpanel");
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pycpanel/install.sh");
                let out = Command::new("sh").arg(&script).arg(&venv).output().unwrap();
                assert!(
                    out.status.success(),
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(venv.join("bin/python"))
            })
            .clone()
            .map(|python| Self { python })
    }
}

impl Client for PyCpanel {
    fn applist(&self, url: &str, user: &str, secret: &str) -> Answer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pycpanel/client.py");
        let mut child = Command::new(&self.python)
            .arg(script)
            .args([url, user])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // As a billing module stores it: the access hash with its line feeds, which
        // pycpanel strips.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        match out.status.code() {
            Some(0) => Answer::Accepted(serde_json::from_str(&stdout).unwrap()),
            Some(3) => Answer::Refused(stdout.trim().to_owned()),
            _ => panic!(
                "pycpanel: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

fn assert_accepted(answer: Answer, step: &str) {
    let Answer::Accepted(apps) = answer else {
        panic!("{step}: expected accepted, got {answer:?}");
    };
    for app in ["applist", "version", "listaccts", "api_token_create"] {
        assert!(
            apps.iter().any(|a| a == app),
            "{step}: {app} missing from {apps:?}"
        );
    }
}

/// Refused, the client told only `Access denied` (exactly, when it shows the body's
/// reason as it is).
fn assert_refused(answer: Answer, step: &str, exactly: bool) {
    let Answer::Refused(reason) = answer else {
        panic!("{step}: expected refused, got {answer:?}");
    };
    if exactly {
        assert_eq!(reason, "Access denied", "{step}");
    } else {
        assert!(
            reason.contains("Access denied"),
            "{step}: {reason:?} does not say Access denied"
        );
    }
}

/// The whole story with one client on one backend.
fn story(client: &dyn Client, backend: &str, reasons: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", backend, &scenario(true, None));
    let logs = dir.path().join("logs");
    let served = Served::start(&config, &["--logs", logs.to_str().unwrap()]);
    // pycpanel sends the hash as stored, line feeds and all; the others without them.
    let sent = if reasons {
        secret()
    } else {
        ACCESS_HASH.to_owned()
    };

    assert_accepted(
        client.applist(&served.url, "bob", &sent),
        "access hash, setting on",
    );

    run(
        "fake-server",
        &["set", "--config", &config, "allow_deprecated_accesshash=0"],
    );
    assert_refused(
        client.applist(&served.url, "bob", &sent),
        "access hash, setting off",
        reasons,
    );

    run("convert_accesshash_to_token", &["--config", &config, "bob"]);
    assert_accepted(
        client.applist(&served.url, "bob", &sent),
        "converted: the same secret as a token",
    );

    run(
        "convert_accesshash_to_token",
        &[
            "--config",
            &config,
            "--replace",
            "--allow-ip",
            "192.0.2.1",
            "bob",
        ],
    );
    assert_refused(
        client.applist(&served.url, "bob", &sent),
        "token limited to 192.0.2.1, called from 127.0.0.1",
        reasons,
    );
    let (stopped, log) = served.stop();
    assert!(stopped, "SIGTERM stops the server cleanly");
    for why in [
        "access-hash authentication is off",
        "127.0.0.1 is not in the allow-list",
    ] {
        assert!(log.contains(why), "the server's log says {why:?}:\n{log}");
    }
    assert!(
        !log.contains(&secret()[..16]),
        "the access log holds no secret:\n{log}"
    );

    // The same token, expired (the converter refuses a past --expires: a scenario holds it),
    // the access hash retired.
    let config = build(
        dir.path(),
        "expired",
        backend,
        &scenario(false, Some(1_000_000_001)),
    );
    let served = Served::start(&config, &["--logs", logs.to_str().unwrap()]);
    assert_refused(
        client.applist(&served.url, "bob", &sent),
        "token expired",
        reasons,
    );
    let (_, log) = served.stop();
    assert!(log.contains("expired at 1000000001"), "{log}");
    // The server's own error_log has each reason the client was not told.
    let error_log = std::fs::read_to_string(logs.join("error_log")).unwrap();
    for why in [
        "access-hash authentication is off",
        "127.0.0.1 is not in the allow-list",
        "expired at 1000000001",
    ] {
        assert!(
            error_log
                .lines()
                .any(|l| l.contains(" 403: ") && l.contains(why)),
            "error_log says {why:?}:\n{error_log}"
        );
    }
    assert!(!error_log.contains(&secret()[..16]), "{error_log}");
}

fn curl_on_files() {
    story(&Curl, "files", true);
}

fn curl_on_sqlite() {
    story(&Curl, "sqlite", true);
}

fn ureq_on_files() {
    story(&Ureq, "files", true);
}

fn ureq_on_sqlite() {
    story(&Ureq, "sqlite", true);
}

/// Says on stderr that a test was skipped, and why.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn pycpanel_on_files() {
    match PyCpanel::installed() {
        Some(client) => story(&client, "files", false),
        None => skipped("pycpanel_on_files", "python3 is missing"),
    }
}

fn pycpanel_on_sqlite() {
    match PyCpanel::installed() {
        Some(client) => story(&client, "sqlite", false),
        None => skipped("pycpanel_on_sqlite", "python3 is missing"),
    }
}

/// A token of bob's whose secret the rehearsal's client sends: 32 characters of
/// `[0-9A-Z]`, as WHM makes them.
const TOKEN_SECRET: &str = "RHEARSAL0TOKEN0FOR0BOB0000000001";

/// The rehearsal (issue: evidence before the switch): a client authenticates with bob's
/// access hash and with bob's token; `whmtoken usage` then names both uses, with the
/// client's address and user agent, from the logs the fake WHM wrote (into the server's
/// own logs folder, or the one `--logs` names), and shows neither secret.
fn rehearsal(client: &dyn Client, backend: &str, agent: &str, sent: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = scenario(true, None);
    text.push_str(&format!(
        "\n[[user.token]]\nhash = \"{}\"\nname = \"billing\"\ncreate_time = 1000000000\n",
        TokenHash::of_secret(TOKEN_SECRET.as_bytes()).as_str()
    ));
    let config = build(dir.path(), "rehearsal", backend, &text);
    let elsewhere = dir.path().join("elsewhere-logs");
    for extra in [&[][..], &["--logs", elsewhere.to_str().unwrap()]] {
        let served = Served::start(&config, extra);
        assert_accepted(client.applist(&served.url, "bob", sent), "the access hash");
        assert_accepted(
            client.applist(&served.url, "bob", TOKEN_SECRET),
            "the token",
        );
        let (stopped, _) = served.stop();
        assert!(stopped);
        let mut args = vec!["--config", &config, "usage", "bob", "--json"];
        if !extra.is_empty() {
            args.extend(["--logs", elsewhere.to_str().unwrap()]);
        }
        let out = run("whmtoken", &args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains(&secret()[..16]) && !stdout.contains(TOKEN_SECRET),
            "{stdout}"
        );
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let bob = &doc["accounts"][0];
        assert_eq!(bob["user"], "bob", "{doc}");
        let billing = bob["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "billing")
            .unwrap_or_else(|| panic!("{doc}"));
        for (what, used) in [("access hash", &bob["accesshash"]), ("token", billing)] {
            assert_eq!(used["ok"], 1, "{backend}: the {what}: {doc}");
            let client = &used["clients"][0];
            assert_eq!(client["ip"], "127.0.0.1", "{doc}");
            let shown = client["user_agent"].as_str().unwrap_or_default();
            assert!(
                shown.starts_with(agent),
                "{backend}: the {what}'s client: {shown}"
            );
        }
    }
}

fn rehearsal_with_curl_on_files() {
    rehearsal(&Curl, "files", "curl/", &secret());
}

fn rehearsal_with_curl_on_sqlite() {
    rehearsal(&Curl, "sqlite", "curl/", &secret());
}

fn rehearsal_with_pycpanel_on_files() {
    match PyCpanel::installed() {
        Some(client) => rehearsal(&client, "files", "python-requests/", ACCESS_HASH),
        None => skipped("rehearsal_with_pycpanel_on_files", "python3 is missing"),
    }
}

fn rehearsal_with_pycpanel_on_sqlite() {
    match PyCpanel::installed() {
        Some(client) => rehearsal(&client, "sqlite", "python-requests/", ACCESS_HASH),
        None => skipped("rehearsal_with_pycpanel_on_sqlite", "python3 is missing"),
    }
}

/// One call with ureq: the status and the JSON body.
fn call(url: &str, authorization: Option<&str>, path_and_query: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&format!("{url}{path_and_query}"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.call().expect("the server answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn the_endpoints_answer_as_whm_api_1_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "sqlite", &scenario(true, None));
    let served = Served::start(&config, &[]);
    let url = served.url.clone();
    let bob = format!("whm bob:{}", secret());
    let bob = Some(bob.as_str());

    let (status, body) = call(&url, bob, "/json-api/version?api.version=1");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({
            "metadata": {"version": 1, "command": "version", "result": 1, "reason": "OK"},
            "data": {"version": whmtoken_fake_server::serve::WHM_VERSION}
        })
    );
    let (_, body) = call(&url, bob, "/json-api/version");
    assert_eq!(
        body,
        serde_json::json!({"version": whmtoken_fake_server::serve::WHM_VERSION})
    );

    let (status, body) = call(&url, bob, "/json-api/frobnicate?api.version=1");
    assert_eq!(status, 200);
    assert_eq!(body["metadata"]["result"], 0);
    assert!(
        body["metadata"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Unknown app"),
        "{body}"
    );

    // bob holds list-accts only: a token may get that, not more.
    let (_, body) = call(
        &url,
        bob,
        "/json-api/api_token_create?api.version=1&token_name=more&acl-1=create-acct",
    );
    assert_eq!(body["metadata"]["result"], 0, "{body}");
    let (_, body) = call(
        &url,
        bob,
        "/json-api/api_token_create?api.version=1&token_name=billing&acl-1=list-accts&whitelist_ip-1=127.0.0.1",
    );
    assert_eq!(body["metadata"]["result"], 1, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{token}"
    );
    assert_eq!(body["data"]["name"], "billing");
    let (_, body) = call(
        &url,
        bob,
        "/json-api/api_token_create?api.version=1&token_name=billing",
    );
    assert_eq!(
        body["metadata"]["reason"],
        "A conflicting API token with the name “billing” already exists."
    );

    let with_token = format!("WHM bob:{token}");
    let (status, body) = call(&url, Some(&with_token), "/json-api/listaccts?api.version=1");
    assert_eq!(status, 200);
    assert_eq!(body["metadata"]["result"], 1, "{body}");
    assert_eq!(
        body["data"]["acct"],
        serde_json::json!([
            {"user": "bob", "domain": "bob.example.com", "owner": "root", "suspended": 0},
            {"user": "carol", "domain": "carol.example", "owner": "bob", "suspended": 0},
        ]),
        "bob's own account and the one it owns"
    );
    let (_, body) = call(&url, bob, "/json-api/api_token_list?api.version=1");
    let listed = &body["data"]["tokens"]["billing"];
    assert_eq!(listed["acls"]["list-accts"], 1, "{body}");
    assert_eq!(listed["whitelist_ips"], serde_json::json!(["127.0.0.1"]));
    assert!(
        listed["acls"].get("create-acct").is_none(),
        "ACLs bob lacks are left out"
    );

    let (status, _) = call(&url, Some("whm root:"), "/json-api/version");
    assert_eq!(status, 403, "an empty secret is refused");
    let (_, body) = call(
        &url,
        bob,
        // The same name twice: one revocation, one line.
        "/json-api/api_token_revoke?api.version=1&token_name=billing&token_name-1=billing",
    );
    assert_eq!(body["metadata"]["result"], 1, "{body}");
    let (status, _) = call(&url, Some(&with_token), "/json-api/version");
    assert_eq!(status, 403, "a revoked token is refused at once");
    let (_, body) = call(
        &url,
        bob,
        "/json-api/api_token_revoke?api.version=1&token_name=billing",
    );
    assert_eq!(body["metadata"]["result"], 0, "{body}");

    let (_, body) = call(
        &url,
        bob,
        "/json-api/api_token_create?api.version=1&token_name=dns&acl-1=list-accts",
    );
    let dns = format!("whm bob:{}", body["data"]["token"].as_str().unwrap());
    let (_, body) = call(&url, Some(&dns), "/json-api/applist");
    assert!(
        body["app"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "listaccts"),
        "{body}"
    );

    let (_, log) = served.stop();
    let dump = run("fake-server", &["dump", "--config", &config]);
    let dump: serde_json::Value = serde_json::from_slice(&dump.stdout).unwrap();
    let lines: Vec<&str> = dump["accounting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].ends_with(":CREATEAPITOKEN:bob:bob:not-applicable:billing"),
        "the caller, not root: {lines:?}"
    );
    assert!(
        lines[1].ends_with(":REVOKEAPITOKEN:bob:bob:not-applicable:billing"),
        "{lines:?}"
    );
    assert!(
        lines[2].ends_with(":CREATEAPITOKEN:bob:bob:not-applicable:dns"),
        "{lines:?}"
    );
    assert!(
        !log.contains(&token) && !log.contains(&secret()),
        "no secret in the log:\n{log}"
    );
    assert!(
        !log.contains("api.version"),
        "paths are logged without their query:\n{log}"
    );
    let line = log.lines().next().unwrap();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        &fields[1..5],
        ["GET", "/json-api/version", "bob", "200"],
        "{line}"
    );
}

fn a_function_outside_the_callers_acls_answers_200_with_result_0() {
    let dir = tempfile::tempdir().unwrap();
    let without = scenario(true, None).replace("reseller = [\"list-accts\"]", "reseller = []");
    let config = build(dir.path(), "server", "files", &without);
    let served = Served::start(&config, &[]);
    let bob = format!("whm bob:{}", secret());
    let (status, body) = call(&served.url, Some(&bob), "/json-api/listaccts?api.version=1");
    assert_eq!(status, 200);
    assert_eq!(body["metadata"]["result"], 0, "{body}");
    assert!(
        body["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains("list-accts"),
        "{body}"
    );
    let (_, body) = call(&served.url, Some(&bob), "/json-api/applist");
    assert!(
        !body["app"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "listaccts"),
        "{body}"
    );
    let (_, body) = call(&served.url, Some(&bob), "/json-api/listaccts");
    assert_eq!(body["status"], 0, "the legacy shape: {body}");
}

fn refusals_are_403_access_denied_with_the_reason_in_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let logs = dir.path().join("logs");
    let served = Served::start(&config, &["--logs", logs.to_str().unwrap()]);
    let url = &served.url;
    let wrong = "ZZZZWRONGSECRETZZZZ";
    let cases = [
        (None, "no Authorization header"),
        (
            Some("Basic Ym9iOnBhc3N3b3Jk".to_owned()),
            "password authentication is not available",
        ),
        (
            Some(format!("Bearer bob:{}", secret())),
            "unsupported authorization scheme",
        ),
        (Some(format!("whm bob{}", secret())), "malformed"),
        (
            Some(format!("whm ../x:{}", secret())),
            "not a valid user name",
        ),
        (
            Some(format!("whm ghost:{}", secret())),
            "no account called ghost",
        ),
        (
            Some(format!("whm carol:{}", secret())),
            "carol is neither root nor a reseller",
        ),
        (
            Some(format!("whm bob:{wrong}")),
            "no token of bob matches this secret",
        ),
    ];
    for (header, _) in &cases {
        let (status, body) = call(url, header.as_deref(), "/json-api/version?api.version=1");
        assert_eq!(status, 403, "{header:?}: {body}");
        assert_eq!(
            body,
            serde_json::json!({"metadata": {"version": 1, "command": "version", "result": 0, "reason": "Access denied"}}),
            "{header:?}: the client learns nothing more"
        );
    }
    for scheme in ["whm", "WHM", "Whm"] {
        let (status, _) = call(
            url,
            Some(&format!("{scheme} bob:{}", secret())),
            "/json-api/version",
        );
        assert_eq!(status, 200, "{scheme}");
    }
    let (_, log) = served.stop();
    assert!(!log.contains(wrong) && !log.contains("Ym9i"), "{log}");
    let error_log = std::fs::read_to_string(logs.join("error_log")).unwrap();
    assert_eq!(error_log.lines().count(), cases.len(), "{error_log}");
    for ((_, why), line) in cases.iter().zip(error_log.lines()) {
        assert!(
            line.contains(" 403: ") && line.contains(why),
            "error_log says {why:?}: {line}"
        );
    }
    assert!(
        !error_log.contains(wrong) && !error_log.contains(&secret()),
        "{error_log}"
    );
}

fn https_with_a_certificate_made_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "sqlite", &scenario(true, None));
    let served = Served::start(&config, &["--tls"]);
    assert!(
        served.url.starts_with("https://127.0.0.1:"),
        "{}",
        served.url
    );
    let fingerprint = served.more[0]
        .strip_prefix("certificate SHA-256 fingerprint: ")
        .unwrap_or_else(|| panic!("{:?}", served.more));
    let bytes: Vec<&str> = fingerprint.split(':').collect();
    assert_eq!(bytes.len(), 32, "{fingerprint}");
    assert!(
        bytes
            .iter()
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
    );
    assert_accepted(
        Curl.applist(&served.url, "bob", &secret()),
        "curl over HTTPS",
    );
    if let Some(client) = PyCpanel::installed() {
        assert_accepted(
            client.applist(&served.url, "bob", ACCESS_HASH),
            "pycpanel over HTTPS",
        );
    }
}

/// A certificate for `localhost` made for the test, and its PEM files in `dir`.
fn self_signed_pem_files(
    dir: &std::path::Path,
) -> (
    rcgen::CertifiedKey<rcgen::KeyPair>,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (made, cert, key)
}

fn https_with_a_certificate_given_as_pem_files() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let (made, cert, key) = self_signed_pem_files(dir.path());
    let served = Served::start(
        &config,
        &[
            "--tls",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let expected: Vec<String> = sha2::Sha256::digest(made.cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(
        served.more[0],
        format!("certificate SHA-256 fingerprint: {}", expected.join(":"))
    );
    // curl checks the certificate against the given one: no --insecure here.
    let port = served.url.rsplit(':').next().unwrap();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--cacert",
            cert.to_str().unwrap(),
        ])
        .args(["--header", &format!("Authorization: whm bob:{}", secret())])
        .arg(format!("https://localhost:{port}/json-api/version"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["version"], whmtoken_fake_server::serve::WHM_VERSION);
}

/// A plain TCP connection to the server at `url` (`http://ADDR:PORT`); reads give up
/// after 20 s, long past every limit the tests set, so a server that never answers fails
/// the test instead of hanging it.
fn connect(url: &str) -> std::net::TcpStream {
    let address = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap();
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection; panics if it does not.
fn until_closed(stream: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server did not close the connection ({e}); it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// One answer on a keep-alive connection: its status line and headers, and its body.
fn response(stream: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!(
                "no answer: {other:?} after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

const VERSION_REQUEST: &[u8] = b"GET /json-api/version HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The access_log lines whose status is `status`.
fn access_lines(logs: &Path, status: u16) -> Vec<String> {
    std::fs::read_to_string(logs.join("access_log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&format!("\" {status} ")))
        .map(str::to_owned)
        .collect()
}

fn a_partial_header_is_closed_after_the_timeout_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let logs = dir.path().join("logs");
    let served = Served::start(
        &config,
        &[
            "--logs",
            logs.to_str().unwrap(),
            "--header-timeout",
            "0.3",
            "--idle-timeout",
            "0.5",
        ],
    );
    let mut slow = connect(&served.url);
    slow.write_all(b"GET /json-api/version HTTP/1.1\r\nHost: loc")
        .unwrap();
    let mut quiet = connect(&served.url);
    let bob = format!("whm bob:{}", secret());
    let (status, _) = call(&served.url, Some(&bob), "/json-api/version");
    assert_eq!(status, 200, "a normal client is served meanwhile");
    let answer = until_closed(&mut slow);
    assert!(
        answer.starts_with("HTTP/1.1 408 "),
        "the partial header gets 408, then the connection closes: {answer:?}"
    );
    assert_eq!(
        until_closed(&mut quiet),
        "",
        "a connection that sends nothing is closed after the idle timeout, without an answer"
    );
    served.stop();
    let lines = access_lines(&logs, 408);
    assert_eq!(lines.len(), 1, "one access_log line for the 408");
    assert!(
        lines[0].contains("\"GET /json-api/version HTTP/1.1\" 408 "),
        "{}",
        lines[0]
    );
}

fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let served = Served::start(&config, &["--idle-timeout", "0.3"]);
    let mut client = connect(&served.url);
    client.write_all(VERSION_REQUEST).unwrap();
    assert!(response(&mut client).starts_with("HTTP/1.1 403 "));
    assert_eq!(until_closed(&mut client), "", "closed without a word");
}

fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let served = Served::start(&config, &["--max-connections", "2"]);
    let mut oldest = connect(&served.url);
    oldest.write_all(VERSION_REQUEST).unwrap();
    assert!(response(&mut oldest).starts_with("HTTP/1.1 403 "));
    let mut newer = connect(&served.url);
    newer.write_all(VERSION_REQUEST).unwrap();
    assert!(response(&mut newer).starts_with("HTTP/1.1 403 "));
    // Both idle, the cap reached: a new client is served, the oldest idle one closed.
    let bob = format!("whm bob:{}", secret());
    let (status, _) = call(&served.url, Some(&bob), "/json-api/version");
    assert_eq!(status, 200, "a new client is served at the cap");
    assert_eq!(
        until_closed(&mut oldest),
        "",
        "the oldest idle connection is closed"
    );
    newer.write_all(VERSION_REQUEST).unwrap();
    assert!(
        response(&mut newer).starts_with("HTTP/1.1 403 "),
        "the newer one is still served"
    );
}

fn an_over_limit_body_gets_413_and_a_slow_one_408() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let logs = dir.path().join("logs");
    let served = Served::start(
        &config,
        &[
            "--logs",
            logs.to_str().unwrap(),
            "--max-body",
            "1024",
            "--header-timeout",
            "0.3",
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let bob = format!("whm bob:{}", secret());
    let post = |body: String| {
        agent
            .post(&format!("{}/json-api/version", served.url))
            .header("Authorization", &bob)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body)
            .expect("the server answers")
            .status()
            .as_u16()
    };
    assert_eq!(post(format!("api.version=1&x={}", "a".repeat(900))), 200);
    assert_eq!(post(format!("api.version=1&x={}", "a".repeat(2000))), 413);
    // A body announced and never sent in full.
    let mut slow = connect(&served.url);
    slow.write_all(
        b"POST /json-api/version HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\napi.versi",
    )
    .unwrap();
    let answer = until_closed(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    served.stop();
    assert_eq!(access_lines(&logs, 413).len(), 1, "the 413 is logged");
    assert_eq!(access_lines(&logs, 408).len(), 1, "the 408 is logged");
}

fn requests_refused_by_the_http_layer_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "sqlite", &scenario(true, None));
    let logs = dir.path().join("logs");
    let served = Served::start(&config, &["--logs", logs.to_str().unwrap()]);
    let long_uri = format!(
        "GET /json-api/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = format!(
        "GET /json-api/version HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..120)
            .map(|i| format!("X-Filler-{i}: y\r\n"))
            .collect::<String>()
    );
    for (request, status) in [
        (long_uri.as_bytes(), "414"),
        (many_headers.as_bytes(), "431"),
        (&b"NOT HTTP AT ALL\r\n\r\n"[..], "400"),
    ] {
        let mut client = connect(&served.url);
        client.write_all(request).unwrap();
        let answer = until_closed(&mut client);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer:?}"
        );
    }
    let (_, log) = served.stop();
    for status in [414, 431, 400] {
        let lines = access_lines(&logs, status);
        assert_eq!(lines.len(), 1, "{status}: one access_log line");
        assert!(
            log.contains(&format!(" {status} ")),
            "{status} on stderr too:\n{log}"
        );
    }
    assert!(
        access_lines(&logs, 414)[0].contains("\"GET /json-api/aaaa"),
        "the request line, cut short"
    );
    assert!(access_lines(&logs, 414)[0].len() < 1000);
}

/// A TLS client trusting `cert` (DER), over a new connection to `url`.
fn tls_connect(
    url: &str,
    cert: &[u8],
) -> tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, std::net::TcpStream>
{
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(connection, connect(url))
}

fn https_closes_slow_handshakes_and_partial_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = build(dir.path(), "server", "files", &scenario(true, None));
    let (made, cert, key) = self_signed_pem_files(dir.path());
    let served = Served::start(
        &config,
        &[
            "--tls",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--header-timeout",
            "0.3",
            "--tls-handshake-timeout",
            "0.3",
        ],
    );
    let mut no_handshake = connect(&served.url);
    let mut slow = tls_connect(&served.url, made.cert.der());
    slow.write_all(b"GET /json-api/version HTTP/1.1\r\nHost: loc")
        .unwrap();
    slow.flush().unwrap();
    assert_accepted(
        Curl.applist(&served.url, "bob", &secret()),
        "a normal client over HTTPS meanwhile",
    );
    assert_eq!(
        until_closed(&mut no_handshake),
        "",
        "a connection that never shakes hands is closed"
    );
    let answer = until_closed(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
}

fn tokens_are_created_and_revoked_within_the_callers_limits() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(true, None).replace(
        "reseller = [\"list-accts\"]",
        "reseller = [\"list-accts\", \"create-acct\"]",
    );
    let config = build(dir.path(), "server", "files", &text);
    let served = Served::start(&config, &[]);
    let url = served.url.clone();
    let bob = format!("whm bob:{}", secret());
    let api = |auth: &str, call_: &str, query: &str| {
        let (status, body) = call(
            &url,
            Some(auth),
            &format!("/json-api/{call_}?api.version=1&{query}"),
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    let created = |auth: &str, query: &str| {
        let body = api(auth, "api_token_create", query);
        assert_eq!(body["metadata"]["result"], 1, "{query}: {body}");
        format!("whm bob:{}", body["data"]["token"].as_str().unwrap())
    };
    let now = jiff::Timestamp::now().as_second();
    let (soon, later) = (now + 3600, now + 7200);
    let limited = created(
        &bob,
        &format!(
            "token_name=limited&acl-1=list-accts&expires_at={soon}&whitelist_ip-1=127.0.0.0/8"
        ),
    );
    for (query, why) in [
        ("token_name=full".to_owned(), "full-access"),
        (
            format!("token_name=more&acl-1=create-acct&expires_at={soon}&whitelist_ip-1=127.0.0.1"),
            "create-acct",
        ),
        (
            "token_name=forever&acl-1=list-accts&whitelist_ip-1=127.0.0.1".to_owned(),
            "expires_at",
        ),
        (
            format!(
                "token_name=later&acl-1=list-accts&expires_at={later}&whitelist_ip-1=127.0.0.1"
            ),
            "cannot expire later",
        ),
        (
            format!("token_name=anywhere&acl-1=list-accts&expires_at={soon}"),
            "allow-list",
        ),
        (
            format!("token_name=wider&acl-1=list-accts&expires_at={soon}&whitelist_ip-1=0.0.0.0/0"),
            "0.0.0.0/0",
        ),
    ] {
        let body = api(&limited, "api_token_create", &query);
        assert_eq!(body["metadata"]["result"], 0, "{query}: {body}");
        let reason = body["metadata"]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{query}: {reason}");
    }
    let within = created(
        &limited,
        &format!(
            "token_name=within&acl-1=list-accts&expires_at={}&whitelist_ip-1=127.0.0.1",
            soon - 60
        ),
    );
    assert_eq!(call(&url, Some(&within), "/json-api/version").0, 200);

    let full = created(&bob, "token_name=full");
    created(&bob, "token_name=accounts&acl-1=create-acct");
    let narrow = created(&bob, "token_name=narrow&acl-1=create-acct");
    for (name, why) in [("full", "“all”"), ("limited", "“list-accts”")] {
        let body = api(&narrow, "api_token_revoke", &format!("token_name={name}"));
        assert_eq!(body["metadata"]["result"], 0, "{name}: {body}");
        assert!(
            body["metadata"]["reason"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    assert_eq!(
        call(&url, Some(&full), "/json-api/version").0,
        200,
        "the full-access token was not revoked"
    );
    let body = api(&narrow, "api_token_revoke", "token_name=accounts");
    assert_eq!(body["metadata"]["result"], 1, "{body}");
    let body = api(&limited, "api_token_revoke", "token_name=within");
    assert_eq!(body["metadata"]["result"], 1, "{body}");
    assert_eq!(call(&url, Some(&within), "/json-api/version").0, 403);
    served.stop();

    let dump = run("fake-server", &["dump", "--config", &config]);
    let dump: serde_json::Value = serde_json::from_slice(&dump.stdout).unwrap();
    let events: Vec<String> = dump["accounting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let line = l.as_str().unwrap();
            // After the time (`Thu Dec  4 13:27:53 2026:`): ACTION:actor:user:domain:name.
            line.splitn(4, ':').nth(3).unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "CREATEAPITOKEN:bob:bob:not-applicable:limited",
            "CREATEAPITOKEN:bob:bob:not-applicable:within",
            "CREATEAPITOKEN:bob:bob:not-applicable:full",
            "CREATEAPITOKEN:bob:bob:not-applicable:accounts",
            "CREATEAPITOKEN:bob:bob:not-applicable:narrow",
            "REVOKEAPITOKEN:bob:bob:not-applicable:accounts",
            "REVOKEAPITOKEN:bob:bob:not-applicable:within",
        ],
        "no line for a refused call"
    );
}

fn main() -> ExitCode {
    if let Some(status) = support::act_as_a_program() {
        return status;
    }
    support::run(tests![
        curl_on_files,
        curl_on_sqlite,
        ureq_on_files,
        ureq_on_sqlite,
        pycpanel_on_files,
        pycpanel_on_sqlite,
        rehearsal_with_curl_on_files,
        rehearsal_with_curl_on_sqlite,
        rehearsal_with_pycpanel_on_files,
        rehearsal_with_pycpanel_on_sqlite,
        the_endpoints_answer_as_whm_api_1_does,
        a_function_outside_the_callers_acls_answers_200_with_result_0,
        refusals_are_403_access_denied_with_the_reason_in_the_servers_log,
        https_with_a_certificate_made_at_start,
        https_with_a_certificate_given_as_pem_files,
        a_partial_header_is_closed_after_the_timeout_while_others_are_served,
        an_idle_keep_alive_connection_is_closed_after_the_idle_timeout,
        at_the_cap_the_oldest_idle_connection_makes_room,
        an_over_limit_body_gets_413_and_a_slow_one_408,
        requests_refused_by_the_http_layer_are_logged,
        https_closes_slow_handshakes_and_partial_headers,
        tokens_are_created_and_revoked_within_the_callers_limits,
    ])
}
