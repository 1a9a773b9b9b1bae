//! The whole of `usage` on logs held in memory: classification, the join across time
//! zones and a daylight-saving change, rotations and archives, coverage, and hostile lines.

use std::io::{Read, Write};

use crate::logs::{LogFile, Logs};

use super::*;

#[derive(Debug, Default)]
struct Folder {
    files: Vec<(String, Vec<u8>, i64)>,
}

impl Folder {
    fn with(mut self, name: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_owned(), content.into(), NOW));
        self
    }

    fn dated(mut self, name: &str, content: impl Into<Vec<u8>>, modified: i64) -> Self {
        self.files.push((name.to_owned(), content.into(), modified));
        self
    }
}

impl Logs for Folder {
    fn location(&self) -> &str {
        "/logs"
    }

    fn files(&self) -> Result<Vec<LogFile>, crate::BackendError> {
        Ok(self
            .files
            .iter()
            .filter(|(name, ..)| LogName::parse(name).is_some())
            .map(|(name, _, modified)| LogFile {
                name: name.clone(),
                location: format!("/logs/{name}"),
                modified: *modified,
            })
            .collect())
    }

    fn open(&self, file: &LogFile) -> Result<Box<dyn Read + Send + '_>, crate::BackendError> {
        let (_, content, _) = self.files.iter().find(|(n, ..)| *n == file.name).unwrap();
        Ok(Box::new(&content[..]))
    }
}

/// 2026-12-03 21:19:22 UTC.
const NOW: i64 = 1_796_332_762;

fn window() -> Window {
    Window {
        from: NOW - DEFAULT_WINDOW_SECONDS,
        to: NOW,
    }
}

fn covered() -> Vec<Covered> {
    vec![
        Covered {
            user: "root".into(),
            tokens: vec![],
        },
        Covered {
            user: "bob".into(),
            tokens: vec![
                ("billing".into(), Some(NOW - 400 * 86_400)),
                ("spare".into(), Some(NOW - 400 * 86_400)),
            ],
        },
    ]
}

/// `MM/DD/YYYY:HH:MM:SS -0000` of an epoch.
fn access_time(epoch: i64) -> String {
    let ts = jiff::Timestamp::from_second(epoch).unwrap();
    ts.strftime("%m/%d/%Y:%H:%M:%S -0000").to_string()
}

struct Req<'a> {
    ip: &'a str,
    proxy: &'a str,
    user: &'a str,
    time: i64,
    request: &'a str,
    status: u16,
    agent: &'a str,
    auth: &'a str,
    forwarded: &'a str,
}

impl Default for Req<'_> {
    fn default() -> Self {
        Self {
            ip: "192.0.2.10",
            proxy: "-",
            user: "bob",
            time: NOW - 3600,
            request: "GET /json-api/listaccts?api.version=1 HTTP/1.1",
            status: 200,
            agent: "billing-system/2.1",
            auth: "a",
            forwarded: "\"-\"",
        }
    }
}

impl Req<'_> {
    fn line(&self) -> String {
        format!(
            "{} {} {} [{}] \"{}\" {} 512 \"-\" \"{}\" \"{}\" {} 2087\n",
            self.ip,
            self.proxy,
            self.user,
            access_time(self.time),
            self.request,
            self.status,
            self.agent,
            self.auth,
            self.forwarded
        )
    }
}

/// An `api_tokens_log` line at `epoch`, written in the time zone `offset` (`-0600`).
fn token_line(epoch: i64, offset: &str, user: &str, token: &str, request: &str) -> String {
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let hours: i64 = offset[1..3].parse().unwrap();
    let minutes: i64 = offset[3..5].parse().unwrap();
    let local = epoch + sign * (hours * 3600 + minutes * 60);
    let ts = jiff::Timestamp::from_second(local).unwrap();
    format!(
        "[{} {offset}] info [whostmgrd] HTTP Status: ['200'], User: ['{user}'], Token Name: ['{token}'], Request: ['{request}']\n",
        ts.strftime("%Y-%m-%d %H:%M:%S")
    )
}

fn report_of(folder: &Folder) -> UsageReport {
    report(folder, covered(), window()).unwrap()
}

fn bob(report: &UsageReport) -> &AccountUsage {
    report.account("bob").unwrap()
}

fn token<'a>(account: &'a AccountUsage, name: &str) -> &'a CredentialUsage {
    &account
        .tokens
        .iter()
        .find(|t| t.name == name)
        .unwrap()
        .usage
}

