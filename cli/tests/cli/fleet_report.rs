//! `whmtoken report` (issue 24, item 3) and the host name of `whmtoken audit --json`: the
//! documents of real audits of fake servers (one with a token named like markup) written
//! as CSV, JSON Lines and the HTML page, read back; the refusals (a host twice, a document
//! of another kind) and their exit statuses; nothing written when refused.

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

use crate::{Run, whmtoken};

const HOSTILE: &str = "<script>document.title='pwned'</script>";

/// Runs `whmtoken ARGS` (no server needed: report reads only its inputs).
fn report(args: &[&str], stdin: &str) -> Run {
    whmtoken(Utf8Path::new("/nonexistent/whmtoken.toml"), args, stdin)
}

/// Two servers' audit documents in a folder: `web1` (root and res1 converted, res1's token
/// renamed to [`HOSTILE`], root's access hash retired by hand) and `web2` (nothing
/// converted, access hashes accepted).
fn fleet() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let docs = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let web1 = server(&["res1", "res2"]);
    let out = crate::run(&web1, &["root", "res1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut tokens = web1.token_document("res1").unwrap();
    let key = tokens["tokens"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    tokens["tokens"][&key]["name"] = json!(HOSTILE);
    web1.write_token_file("res1", &tokens.to_string());
    std::fs::remove_file(web1.access_hash_path("root")).unwrap();
    let web2 = server(&["res3"]);
    web2.append(
        "var/cpanel/cpanel.config",
        "allow_deprecated_accesshash=1\n",
    );
    for (server, host) in [(&web1, "web1.example"), (&web2, "web2.example")] {
        let out = whmtoken(
            &server.config_path(),
            &[
                "audit",
                "--json",
                "--no-usage",
                "--fail-on",
                "never",
                "--host",
                host,
            ],
            "",
        );
        assert_eq!(out.code, 0, "{out:?}");
        std::fs::write(docs.join(format!("{host}.json")), &out.stdout).unwrap();
    }
    (dir, docs)
}

fn server(resellers: &[&str]) -> FakeServer {
    let mut server = FakeServer::new();
    server.write_access_hash("root", &cpanel_style_access_hash("root"));
    for name in resellers {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    server
}

#[test]
fn the_audit_document_carries_the_machines_host_name_or_the_one_given() {
    let server = server(&[]);
    let audit = |extra: &[&str]| {
        let args = [
            &["audit", "--json", "--no-usage", "--fail-on", "never"][..],
            extra,
        ]
        .concat();
        let out = whmtoken(&server.config_path(), &args, "");
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str::<Value>(&out.stdout).unwrap()["host"].clone()
    };
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(audit(&[]), json!(machine.trim()));
    assert_eq!(
        audit(&["--host", "cp1.example.net"]),
        json!("cp1.example.net")
    );
}

/// A CSV file's records, as RFC 4180 reads them.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record ends its line"
    );
    records
}

#[test]
fn csv_is_one_row_per_finding_under_its_header() {
    let (_dir, docs) = fleet();
    let out = report(&["report", "--format", "csv", docs.as_str()], "");
    assert_eq!(out.code, 0, "{out:?}");
    let records = csv_records(&out.stdout);
    assert_eq!(
        records[0],
        ["host", "user", "severity", "code", "token", "message"]
    );
    let documents: Vec<Value> = ["web1.example", "web2.example"]
        .iter()
        .map(|h| {
            serde_json::from_str(&std::fs::read_to_string(docs.join(format!("{h}.json"))).unwrap())
                .unwrap()
        })
        .collect();
    let mut expected = Vec::new();
    for doc in &documents {
        let host = doc["host"].as_str().unwrap();
        let server = doc["server"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| ("", f));
        let accounts = doc["accounts"].as_array().unwrap().iter().flat_map(|a| {
            let user = a["user"].as_str().unwrap();
            a["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (user, f))
        });
        for (user, f) in server.chain(accounts) {
            let text = |key: &str| f[key].as_str().unwrap_or("").to_owned();
            expected.push(vec![
                host.to_owned(),
                user.to_owned(),
                text("severity"),
                text("code"),
                text("token"),
                text("message"),
            ]);
        }
    }
    assert_eq!(records[1..], expected[..]);
    assert!(expected.len() > 5, "{expected:?}");
    assert!(
        expected.iter().any(|r| r[4] == HOSTILE),
        "the hostile token has a finding"
    );
    assert!(
        expected.iter().any(|r| r[1].is_empty()),
        "a server finding has no user"
    );
}

#[test]
fn json_lines_are_one_object_per_account_and_per_finding() {
    let (_dir, docs) = fleet();
    let out = report(&["report", "--format", "jsonl", docs.as_str()], "");
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for line in &lines {
        let expected: &[&str] = match line["kind"].as_str().unwrap() {
            "account" => &["kind", "host", "user", "accesshash", "tokens", "last_used"],
            "finding" => &[
                "kind", "host", "user", "severity", "code", "token", "message",
            ],
            other => panic!("kind {other}"),
        };
        assert_eq!(keys(line), expected);
    }
    let accounts: Vec<(&str, &str, &str)> = lines
        .iter()
        .filter(|l| l["kind"] == "account")
        .map(|l| {
            (
                l["host"].as_str().unwrap(),
                l["user"].as_str().unwrap(),
                l["accesshash"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        accounts,
        [
            ("web1.example", "root", "none"),
            ("web1.example", "res1", "converted"),
            ("web1.example", "res2", "not_converted"),
            ("web2.example", "root", "not_converted"),
            ("web2.example", "res3", "not_converted"),
        ]
    );
    let res1 = lines
        .iter()
        .find(|l| l["kind"] == "account" && l["user"] == "res1")
        .unwrap();
    assert_eq!(res1["tokens"][0]["name"], HOSTILE);
    assert_eq!(res1["tokens"][0]["from_accesshash"], true);
    assert_eq!(res1["tokens"][0]["hash_prefix"].as_str().unwrap().len(), 12);
    let server_finding = lines
        .iter()
        .find(|l| l["kind"] == "finding" && l["user"].is_null());
    assert_eq!(server_finding.unwrap()["host"], "web2.example");
}

/// The page's inline elements: `(opening tag, text)`, in order.
fn elements<'a>(page: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find(&open) {
        let (head, body) = rest[at..].split_once('>').unwrap();
        let (text, after) = body.split_once(&close).unwrap();
        found.push((head, text));
        rest = after;
    }
    found
}

fn sha256_source(text: &str) -> String {
    use std::fmt::Write as _;
    // Base64 by hand, checked against the page's own.
    let digest = Sha256::digest(text.as_bytes());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = String::new();
    for byte in digest {
        write!(bits, "{byte:08b}").unwrap();
    }
    bits.push_str("00");
    let encoded: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            alphabet[usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()] as char
        })
        .collect();
    format!("'sha256-{encoded}='")
}

#[test]
fn the_page_is_self_contained_and_no_server_text_is_markup() {
    let (_dir, docs) = fleet();
    let elsewhere = tempfile::tempdir().unwrap();
    let page_file = Utf8PathBuf::from_path_buf(elsewhere.path().join("fleet.html")).unwrap();
    let out = report(&["report", "-o", page_file.as_str(), docs.as_str()], "");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let page = std::fs::read_to_string(&page_file).unwrap();
    assert!(
        !page.contains(HOSTILE) && !page.contains("pwned'</"),
        "the name is escaped"
    );
    let scripts = elements(&page, "script");
    // No remote load, no inline handler: the markup outside the inline elements names no
    // other place and has no `on…=` attribute; the script loads nothing and parses no HTML.
    let mut markup = page.clone();
    for (_, text) in scripts.iter().chain(&elements(&page, "style")) {
        markup = markup.replacen(text, "", 1);
    }
    for remote in ["http:", "https:", "//", "src=", "href=", "@import", "url("] {
        assert!(!markup.contains(remote), "{remote}");
    }
    assert!(!inline_handler(&markup), "no inline handler");
    let (code, data): (Vec<&(&str, &str)>, Vec<_>) =
        scripts.iter().partition(|(head, _)| *head == "<script");
    assert_eq!(code.len(), 1, "one script of the page's own");
    assert_eq!(
        data.len(),
        4,
        "the fleet's summary, its findings, and one element per server"
    );
    assert_eq!(data[0].0, "<script type=\"application/json\" id=\"fleet\"");
    assert!(!data[0].1.contains('<'));
    // The findings and each server's accounts: gzipped JSON in base64.
    let data: Vec<Value> = std::iter::once(serde_json::from_str(data[0].1).unwrap())
        .chain(data[1..].iter().map(|(head, text)| {
            assert!(
                head.starts_with("<script type=\"application/x-gzip-base64\" id=\""),
                "{head}"
            );
            assert!(!text.contains('<'), "{text}");
            gunzip_base64(text)
        }))
        .collect();
    // The policy allows the page's own script and style by hash, and nothing else.
    let policy = page
        .split_once("http-equiv=\"Content-Security-Policy\" content=\"")
        .unwrap()
        .1
        .split_once('"')
        .unwrap()
        .0;
    let (_, style) = elements(&page, "style")[0];
    assert_eq!(
        policy,
        format!(
            "default-src 'none'; script-src {}; style-src {}; img-src data:; base-uri 'none'; form-action 'none'",
            sha256_source(code[0].1),
            sha256_source(style)
        )
    );
    for call in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "fetch(",
        "XMLHttpRequest",
        "import(",
    ] {
        assert!(!code[0].1.contains(call), "{call}");
    }
    let fleet = &data[0];
    let hosts: Vec<&str> = fleet["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web1.example", "web2.example"]);
    let web1 = &fleet["servers"][0];
    assert_eq!(
        (
            web1["retired"].clone(),
            web1["converted"].clone(),
            web1["not_converted"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(fleet["servers"][1]["accepting"], true);
    assert!(
        data[1]["tokens"]
            .as_array()
            .unwrap()
            .contains(&json!(HOSTILE))
    );
    let details = &data[2];
    // [user, state, last use, tokens], a token [name, key prefix, …].
    assert_eq!(
        (&details[0][0], &details[0][1]),
        (&json!("root"), &json!("retired"))
    );
    assert!(
        details[0][3][0][0]
            .as_str()
            .unwrap()
            .starts_with("accesshash-")
    );
    assert_eq!(details[1][3][0][0], HOSTILE);
    assert_eq!(details[1][3][0][1].as_str().unwrap().len(), 12);
}

/// An element's text, gzipped JSON in base64, read back.
fn gunzip_base64(text: &str) -> Value {
    const DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::new();
    let (mut bits, mut n) = (0u32, 0);
    for c in text.chars().filter(|c| *c != '=') {
        bits = bits << 6 | DIGITS.find(c).expect("base64") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Whether an HTML attribute `on…=` (an inline event handler) appears in a tag.
fn inline_handler(markup: &str) -> bool {
    markup
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(head, _)| head))
        .any(|head| {
            head.split_whitespace()
                .any(|attribute| attribute.starts_with("on") && attribute.contains('='))
        })
}

/// The end of the refusal of a host twice.
const SAME_HOST: &str = "(host names are compared regardless of case): each server needs its own host name (whmtoken audit --host NAME)";

#[test]
fn a_host_twice_is_refused_naming_both_files_and_nothing_is_written() {
    let (_dir, docs) = fleet();
    // Another server whose host differs only in case: DNS names are the same.
    let copy = docs.join("copy-of-web1.json");
    let web1 = std::fs::read_to_string(docs.join("web1.example.json")).unwrap();
    std::fs::write(&copy, web1.replace("\"web1.example\"", "\"WEB1.Example\"")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Utf8PathBuf::from_path_buf(elsewhere.path().join("out.csv")).unwrap();
    for format in ["html", "csv", "jsonl"] {
        let out = report(
            &[
                "report",
                "--format",
                format,
                "-o",
                output.as_str(),
                docs.as_str(),
            ],
            "",
        );
        assert_eq!(out.code, 65, "{out:?}");
        assert_eq!(
            out.stderr,
            format!(
                "error: {}: host “web1.example” is also the host of {} {SAME_HOST}\n",
                docs.join("web1.example.json"),
                copy
            )
        );
        assert!(!output.exists(), "{format}: nothing written");
    }
}

#[test]
fn a_document_of_another_kind_is_refused_naming_its_file() {
    let (_dir, docs) = fleet();
    let convert_report = docs.join("convert.json");
    std::fs::write(
        &convert_report,
        r#"{"version":1,"dry_run":false,"backend":"files","results":[],"summary":{}}"#,
    )
    .unwrap();
    let out = report(&["report", "--format", "csv", docs.as_str()], "");
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: {convert_report}: not an audit document (whmtoken audit --json): missing field `host`"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    for text in ["", "not json", "[]", r#"{"version":2,"host":"x"}"#] {
        let out = report(&["report", "-"], text);
        assert_eq!(out.code, 65, "{text}: {out:?}");
        assert!(
            out.stderr
                .starts_with("error: standard input: not an audit document"),
            "{}",
            out.stderr
        );
    }
    let empty = docs.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = report(&["report", empty.as_str()], "");
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("error: no audit document in {empty}: a folder's documents are its *.json files\n")
    );
    let out = report(&["report", docs.join("missing.json").as_str()], "");
    assert_eq!(out.code, 74, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: cannot read {}: ",
            docs.join("missing.json")
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn standard_input_may_hold_several_documents() {
    let (_dir, docs) = fleet();
    let both = ["web1.example", "web2.example"]
        .map(|h| std::fs::read_to_string(docs.join(format!("{h}.json"))).unwrap())
        .concat();
    let from_stdin = report(&["report", "--format", "jsonl", "-"], &both);
    let from_folder = report(&["report", "--format", "jsonl", docs.as_str()], "");
    assert_eq!(from_stdin.code, 0, "{from_stdin:?}");
    assert_eq!(from_stdin.stdout, from_folder.stdout);
}

#[test]
fn a_host_twice_in_standard_input_is_refused_naming_which_documents() {
    let (_dir, docs) = fleet();
    let web1 = std::fs::read_to_string(docs.join("web1.example.json")).unwrap();
    let web2 = std::fs::read_to_string(docs.join("web2.example.json")).unwrap();
    let out = report(
        &["report", "--format", "csv", "-"],
        &[&*web2, &*web1, &*web1].concat(),
    );
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: standard input (document 3): host “web1.example” is also the host of standard input (document 2) {SAME_HOST}\n"
        )
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn an_empty_host_is_refused_by_the_audit_and_by_the_report() {
    let server = server(&[]);
    for host in ["", " "] {
        let out = whmtoken(
            &server.config_path(),
            &["audit", "--json", "--no-usage", "--host", host],
            "",
        );
        assert_eq!(out.code, 64, "{out:?}");
        assert!(out.stderr.contains("--host needs a host name"), "{out:?}");
        assert_eq!(out.stdout, "");
    }
    let (_dir, docs) = fleet();
    let web1 = docs.join("web1.example.json");
    let text = std::fs::read_to_string(&web1).unwrap();
    std::fs::write(&web1, text.replace("\"web1.example\"", "\"\"")).unwrap();
    for format in ["html", "csv", "jsonl"] {
        let out = report(&["report", "--format", format, docs.as_str()], "");
        assert_eq!(out.code, 65, "{out:?}");
        assert_eq!(
            out.stderr,
            format!(
                "error: {web1}: the host is empty: each server needs its host name (whmtoken audit --host NAME)\n"
            )
        );
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn servers_that_could_not_be_audited_are_in_every_format() {
    let (_dir, docs) = fleet();
    let missing = |format: &str| {
        let out = report(
            &[
                "report",
                "--format",
                format,
                "--missing",
                "web9.example",
                "--missing",
                "web0.example",
                docs.as_str(),
            ],
            "",
        );
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
    };
    let csv = csv_records(&missing("csv"));
    for host in ["web0.example", "web9.example"] {
        let row: Vec<String> = [
            host,
            "",
            "critical",
            "not_audited",
            "",
            &format!(
                "{host}: not audited: no audit document (its audit failed, or it was unreachable)"
            ),
        ]
        .map(str::to_owned)
        .to_vec();
        assert!(csv.contains(&row), "{host}: {csv:?}");
    }
    let lines: Vec<Value> = missing("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let not_audited: Vec<&Value> = lines
        .iter()
        .filter(|l| l["code"] == "not_audited")
        .collect();
    assert_eq!(not_audited.len(), 2, "{lines:?}");
    assert_eq!(not_audited[0]["host"], "web0.example");
    assert_eq!(not_audited[0]["severity"], "critical");
    assert_eq!(not_audited[0]["user"], Value::Null);
    let page = missing("html");
    assert!(
        page.contains(r#""missing":["web0.example","web9.example"]"#),
        "the page's data names them"
    );
    assert!(page.contains(r#"<section id="missing""#));

    // Empty, twice (regardless of case), or a host that has a document: refused.
    for (args, code, error) in [
        (&["--missing", ""][..], 64, "--missing needs a host name"),
        (
            &["--missing", "web9.example", "--missing", "WEB9.example"][..],
            64,
            "--missing “WEB9.example” given twice",
        ),
        (
            &["--missing", "Web2.Example"][..],
            65,
            "host “web2.example” is also given with --missing",
        ),
    ] {
        let out = report(&[&["report"][..], args, &[docs.as_str()]].concat(), "");
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(error), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn the_output_is_never_an_input_nor_inside_an_input_folder() {
    let (_dir, docs) = fleet();
    let web1 = docs.join("web1.example.json");
    let before = std::fs::read(&web1).unwrap();
    let inside = docs.join("fleet.html");
    let relative_docs = format!("{}/../{}", docs, docs.file_name().unwrap());
    for (output, inputs, error) in [
        (
            inside.as_str(),
            vec![docs.as_str()],
            format!("-o {inside}: is inside the input folder {docs}: write the report elsewhere"),
        ),
        (
            inside.as_str(),
            vec![relative_docs.as_str()],
            format!(
                "-o {inside}: is inside the input folder {relative_docs}: write the report elsewhere"
            ),
        ),
        (
            web1.as_str(),
            vec![web1.as_str()],
            format!("-o {web1}: is the input {web1}: write the report elsewhere"),
        ),
    ] {
        let out = report(&[&["report", "-o", output][..], &inputs].concat(), "");
        assert_eq!(out.code, 64, "{out:?}");
        assert_eq!(out.stderr, format!("error: {error}\n"));
    }
    assert!(!inside.exists());
    assert_eq!(
        std::fs::read(&web1).unwrap(),
        before,
        "the input is untouched"
    );
}
