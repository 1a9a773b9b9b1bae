//! The HTML page of `whmtoken report`: one self-contained file (no network, no other file)
//! that works opened from disk or attached to a ticket.
//!
//! The fleet's data is embedded as JSON in `<script type="application/json">` elements, every
//! `<` escaped, so that no text from a server can end them: a small summary (each server's
//! row and counts, the hosts not audited), then the page's script, which draws the first
//! screen from it at once, then the findings (columns of numbers over sorted string tables,
//! so that the page sorts a million rows by counting), read once the browser has parsed
//! them, then one element per server with its accounts and tokens, parsed only when that
//! server is opened. The findings and the servers' elements are gzipped JSON in base64,
//! read back with the browser's `DecompressionStream`: the HTML parser, which reads every
//! byte of an element before the script may, then has a seventh of the bytes to go
//! through (a page of 300 MiB took it 30 s on a loaded machine). The page's own script and style (`page.js`, `page.css`) are
//! inline, allowed by a Content-Security-Policy that names their SHA-256 hashes and nothing
//! else: no inline event handler, no remote load.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::document::{Account, Document, Severity, Token, Use};

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The fleet, as the page needs it, built one document at a time.
#[derive(Debug, Default)]
pub struct Page {
    servers: Vec<ServerRow>,
    /// Each server's accounts and tokens, as gzipped JSON in base64.
    details: Vec<String>,
    findings: Findings,
    users: Interner,
    tokens: Interner,
    codes: Interner,
    templates: Interner,
    /// The hosts that could not be audited (`--missing`), sorted.
    missing: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ServerRow {
    host: String,
    backend: String,
    /// allow_deprecated_accesshash.
    accepting: bool,
    accounts: u32,
    not_converted: u32,
    converted: u32,
    retired: u32,
    /// Accounts in any other state (no access hash, unreadable, unknown).
    other: u32,
    critical: u32,
    warning: u32,
    info: u32,
    /// The start of the logs' window, when the audit read them.
    usage_from: Option<i64>,
    usage_complete: Option<bool>,
}

/// Every finding of the fleet, one column a field; strings are indexes into the sorted
/// tables (`user`, `token`: -1 for none).
#[derive(Debug, Default, Serialize)]
struct Findings {
    server: Vec<u32>,
    user: Vec<i64>,
    severity: Vec<u8>,
    code: Vec<u32>,
    token: Vec<i64>,
    message: Vec<u32>,
}

/// Distinct strings, numbered in the order first seen until [`Interner::sorted`].
#[derive(Debug, Default)]
struct Interner {
    index: HashMap<Box<str>, u32>,
    strings: Vec<Box<str>>,
}

impl Interner {
    fn add(&mut self, text: &str) -> u32 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = u32::try_from(self.strings.len()).expect("fewer than 4 billion strings");
        self.index.insert(text.into(), i);
        self.strings.push(text.into());
        i
    }

    /// The strings sorted, and for each old number its new one.
    fn sorted(self) -> (Vec<Box<str>>, Vec<u32>) {
        drop(self.index);
        let mut order: Vec<u32> = (0..self.strings.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.strings[*a as usize].cmp(&self.strings[*b as usize]));
        let mut renumber = vec![0; order.len()];
        for (new, old) in order.iter().enumerate() {
            renumber[*old as usize] = new as u32;
        }
        let mut strings = self.strings;
        let sorted = order
            .iter()
            .map(|old| std::mem::take(&mut strings[*old as usize]))
            .collect();
        (sorted, renumber)
    }
}

/// A finding's message with its user's `user: ` prefix and its token's quoted name taken
/// out (`\u{1}` and `\u{2}` mark where they were): the same problem on a million accounts
/// is then one string in the page.
fn template(message: &str, user: &str, token: Option<&str>) -> String {
    let mut text = match message
        .strip_prefix(user)
        .and_then(|r| r.strip_prefix(": "))
    {
        Some(rest) if !user.is_empty() => format!("\u{1}: {rest}"),
        _ => message.to_owned(),
    };
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        text = text.replacen(&format!("“{token}”"), "“\u{2}”", 1);
    }
    text
}

