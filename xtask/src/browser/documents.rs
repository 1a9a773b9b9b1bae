//! Generated `whmtoken audit --json` documents, one per server, for the browser check (a
//! small fleet) and the report's bench (1,000 servers of 1,000 accounts): servers at every
//! step of the migration, with the findings a real audit gives each account.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde_json::{Value, json};

/// A token name that is markup, and would run if the page ever parsed it as HTML.
pub(crate) const HOSTILE_TOKEN: &str =
    "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";

/// A host given to `whmtoken report --missing`: a server that could not be audited.
pub(crate) const MISSING_HOST: &str = "cp9999.example.net";

/// The epoch the documents are dated from (2026-11-01 UTC).
const NOW: i64 = 1_793_491_200;

/// What was generated: how many documents, accounts and findings.
#[derive(Debug, Default)]
pub(crate) struct Generated {
    pub(crate) servers: usize,
    pub(crate) accounts: usize,
    pub(crate) findings: usize,
}

/// Writes `servers` documents of `accounts` accounts each into `dir` (`cpNNNN.json`); the
/// second server's root (converted) has a token named [`HOSTILE_TOKEN`] when `hostile`.
pub(crate) fn write(
    dir: &Path,
    servers: usize,
    accounts: usize,
    hostile: bool,
) -> Result<Generated, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut generated = Generated::default();
    for server in 0..servers {
        let document = document(server, accounts, hostile && server == 1);
        generated.servers += 1;
        generated.accounts += accounts;
        generated.findings += count_findings(&document);
        let file = dir.join(format!("cp{server:04}.json"));
        let out = std::fs::File::create(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, &document)
            .map_err(std::io::Error::from)
            .and_then(|()| out.flush())
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(generated)
}

fn count_findings(document: &Value) -> usize {
    let list = |v: &Value| v["findings"].as_array().map_or(0, Vec::len);
    list(&document["server"])
        + document["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(list)
            .sum::<usize>()
}

/// One server: how far along it is depends on its number (some not started, some done).
fn document(server: usize, accounts: usize, hostile: bool) -> Value {
    let progress = (server * 37 % 101) as f64 / 100.0;
    let retiring = server.is_multiple_of(4);
    let accepting = !(retiring && progress > 0.9);
    let mut findings = Vec::new();
    if accepting {
        findings.push(finding(
            "warning",
            "deprecated_auth_enabled",
            "server: access-hash authentication is on (allow_deprecated_accesshash=1)".into(),
            None,
        ));
    }
    let list: Vec<Value> = (0..accounts)
        .map(|index| {
            account(
                server,
                index,
                (index as f64) < progress * accounts as f64,
                retiring,
                hostile && index == 0,
            )
        })
        .collect();
    let (mut critical, mut warning, mut info) = (0, 0, 0);
    for f in findings.iter().chain(
        list.iter()
            .flat_map(|a| a["findings"].as_array().into_iter().flatten()),
    ) {
        match f["severity"].as_str() {
            Some("critical") => critical += 1,
            Some("warning") => warning += 1,
            _ => info += 1,
        }
    }
    json!({
        "version": 1,
        "host": format!("cp{server:04}.example.net"),
        "backend": "files",
        "server": { "allow_deprecated_accesshash": accepting, "findings": findings },
        "accounts": list,
        "summary": { "critical": critical, "warning": warning, "info": info },
        "usage": {
            "window": { "from": NOW - 90 * 86_400, "to": NOW },
            "folder": "/usr/local/cpanel/logs",
            "files": [],
            "coverage": { "from": NOW - 120 * 86_400, "complete": server % 7 != 3 },
        },
    })
}

fn account(server: usize, index: usize, converted: bool, retiring: bool, hostile: bool) -> Value {
    let user = if index == 0 {
        "root".to_owned()
    } else {
        format!("r{server:04}u{index:05}")
    };
    let used = index.is_multiple_of(3).then(|| {
        json!({
            "time": NOW - ((server * 7919 + index * 104_729) % (80 * 86_400)) as i64,
            "ip": format!("198.51.{}.{}", server % 256, index % 256),
            "user_agent": if index.is_multiple_of(2) { Value::from("billing-system/2.1") } else { Value::Null },
        })
    });
    let mut findings = Vec::new();
    let mut tokens = Vec::new();
    let state = if !converted {
        let consequence = "its clients fail once access-hash authentication is off";
        findings.push(finding(
            "critical",
            "accesshash_not_converted",
            format!("{user}: access hash not converted; {consequence}"),
            None,
        ));
        "not_converted"
    } else {
        let created = NOW - ((index * 977) % (30 * 86_400)) as i64;
        let name = if hostile {
            HOSTILE_TOKEN.to_owned()
        } else {
            format!("accesshash-{created}")
        };
        tokens.push(token(&name, created, None, None, true, used.clone()));
        let retired = retiring && index % 5 != 1;
        if !retired {
            findings.push(finding(
                "warning",
                "accesshash_active",
                format!("{user}: access hash converted as “{name}” but still present; retire it"),
                Some(&name),
            ));
        }
        findings.push(finding(
            "warning",
            "unrestricted_token",
            format!("{user}: token “{name}” has full access and accepts any address"),
            Some(&name),
        ));
        findings.push(finding(
            "info",
            "no_expiry",
            format!("{user}: token “{name}” never expires"),
            Some(&name),
        ));
        if retired { "none" } else { "converted" }
    };
    if index.is_multiple_of(5) {
        let name = format!("billing-{index}");
        let expires = NOW + ((index % 3) as i64 - 1) * 86_400 * 30;
        tokens.push(token(
            &name,
            NOW - 400 * 86_400,
            Some(expires),
            Some(&["list-accts", "create-acct"]),
            false,
            None,
        ));
        if expires < NOW {
            findings.push(finding(
                "info",
                "expired",
                format!("{user}: token “{name}” expired at {expires} and is still stored"),
                Some(&name),
            ));
        } else {
            findings.push(finding(
                "info",
                "unused_token",
                format!("{user}: token “{name}” was not used in the 90-day window"),
                Some(&name),
            ));
        }
    }
    let last = if state == "none" { None } else { used };
    json!({
        "user": user,
        "accesshash": state,
        "accesshash_last_used": last,
        "tokens": tokens,
        "findings": findings,
    })
}

fn token(
    name: &str,
    created: i64,
    expires: Option<i64>,
    acls: Option<&[&str]>,
    from_accesshash: bool,
    last: Option<Value>,
) -> Value {
    let mut prefix = String::new();
    for byte in name.bytes().chain(created.to_le_bytes()).take(6) {
        let _ = write!(prefix, "{byte:02x}");
    }
    json!({
        "name": name,
        "hash_prefix": prefix,
        "create_time": created,
        "expires_at": expires,
        "expired": expires.is_some_and(|at| at < NOW),
        "full_access": acls.is_none(),
        "acls": acls,
        "allow_ips": Value::Null,
        "from_accesshash": from_accesshash,
        "last_used": last.unwrap_or(Value::Null),
    })
}

fn finding(severity: &str, code: &str, message: String, token: Option<&str>) -> Value {
    let mut finding = json!({ "severity": severity, "code": code, "message": message });
    if let Some(token) = token {
        finding["token"] = json!(token);
    }
    finding
}
