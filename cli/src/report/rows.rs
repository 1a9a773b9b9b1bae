//! `whmtoken report --format csv` and `--format jsonl`: the findings, one CSV row each
//! (`host,user,severity,code,token,message`), or every account and finding as one JSON
//! object a line, for spreadsheets and SIEMs.

use std::io::{self, Write};

use serde::Serialize;

use super::document::{Document, Finding, Token, Use};

/// The CSV header line.
pub const CSV_HEADER: &str = "host,user,severity,code,token,message";

/// One CSV row per finding of `document`: the server's (an empty user), then each account's.
pub fn csv(document: &Document, out: &mut dyn Write) -> io::Result<()> {
    let host = &document.host;
    let server = document.server.findings.iter().map(|f| ("", f));
    let accounts = document
        .accounts
        .iter()
        .flat_map(|a| a.findings.iter().map(move |f| (a.user.as_str(), f)));
    for (user, finding) in server.chain(accounts) {
        let fields = [
            host.as_str(),
            user,
            finding.severity.as_str(),
            &finding.code,
            finding.token.as_deref().unwrap_or(""),
            &finding.message,
        ];
        csv_row(&fields, out)?;
    }
    Ok(())
}

/// One CSV row: the fields quoted where needed, separated by commas, ended by CRLF.
fn csv_row(fields: &[&str], out: &mut dyn Write) -> io::Result<()> {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        csv_field(field, out)?;
    }
    out.write_all(b"\r\n")
}

/// The message of the finding `not_audited` of a host given with `--missing`.
pub fn not_audited(host: &str) -> String {
    format!("{host}: not audited: no audit document (its audit failed, or it was unreachable)")
}

/// One CSV row per host that could not be audited: a critical finding `not_audited`.
pub fn missing_csv(hosts: &[String], out: &mut dyn Write) -> io::Result<()> {
    for host in hosts {
        let message = not_audited(host);
        let fields = [host.as_str(), "", "critical", "not_audited", "", &message];
        csv_row(&fields, out)?;
    }
    Ok(())
}

/// One JSON line per host that could not be audited: a critical finding `not_audited`.
pub fn missing_jsonl(hosts: &[String], out: &mut dyn Write) -> io::Result<()> {
    for host in hosts {
        let message = not_audited(host);
        let line = FindingLine {
            kind: "finding",
            host,
            user: None,
            severity: "critical",
            code: "not_audited",
            token: None,
            message: &message,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A field as RFC 4180 writes it: in double quotes (doubled inside) when it holds a comma,
/// a quote or a line break; as it is otherwise.
fn csv_field(field: &str, out: &mut dyn Write) -> io::Result<()> {
    if field.contains([',', '"', '\r', '\n']) {
        write!(out, "\"{}\"", field.replace('"', "\"\""))
    } else {
        out.write_all(field.as_bytes())
    }
}

#[derive(Serialize)]
struct AccountLine<'a> {
    kind: &'static str,
    host: &'a str,
    user: &'a str,
    accesshash: &'a str,
    tokens: &'a [Token],
    last_used: Option<&'a Use>,
}

#[derive(Serialize)]
struct FindingLine<'a> {
    kind: &'static str,
    host: &'a str,
    user: Option<&'a str>,
    severity: &'static str,
    code: &'a str,
    token: Option<&'a str>,
    message: &'a str,
}

/// One JSON object a line: the server's findings (`user` null), then each account followed
/// by its findings.
pub fn jsonl(document: &Document, out: &mut dyn Write) -> io::Result<()> {
    let host = &document.host;
    let finding = |user: Option<&str>, f: &Finding, out: &mut dyn Write| {
        let line = FindingLine {
            kind: "finding",
            host,
            user,
            severity: f.severity.as_str(),
            code: &f.code,
            token: f.token.as_deref(),
            message: &f.message,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    };
    for f in &document.server.findings {
        finding(None, f, out)?;
    }
    for account in &document.accounts {
        let line = AccountLine {
            kind: "account",
            host,
            user: &account.user,
            accesshash: &account.accesshash,
            tokens: &account.tokens,
            last_used: account.accesshash_last_used.as_ref(),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        for f in &account.findings {
            finding(Some(&account.user), f, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_is_quoted_only_when_it_must_be() {
        let field = |text: &str| {
            let mut out = Vec::new();
            super::csv_field(text, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(field("plain text"), "plain text");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\"\nthen"), "\"say \"\"hi\"\"\nthen\"");
    }
}