/// One server's audit, with its accounts and tokens already written as JSON (done where
/// the document was parsed, several at once).
#[derive(Debug)]
pub struct Server {
    document: Document,
    details: String,
}

impl Server {
    pub fn new(document: Document) -> Self {
        let details = details(&document);
        Self { document, details }
    }
}

impl Page {
    /// The hosts that could not be audited, shown apart from the others.
    pub fn set_missing(&mut self, hosts: &[String]) {
        self.missing = hosts.to_vec();
    }

    /// Adds one server's audit.
    pub fn add(&mut self, server: Server) {
        let Server { document, details } = server;
        let document = &document;
        let server = self.servers.len() as u32;
        let mut row = ServerRow {
            host: document.host.clone(),
            backend: document.backend.clone(),
            accepting: document.server.allow_deprecated_accesshash,
            accounts: document.accounts.len() as u32,
            not_converted: 0,
            converted: 0,
            retired: 0,
            other: 0,
            critical: 0,
            warning: 0,
            info: 0,
            usage_from: document.usage.as_ref().map(|u| u.window.from),
            usage_complete: document.usage.as_ref().map(|u| u.coverage.complete),
        };
        for finding in &document.server.findings {
            self.add_finding(&mut row, server, None, finding);
        }
        for account in &document.accounts {
            match account.progress() {
                "not_converted" => row.not_converted += 1,
                "converted" => row.converted += 1,
                "retired" => row.retired += 1,
                _ => row.other += 1,
            }
            for finding in &account.findings {
                self.add_finding(&mut row, server, Some(account), finding);
            }
        }
        self.servers.push(row);
        self.details.push(details);
    }

    fn add_finding(
        &mut self,
        row: &mut ServerRow,
        server: u32,
        account: Option<&Account>,
        finding: &super::document::Finding,
    ) {
        let user = account.map_or("", |a| a.user.as_str());
        let token = finding.token.as_deref();
        let f = &mut self.findings;
        f.server.push(server);
        f.user
            .push(account.map_or(-1, |a| i64::from(self.users.add(&a.user))));
        f.severity.push(match finding.severity {
            Severity::Critical => {
                row.critical += 1;
                0
            }
            Severity::Warning => {
                row.warning += 1;
                1
            }
            Severity::Info => {
                row.info += 1;
                2
            }
        });
        f.code.push(self.codes.add(&finding.code));
        f.token
            .push(token.map_or(-1, |t| i64::from(self.tokens.add(t))));
        let text = template(&finding.message, user, token);
        f.message.push(self.templates.add(&text));
    }