#[test]
fn each_class_is_counted_where_it_belongs() {
    let session = Req {
        auth: "s",
        ..Req::default()
    };
    let hash = Req::default();
    let refused = Req {
        status: 403,
        time: NOW - 60,
        ip: "203.0.113.66",
        agent: "old-script",
        ..Req::default()
    };
    let token_req = Req {
        time: NOW - 1800,
        request: "GET /json-api/version HTTP/1.1",
        ..Req::default()
    };
    let proxied = Req {
        ip: "127.0.0.1",
        proxy: "proxy",
        forwarded: "\"X-Forwarded-For: 198.51.100.44\"",
        time: NOW - 900,
        ..Req::default()
    };
    let access: String = [&session, &hash, &token_req, &proxied, &refused]
        .iter()
        .map(|r| r.line())
        .collect();
    let tokens = token_line(NOW - 1799, "-0600", "bob", "billing", token_req.request);
    let report = report_of(
        &Folder::default()
            .with("access_log", access)
            .with("api_tokens_log", tokens),
    );
    let bob = bob(&report);
    let hash = &bob.accesshash;
    assert_eq!((hash.ok, hash.refused), (2, 1), "{hash:?}");
    assert_eq!(hash.last, Some(NOW - 900));
    assert_eq!(hash.last_refused, Some(NOW - 60));
    let ips: Vec<&str> = hash.clients.iter().map(|c| c.ip.as_str()).collect();
    assert_eq!(ips, ["203.0.113.66", "198.51.100.44", "192.0.2.10"]);
    let refusal = hash.last_refusal.as_ref().unwrap();
    assert_eq!(refusal.user_agent.as_deref(), Some("old-script"));
    let billing = token(bob, "billing");
    assert_eq!((billing.ok, billing.refused), (1, 0));
    assert_eq!(billing.clients[0].ip, "192.0.2.10");
    assert_eq!(
        billing.clients[0].user_agent.as_deref(),
        Some("billing-system/2.1")
    );
    assert!(token(bob, "spare").is_empty());
    assert!(report.account("root").unwrap().accesshash.is_empty());
    assert_eq!(report.logs.len(), 2);
    assert_eq!((report.logs[0].lines, report.logs[0].unparsed), (5, 0));
}

#[test]
fn the_join_holds_across_time_zones_and_a_daylight_saving_change() {
    // 2026-11-01: in Chicago, 01:00-02:00 local happens twice (CDT -0500, then CST -0600).
    let first = 1_793_514_600; // 06:30 UTC = 01:30 CDT
    let second = first + 3600; // 07:30 UTC = 01:30 CST
    let request = "GET /json-api/listaccts?api.version=1 HTTP/1.1";
    let access: String = [first, second, second + 10]
        .iter()
        .map(|t| {
            Req {
                time: *t,
                ..Req::default()
            }
            .line()
        })
        .collect();
    let tokens = token_line(first + 2, "-0500", "bob", "billing", request)
        + &token_line(second - 1, "-0600", "bob", "billing", request)
        // Three seconds from any request: not a partner, counted alone.
        + &token_line(second + 13, "+0100", "bob", "billing", request);
    let folder = Folder::default()
        .with("access_log", access)
        .with("api_tokens_log", tokens);
    let mut window = window();
    window.from = first - 86_400;
    window.to = second + 86_400;
    let report = report(&folder, covered(), window).unwrap();
    let bob = bob(&report);
    assert_eq!(
        bob.accesshash.ok, 1,
        "the request at +10 s had no token line"
    );
    let billing = token(bob, "billing");
    assert_eq!(billing.ok, 3);
    assert_eq!(billing.first, Some(first));
    assert_eq!(billing.last, Some(second + 13));
    let alone = billing
        .clients
        .iter()
        .find(|c| c.user_agent.is_none())
        .unwrap();
    assert_eq!((alone.ip.as_str(), alone.count), ("-", 1));
}

#[test]
fn a_request_line_or_user_that_differs_is_not_a_tokens() {
    let access = Req::default().line();
    let tokens = token_line(
        NOW - 3600,
        "+0000",
        "bob",
        "billing",
        "GET /json-api/listaccts HTTP/1.1",
    ) + &token_line(NOW - 3600, "+0000", "root", "x", Req::default().request);
    let report = report_of(
        &Folder::default()
            .with("access_log", access)
            .with("api_tokens_log", tokens),
    );
    assert_eq!(bob(&report).accesshash.ok, 1);
    assert_eq!(token(bob(&report), "billing").ok, 1, "alone");
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn rotated_files_and_gzip_archives_are_read_oldest_first_and_old_ones_skipped() {
    let at = |t: i64| {
        Req {
            time: t,
            ..Req::default()
        }
        .line()
    };
    let day = 86_400;
    let folder = Folder::default()
        .dated(
            "archive/access_log-01-2026.gz",
            gzip(&at(NOW - 330 * day)),
            NOW - 320 * day,
        )
        .dated(
            "archive/access_log-10-2026.gz",
            gzip(&(at(NOW - 60 * day) + &at(NOW - 50 * day))),
            NOW - 40 * day,
        )
        .dated("access_log.1", at(NOW - 20 * day), NOW - 20 * day)
        .dated("access_log.gz", gzip(&at(NOW - 10 * day)), NOW - 10 * day)
        .with("access_log", at(NOW - 1))
        .with("error_log", "not read");
    let report = report_of(&folder);
    let paths: Vec<&str> = report.logs.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/logs/archive/access_log-10-2026.gz",
            "/logs/access_log.1",
            "/logs/access_log.gz",
            "/logs/access_log"
        ]
    );
    assert_eq!(bob(&report).accesshash.ok, 5);
    assert_eq!(bob(&report).accesshash.first, Some(NOW - 60 * day));
    assert_eq!(report.coverage.from, Some(NOW - 330 * day), "the probe");
    assert!(report.coverage.complete);
}

