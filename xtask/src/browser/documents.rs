//! Generated `whmtoken audit --json` documents, one per server, for the browser check (a
//! small fleet) and the report's bench (1,000 servers of 1,000 accounts): servers at every
//! step of the migration, with the findings a real audit with logs gives each account, and
//! their messages as it writes them (counts, dates, addresses and user agents in them:
//! about half a million distinct messages for 1,000 x 1,000, as real audits give).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use whmtoken_core::usage::utc_text;

/// A token name that is markup, and would run if the page ever parsed it as HTML.
pub(crate) const HOSTILE_TOKEN: &str =
    "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";

/// The generator's version, raised when the documents it writes change (`bench report`
/// keeps its documents for the next run of the same version).
pub(crate) const VERSION: u32 = 2;

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
                accepting,
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
            "window": { "from": WINDOW_FROM, "to": NOW },
            "folder": "/usr/local/cpanel/logs",
            "files": [],
            "coverage": { "from": NOW - 120 * 86_400, "complete": server % 7 != 3 },
        },
    })
}

/// A client's use of a credential: how often in the window, when last, from where.
struct Used {
    uses: usize,
    last: i64,
    ip: String,
    agent: Option<&'static str>,
}

/// The user agents of the clients, as billing systems and scripts send them.
const AGENTS: [&str; 5] = [
    "WHMCS/8.10.1",
    "Blesta/5.9.2",
    "python-requests/2.31.0",
    "cpanel-dnsadmin/11.130",
    "HostBill/2024-11",
];

impl Used {
    /// A use, different for each server, account and credential (`salt`).
    fn new(server: usize, index: usize, salt: usize) -> Self {
        let mix = (server * 7919 + index * 104_729 + salt * 15_485_863) % 1_000_003;
        Self {
            uses: 1 + mix % 90,
            last: NOW - ((mix * 37) % (80 * 86_400)) as i64,
            ip: format!("198.51.{}.{}", mix % 256, (mix / 256) % 256),
            agent: (!mix.is_multiple_of(7)).then(|| AGENTS[mix % AGENTS.len()]),
        }
    }

    fn json(&self) -> Value {
        json!({ "time": self.last, "ip": self.ip, "user_agent": self.agent })
    }

    /// As the audit writes it (`findings_usage::uses_text`): `N uses since <window>, last
    /// <date>, from <ip> “agent”`.
    fn text(&self) -> String {
        let client = match self.agent {
            Some(agent) => format!("{} “{agent}”", self.ip),
            None => self.ip.clone(),
        };
        format!(
            "{} use{} since {}, last {}, from {client}",
            self.uses,
            if self.uses == 1 { "" } else { "s" },
            utc_text(WINDOW_FROM),
            utc_text(self.last)
        )
    }
}

/// The start of the logs' window the documents' usage covers.
const WINDOW_FROM: i64 = NOW - 90 * 86_400;

/// One account, its tokens and findings, with the messages exactly as `whmtoken audit`
/// writes them (`core/src/findings.rs`, `core/src/findings_usage.rs`): counts, dates,
/// addresses and user agents in them, so that nearly every message is its own.
fn account(
    server: usize,
    index: usize,
    converted: bool,
    retiring: bool,
    accepting: bool,
    hostile: bool,
) -> Value {
    let user = if index == 0 {
        "root".to_owned()
    } else {
        format!("r{server:04}u{index:05}")
    };
    let used = (!index.is_multiple_of(3)).then(|| Used::new(server, index, 0));
    let mut findings = Vec::new();
    let mut tokens = Vec::new();
    let state = if converted {
        converted_account(
            &user,
            (server, index),
            retiring && index % 5 != 1,
            hostile,
            used.as_ref(),
            &mut tokens,
            &mut findings,
        )
    } else {
        not_converted_findings(&user, accepting, used.as_ref(), &mut findings);
        "not_converted"
    };
    if index.is_multiple_of(5) {
        billing_token(&user, server, index, &mut tokens, &mut findings);
    }
    let last = if state == "none" {
        None
    } else {
        used.as_ref().map(Used::json)
    };
    json!({
        "user": user,
        "accesshash": state,
        "accesshash_last_used": last,
        "tokens": tokens,
        "findings": findings,
    })
}

/// The findings of an account whose access hash is not converted.
fn not_converted_findings(
    user: &str,
    accepting: bool,
    used: Option<&Used>,
    findings: &mut Vec<Value>,
) {
    let (severity, consequence) = if accepting {
        (
            "warning",
            "its clients fail once access-hash authentication is off",
        )
    } else {
        (
            "critical",
            "access-hash authentication is off, so its clients are failing now",
        )
    };
    findings.push(finding(
        severity,
        "accesshash_not_converted",
        format!("{user}: access hash not converted; {consequence}"),
        None,
    ));
    if let Some(used) = used {
        let consequence = if accepting {
            "convert it before access-hash authentication is turned off"
        } else {
            "access-hash authentication is off: convert it"
        };
        findings.push(finding(
            severity,
            "accesshash_in_use",
            format!(
                "{user}: access hash not converted and in use: {}; {consequence}",
                used.text()
            ),
            None,
        ));
    }
}

/// The converted token of an account and its findings; its access-hash state.
fn converted_account(
    user: &str,
    (server, index): (usize, usize),
    retired: bool,
    hostile: bool,
    used: Option<&Used>,
    tokens: &mut Vec<Value>,
    findings: &mut Vec<Value>,
) -> &'static str {
    let created = NOW - 86_400 - ((server * 131 + index * 977) % (30 * 86_400)) as i64;
    let name = if hostile {
        HOSTILE_TOKEN.to_owned()
    } else {
        format!("accesshash-{created}")
    };
    // Some clients still send the old secret through the converted token.
    let legacy = used
        .filter(|_| index.is_multiple_of(4))
        .map(|_| Used::new(server, index, 1));
    tokens.push(token(
        &name,
        created,
        None,
        None,
        true,
        legacy.as_ref().map(Used::json),
    ));
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
    if let Some(legacy) = &legacy {
        findings.push(finding(
            "info",
            "legacy_secret_in_use",
            format!(
                "{user}: token “{name}”, converted from an access hash, is in use: {}: those clients still send the old secret; rotate it",
                legacy.text()
            ),
            Some(&name),
        ));
    }
    if retired { "none" } else { "converted" }
}

/// A restricted token that one account in five has, some expired, some unused.
fn billing_token(
    user: &str,
    server: usize,
    index: usize,
    tokens: &mut Vec<Value>,
    findings: &mut Vec<Value>,
) {
    let name = format!("billing-{index}");
    let created = NOW - 400 * 86_400 + ((server * 613 + index * 89) % (300 * 86_400)) as i64;
    let expires = created + ((index % 3) as i64 + 1) * 86_400 * 200;
    let token_used = index.is_multiple_of(2).then(|| Used::new(server, index, 2));
    tokens.push(token(
        &name,
        created,
        Some(expires),
        Some(&["list-accts", "create-acct"]),
        false,
        token_used.as_ref().map(Used::json),
    ));
    if expires < NOW {
        findings.push(finding(
            "info",
            "expired",
            format!(
                "{user}: token “{name}” expired {} and is still stored",
                utc_text(expires)
            ),
            Some(&name),
        ));
    }
    if token_used.is_none() {
        findings.push(finding(
            "info",
            "unused_token",
            format!(
                "{user}: token “{name}” was not used since {}",
                utc_text(created.max(WINDOW_FROM))
            ),
            Some(&name),
        ));
    }
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