    /// Writes the page.
    pub fn write(self, out: &mut dyn Write, generated: i64) -> io::Result<()> {
        let Self {
            servers,
            details,
            mut findings,
            users,
            tokens,
            codes,
            templates,
            missing,
        } = self;
        let (users, renumber) = users.sorted();
        renumber_all(&mut findings.user, &renumber);
        let (tokens, renumber) = tokens.sorted();
        renumber_all(&mut findings.token, &renumber);
        let (codes, renumber) = codes.sorted();
        findings
            .code
            .iter_mut()
            .for_each(|c| *c = renumber[*c as usize]);
        let (templates, renumber) = templates.sorted();
        findings
            .message
            .iter_mut()
            .for_each(|m| *m = renumber[*m as usize]);
        let summary = Summary {
            version: 1,
            generated,
            severities: Severity::ALL.map(Severity::as_str),
            servers: &servers,
            missing: &missing,
        };
        let data = FindingsData {
            findings: &findings,
            users: &users,
            tokens: &tokens,
            codes: &codes,
            messages: &templates,
        };
        write!(out, "{}", head())?;
        out.write_all(br#"<script type="application/json" id="fleet">"#)?;
        serde_json::to_writer(NoLessThan(&mut *out), &summary)?;
        out.write_all(b"</script>\n")?;
        // The script before the findings and the servers' own elements: the first screen
        // (totals, chart, servers) is drawn from the summary while the browser still reads
        // them.
        writeln!(out, "<script>{SCRIPT}</script>")?;
        out.write_all(br#"<script type="application/x-gzip-base64" id="findings-data">"#)?;
        // Streamed: the findings' JSON (the most of the fleet) is never held whole.
        let mut gzip = flate2::write::GzEncoder::new(
            Base64Writer::new(&mut *out),
            flate2::Compression::fast(),
        );
        // Buffered: serde writes a piece per token, and zlib is slow on tiny writes.
        let mut buffered = io::BufWriter::with_capacity(1 << 16, &mut gzip);
        serde_json::to_writer(&mut buffered, &data)?;
        buffered.flush()?;
        drop(buffered);
        gzip.finish()?.finish()?;
        out.write_all(b"</script>\n")?;
        for (index, detail) in details.iter().enumerate() {
            writeln!(
                out,
                "<script type=\"application/x-gzip-base64\" id=\"server-{index}\">{detail}</script>"
            )?;
        }
        out.write_all(b"</body>\n</html>\n")
    }
}

fn renumber_all(column: &mut [i64], renumber: &[u32]) {
    for value in column.iter_mut().filter(|v| **v >= 0) {
        *value = i64::from(renumber[*value as usize]);
    }
}

/// The fleet's summary, the first JSON element: all the first screen needs.
#[derive(Serialize)]
struct Summary<'a> {
    version: u32,
    generated: i64,
    severities: [&'static str; 3],
    servers: &'a [ServerRow],
    /// The hosts that could not be audited.
    missing: &'a [String],
}

/// The findings' JSON element, after the script.
#[derive(Serialize)]
struct FindingsData<'a> {
    findings: &'a Findings,
    users: &'a [Box<str>],
    tokens: &'a [Box<str>],
    codes: &'a [Box<str>],
    messages: &'a [Box<str>],
}

/// A use, as the page reads it: `[time, address, user agent]`.
type UseRow<'a> = (i64, &'a str, Option<&'a str>);

/// A token, as the page reads it: `[name, key prefix, created, expires, expired, full
/// access, ACLs, allow-list, converted from the access hash, last use]` (booleans as 0/1).
type TokenRow<'a> = (
    &'a str,
    &'a str,
    Option<i64>,
    Option<i64>,
    u8,
    u8,
    Option<&'a [String]>,
    Option<&'a [String]>,
    u8,
    Option<UseRow<'a>>,
);

fn use_row(last: Option<&Use>) -> Option<UseRow<'_>> {
    last.map(|u| (u.time, u.ip.as_str(), u.user_agent.as_deref()))
}

fn token_row(t: &Token) -> TokenRow<'_> {
    (
        &t.name,
        &t.hash_prefix,
        t.create_time,
        t.expires_at,
        u8::from(t.expired),
        u8::from(t.full_access),
        t.acls.as_deref(),
        t.allow_ips.as_deref(),
        u8::from(t.from_accesshash),
        use_row(t.last_used.as_ref()),
    )
}

/// One server's element: its accounts as JSON arrays, `[user, state, last use, tokens]`
/// (arrays rather than objects: the names of the fields would be most of the page),
/// gzipped, in base64.
fn details(document: &Document) -> String {
    let accounts: Vec<_> = document
        .accounts
        .iter()
        .map(|a| {
            let tokens: Vec<TokenRow> = a.tokens.iter().map(token_row).collect();
            (
                &a.user,
                a.progress(),
                use_row(a.accesshash_last_used.as_ref()),
                tokens,
            )
        })
        .collect();
    let mut out = Vec::new();
    serde_json::to_writer(&mut out, &accounts).expect("JSON into memory");
    gzip_base64(&out)
}

/// `bytes` gzipped (fast: the page is written in seconds) and in base64, as the page reads
/// them back (`DecompressionStream("gzip")`). Base64 has no `<`: no text from a server can
/// end its element.
fn gzip_base64(bytes: &[u8]) -> String {
    use flate2::write::GzEncoder;
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    base64(&encoder.finish().expect("gzip into memory"))
}