#[test]
fn coverage_shorter_than_the_window_is_said() {
    let access = Req {
        time: NOW - 10 * 86_400,
        ..Req::default()
    }
    .line();
    let report = report_of(&Folder::default().with("access_log", access));
    assert_eq!(report.coverage.from, Some(NOW - 10 * 86_400));
    assert!(!report.coverage.complete);
    assert!(!report.covers_since(None));
    assert!(
        report.covers_since(Some(NOW - 5 * 86_400)),
        "a token made since"
    );
    let empty = report_of(&Folder::default().with("access_log", ""));
    assert_eq!(
        empty.coverage,
        Coverage {
            from: None,
            complete: false
        }
    );
}

#[test]
fn forged_truncated_and_oversized_lines_are_unparsed_never_counted() {
    let forged = Req {
        auth: "s",
        agent: "x\" \"a\" \"-\" 2087",
        ..Req::default()
    };
    let quoted = Req {
        agent: "it \"quotes\" things",
        ..Req::default()
    };
    let good = Req::default().line();
    let mut access = forged.line() + &quoted.line() + &good[..good.len() / 2] + "\n";
    access.push_str(&"x".repeat(MAX_LINE + 10));
    access.push('\n');
    access.push_str(&good);
    let mut bytes = access.into_bytes();
    let invalid = Req {
        agent: "caf",
        ..Req::default()
    }
    .line();
    let at = invalid.find("caf").unwrap() + 3;
    bytes.extend(&invalid.as_bytes()[..at]);
    bytes.push(0xe9);
    bytes.extend(&invalid.as_bytes()[at..]);
    let report = report_of(&Folder::default().with("access_log", bytes));
    assert_eq!((report.logs[0].lines, report.logs[0].unparsed), (6, 3));
    let hash = &bob(&report).accesshash;
    assert_eq!(hash.ok, 3);
    let agents: Vec<&str> = hash
        .clients
        .iter()
        .filter_map(|c| c.user_agent.as_deref())
        .collect();
    assert!(agents.contains(&"it \"quotes\" things"), "{agents:?}");
    assert!(agents.contains(&"caf\\xe9"), "{agents:?}");
}

#[test]
fn a_gzip_bomb_is_read_in_bounded_memory_as_one_unparsed_line() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(b"\n").unwrap();
    encoder.write_all(Req::default().line().as_bytes()).unwrap();
    let folder = Folder::default().with("access_log.gz", encoder.finish().unwrap());
    let report = report_of(&folder);
    assert_eq!((report.logs[0].lines, report.logs[0].unparsed), (2, 1));
    assert_eq!(bob(&report).accesshash.ok, 1);
}

#[test]
fn a_corrupt_archive_is_reported_with_what_was_read_of_it() {
    let mut archive = gzip(&Req::default().line());
    archive.truncate(archive.len() - 12);
    let report = report_of(&Folder::default().with("access_log.gz", archive));
    assert!(report.logs[0].error.is_some(), "{:?}", report.logs[0]);
}

#[test]
fn query_strings_and_paths_are_never_kept() {
    let req = Req {
        request: "GET /json-api/x?api.version=1&password=hunter2 HTTP/1.1",
        ..Req::default()
    };
    let tokens = token_line(req.time, "+0000", "bob", "billing", req.request);
    let report = report_of(
        &Folder::default()
            .with("access_log", req.line())
            .with("api_tokens_log", tokens),
    );
    assert_eq!(token(bob(&report), "billing").ok, 1);
    let shown = format!("{report:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("json-api"),
        "{shown}"
    );
}

#[test]
fn since_takes_a_span_or_epoch_seconds() {
    assert_eq!(window_since("90d", NOW).unwrap(), window());
    assert_eq!(window_since("12w", NOW).unwrap().from, NOW - 84 * 86_400);
    assert_eq!(window_since("1700000000", NOW).unwrap().from, 1_700_000_000);
    for bad in ["", "d", "90x", "-5d", "1.5d"] {
        assert!(
            matches!(window_since(bad, NOW), Err(SinceError::Bad(_))),
            "{bad}"
        );
    }
    assert!(matches!(window_since("0d", NOW), Err(SinceError::Zero(_))));
    assert!(matches!(
        window_since("9999999999", NOW),
        Err(SinceError::Future { .. })
    ));
}
