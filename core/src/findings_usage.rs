//! The audit's findings from the logs ([`crate::usage`]) and the DNS cluster configs
//! ([`crate::cluster`]): an access hash not converted that clients still use
//! (`accesshash_in_use`), a converted token whose clients still send the old secret
//! (`legacy_secret_in_use`), a token unused for the whole window the logs cover
//! (`unused_token`), and a cluster peer reached with an access hash
//! (`outbound_accesshash`). Messages name clients (address and user agent, escaped by
//! whoever prints them), never a secret.

use crate::cluster::{ClusterLink, Credential};
use crate::findings::{AccessHashState, Code, Finding, ServerAudit, Severity};
use crate::usage::{CredentialUsage, UsageReport, utc_text};

/// How many clients a finding names.
const CLIENTS_NAMED: usize = 3;

/// `N use(s) since <window start>, last <date> from <ip> “agent”, <ip> …`.
pub fn uses_text(usage: &CredentialUsage, since: i64) -> String {
    let mut text = format!(
        "{} use{} since {}",
        usage.ok,
        if usage.ok == 1 { "" } else { "s" },
        utc_text(since)
    );
    if let Some(last) = usage.last {
        text.push_str(&format!(", last {}", utc_text(last)));
    }
    let clients: Vec<String> = usage
        .clients
        .iter()
        .filter(|c| c.count > c.refused)
        .take(CLIENTS_NAMED)
        .map(|c| match &c.user_agent {
            Some(agent) => format!("{} “{agent}”", c.ip),
            None => c.ip.clone(),
        })
        .collect();
    if !clients.is_empty() {
        text.push_str(&format!(", from {}", clients.join(", ")));
    }
    text
}

/// Adds the findings of `usage` (when the logs were read) and of `links` to `audit`.
pub fn add(audit: &mut ServerAudit, usage: Option<&UsageReport>, links: &[ClusterLink]) {
    let auth_on = audit.settings.allow_deprecated_accesshash;
    if let Some(usage) = usage {
        for account in &mut audit.accounts {
            let Some(used) = usage.account(&account.user) else {
                continue;
            };
            let since = usage.window.from;
            if account.accesshash == AccessHashState::NotConverted && used.accesshash.used() {
                let (severity, consequence) = if auth_on {
                    (
                        Severity::Warning,
                        "convert it before access-hash authentication is turned off",
                    )
                } else {
                    (
                        Severity::Critical,
                        "access-hash authentication is off: convert it",
                    )
                };
                let message = format!(
                    "{}: access hash not converted and in use: {}; {consequence}",
                    account.user,
                    uses_text(&used.accesshash, since)
                );
                account.push(severity, Code::AccesshashInUse, message, None);
            }
            let mut found = Vec::new();
            for token in &account.tokens {
                let Some(tu) = used.tokens.iter().find(|t| t.name == token.name) else {
                    continue;
                };
                let converted = token.from_accesshash || token.name.starts_with("accesshash-");
                if converted && tu.usage.used() {
                    found.push((Code::LegacySecretInUse, token.name.clone(), format!(
                        "{}: token “{}”, converted from an access hash, is in use: {}: those clients still send the old secret; rotate it",
                        account.user,
                        token.name,
                        uses_text(&tu.usage, since)
                    )));
                } else if !tu.usage.used() && usage.covers_since(token.create_time) {
                    found.push((
                        Code::UnusedToken,
                        token.name.clone(),
                        format!(
                            "{}: token “{}” was not used since {}",
                            account.user,
                            token.name,
                            utc_text(token.create_time.map_or(since, |c| c.max(since)))
                        ),
                    ));
                }
            }
            for (code, name, message) in found {
                account.push(Severity::Info, code, message, Some(name));
            }
        }
    }
    outbound(audit, links);
}

/// `outbound_accesshash`: under the local account when the audit covers it, else the
/// server's.
fn outbound(audit: &mut ServerAudit, links: &[ClusterLink]) {
    for link in links
        .iter()
        .filter(|l| l.credential == Credential::AccessHash)
    {
        let host = link.host.as_deref().unwrap_or(&link.peer);
        let message = format!(
            "{}: the DNS cluster peer {host} is reached with an access hash ({}), which stops working once {host} turns access-hash authentication off; convert it on {host} (convert_accesshash_to_token there) and replace the secret here with the token's",
            link.user, link.location
        );
        let finding = Finding {
            severity: Severity::Warning,
            code: Code::OutboundAccesshash,
            message,
            token: None,
        };
        match audit.accounts.iter_mut().find(|a| a.user == link.user) {
            Some(account) => account.findings.push(finding),
            None => audit.findings.push(finding),
        }
    }
}