/// JSON with every `<` written as `\u003c` (a `<` is only ever in a string): no text from
/// a server can close the element or open a comment in it.
struct NoLessThan<W>(W);

impl<W: Write> Write for NoLessThan<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|b| *b == b'<') {
            self.0.write_all(&rest[..at])?;
            self.0.write_all(b"\\u003c")?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes base64 of the bytes written to it; [`Base64Writer::finish`] writes the last
/// group and its padding.
struct Base64Writer<W: Write> {
    out: W,
    /// Bytes not yet written, fewer than 3.
    pending: Vec<u8>,
}

impl<W: Write> Base64Writer<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            pending: Vec::with_capacity(3),
        }
    }

    fn finish(mut self) -> io::Result<W> {
        self.out.write_all(base64(&self.pending).as_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Base64Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.pending.is_empty() {
            let take = (3 - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < 3 {
                return Ok(buf.len());
            }
            self.out.write_all(base64(&self.pending).as_bytes())?;
            self.pending.clear();
        }
        let whole = rest.len() / 3 * 3;
        self.out.write_all(base64(&rest[..whole]).as_bytes())?;
        self.pending.extend_from_slice(&rest[whole..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `'sha256-…'`: a CSP source allowing exactly this inline element's text.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())))
}

fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Everything before the data: the policy, the style, and the page's empty frame, which
/// the script fills.
fn head() -> String {
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="whmtoken report {version}">
<title>WHM credentials of the fleet</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>WHM credentials of the fleet</h1><p id="generated"></p></header>
<main>
<section id="totals" aria-label="Totals"></section>
<section id="missing" class="alert" hidden><h2 id="missing-title"></h2><p>No audit document came from these servers (their audit failed, or they were unreachable): nothing on this page is about them.</p><ul id="missing-list"></ul></section>
<section><h2>Migration progress per server</h2><div id="chart"></div><p id="legend" class="legend"></p><p id="laggards" class="legend"></p></section>
<section><h2>Servers</h2>
<div class="filters"><input id="server-text" type="search" placeholder="Filter servers by name" aria-label="Filter servers"></div>
<p id="server-count" class="count"></p><div id="servers" class="table"></div></section>
<section id="drill" hidden><h2 id="drill-title"></h2><p id="drill-usage" class="count"></p><div id="accounts" class="table"></div>
<p id="drill-findings" class="count"></p><div id="server-findings" class="table"></div></section>
<section><h2>Findings</h2>
<div class="filters"><select id="severity" aria-label="Severity"><option value="">every severity</option></select>
<select id="code" aria-label="Code"><option value="">every code</option></select>
<input id="text" type="search" placeholder="Filter by text (server, user, token, message)" aria-label="Filter findings by text"></div>
<p id="finding-count" class="count"></p><div id="findings" class="table"></div></section>
</main>
"#,
        version = env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn a_message_keeps_its_problem_and_loses_its_names() {
        assert_eq!(
            template("bob: token “t1” never expires", "bob", Some("t1")),
            "\u{1}: token “\u{2}” never expires"
        );
        assert_eq!(template("bobby: x", "bob", None), "bobby: x");
        assert_eq!(template("server says", "", None), "server says");
    }

    #[test]
    fn base64_written_in_pieces_is_base64_of_the_whole() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for piece in [1, 2, 3, 5, 7, 64, 1000] {
            let mut writer = Base64Writer::new(Vec::new());
            for chunk in bytes.chunks(piece) {
                writer.write_all(chunk).unwrap();
            }
            let out = writer.finish().unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), base64(&bytes), "{piece}");
        }
    }

    #[test]
    fn no_less_than_sign_reaches_the_page() {
        let mut out = Vec::new();
        serde_json::to_writer(NoLessThan(&mut out), &["</script><!--"]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"["\u003c/script>\u003c!--"]"#
        );
    }
}
