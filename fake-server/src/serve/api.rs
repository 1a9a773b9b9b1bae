//! The WHM API 1 functions the fake server answers, for an authenticated caller: `version`,
//! `applist`, `listaccts`, `api_token_list`, `api_token_create` and `api_token_revoke`.
//!
//! With `api.version=1` in the query the answer has WHM API 1's shape,
//! `{"metadata":{"version":1,"command":…,"result":1,"reason":"OK"},"data":…}`; without it, the
//! legacy shape older clients read (`{"app":[…]}` for `applist`, `{"version":…}`,
//! `{"acct":[…],"status":1,"statusmsg":"Ok"}`, else `{"status":1,"statusmsg":"Ok","data":…}`). A
//! function the caller may not use, or one that fails, answers with `result` (legacy:
//! `status`) 0 and a reason, as WHM does.

use std::net::IpAddr;

use ipnet::IpNet;
use rand::RngExt;
use serde_json::{Map, Value, json};
use whmtoken_backends::SystemClock;
use whmtoken_core::acl::BUILTIN_ACLS;
use whmtoken_core::{
    AuditAction, AuditEvent, AuditTurn, Backend, BackendError, Clock, Decision, ImportError,
    ImportItem, ImportRequest, Privileges, Restrictions, TokenEntry, TokenHash, error_chain,
};

use super::auth::Caller;

/// The WHM version the fake server reports.
pub const WHM_VERSION: &str = "11.130.0.0";

/// Every function served, with the ACL it needs (`None`: any authenticated caller).
const FUNCTIONS: [(&str, Option<&str>); 6] = [
    ("api_token_create", None),
    ("api_token_list", None),
    ("api_token_revoke", None),
    ("applist", None),
    ("listaccts", Some("list-accts")),
    ("version", None),
];

/// A new token's secret: 32 characters of `[A-Z0-9]`, as WHM makes them.
const TOKEN_LEN: usize = 32;
const TOKEN_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The longest token name WHM accepts.
const MAX_NAME_LEN: usize = 50;

/// What one call answers: its data, or the reason it failed.
type Outcome = Result<Value, String>;

/// Answers `function` for `caller`, with the query's parameters.
pub(crate) fn call(
    backend: &dyn Backend,
    caller: &Caller,
    function: &str,
    params: &[(String, String)],
) -> Value {
    let v1 = params.iter().any(|(k, v)| k == "api.version" && v == "1");
    let outcome = match FUNCTIONS.iter().find(|(name, _)| *name == function) {
        None => Err(format!(
            "Unknown app (“{}”) requested for this version (1) of the API.",
            function.escape_debug()
        )),
        Some((_, Some(acl))) if !caller.acls.holds(acl) => Err(format!(
            "Permission denied: {function} needs the “{acl}” privilege."
        )),
        Some(_) => run(backend, caller, function, params),
    };
    if v1 {
        let (result, reason, data) = match outcome {
            Ok(data) => (1, "OK".to_owned(), data),
            Err(reason) => (0, reason, Value::Null),
        };
        let mut answer = json!({
            "metadata": {"version": 1, "command": function, "result": result, "reason": reason},
        });
        if !data.is_null() {
            answer["data"] = data;
        }
        return answer;
    }
    match outcome {
        Ok(data) => match function {
            "applist" | "version" => data,
            "listaccts" => json!({"acct": data["acct"], "status": 1, "statusmsg": "Ok"}),
            _ => json!({"status": 1, "statusmsg": "Ok", "data": data}),
        },
        Err(reason) => json!({"status": 0, "statusmsg": reason}),
    }
}

fn run(
    backend: &dyn Backend,
    caller: &Caller,
    function: &str,
    params: &[(String, String)],
) -> Outcome {
    match function {
        "version" => Ok(json!({"version": WHM_VERSION})),
        "applist" => Ok(json!({"app": applist(caller)})),
        "listaccts" => listaccts(backend, caller),
        "api_token_list" => token_list(backend, caller),
        "api_token_create" => token_create(backend, caller, params),
        "api_token_revoke" => token_revoke(backend, caller, params),
        _ => unreachable!("every served function is matched"),
    }
}

/// The functions the caller's ACLs allow, by name.
fn applist(caller: &Caller) -> Vec<&'static str> {
    FUNCTIONS
        .iter()
        .filter(|(_, acl)| acl.is_none_or(|acl| caller.acls.holds(acl)))
        .map(|(name, _)| *name)
        .collect()
}

fn read_failed(error: &BackendError) -> String {
    format!(
        "The fake server's data could not be read or written: {}",
        error_chain(error)
    )
}

/// The accounts the caller can see: every account for root, the accounts a reseller owns
/// (and its own) for a reseller.
fn listaccts(backend: &dyn Backend, caller: &Caller) -> Outcome {
    let accounts = backend.accounts().map_err(|e| read_failed(&e))?;
    let me = caller.user.as_str();
    let listed: Vec<Value> = accounts
        .iter()
        .filter(|a| caller.user.is_root() || a.owner == me || a.user == me)
        .map(|a| json!({"user": a.user, "domain": a.domain, "owner": a.owner, "suspended": 0}))
        .collect();
    Ok(json!({"acct": listed}))
}

/// The caller's tokens as WHM lists them: each entry with `acls` as a map of every
/// built-in ACL the account holds to 0 or 1.
fn token_list(backend: &dyn Backend, caller: &Caller) -> Outcome {
    let tokens = backend.tokens(&caller.user).map_err(|e| read_failed(&e))?;
    let mut listed = Map::new();
    for (_, entry) in tokens.iter() {
        listed.insert(entry.name.clone(), listed_entry(entry, &caller.account));
    }
    Ok(json!({"tokens": listed}))
}

fn listed_entry(entry: &TokenEntry, account: &Privileges) -> Value {
    let mut shown = json!({
        "name": entry.name,
        "create_time": entry.create_time,
        "expires_at": entry.expires_at,
    });
    if let Some(list) = &entry.whitelist_ips {
        shown["whitelist_ips"] = json!(list);
    }
    let acls: Map<String, Value> = BUILTIN_ACLS
        .iter()
        .filter(|acl| account.holds(acl))
        .map(|acl| {
            let granted = entry.has_full_access() || entry.acls.iter().flatten().any(|a| a == acl);
            ((*acl).to_owned(), json!(u8::from(granted)))
        })
        .collect();
    shown["acls"] = Value::Object(acls);
    shown
}

/// The values of `name` and of `name-1`, `name-2`, … in the query, in order.
fn numbered<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(key, _)| {
            key == name
                || key
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(_, value)| value.as_str())
        .collect()
}

fn single<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `api_token_create`: `token_name`, `acl-N`, `expires_at`, `whitelist_ip-N`. The new token
/// is stored through the backend's import (its lock, then its audit line).
fn token_create(backend: &dyn Backend, caller: &Caller, params: &[(String, String)]) -> Outcome {
    let name = single(params, "token_name").unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(format!(
            "“token_name” must be 1 to {MAX_NAME_LEN} letters, digits, dashes or underscores."
        ));
    }
    let now = jiff::Timestamp::now().as_second();
    let mut restrictions = Restrictions::default()
        .with_acls(&numbered(params, "acl"))
        .and_then(|r| r.with_allow_ips(&numbered(params, "whitelist_ip")))
        .map_err(|e| e.to_string())?;
    if let Some(expires_at) = single(params, "expires_at").filter(|v| !v.is_empty()) {
        if !expires_at.bytes().all(|b| b.is_ascii_digit()) {
            return Err("“expires_at” must be a time in epoch seconds.".to_owned());
        }
        restrictions = restrictions
            .with_expiry(expires_at, now)
            .map_err(|e| e.to_string())?;
    }
    no_more_than_the_caller(caller, &restrictions)?;
    let mut rng = rand::rng();
    let secret: String = (0..TOKEN_LEN)
        .map(|_| char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]))
        .collect();
    let item = ImportItem {
        user: caller.user.clone(),
        request: ImportRequest::named(
            TokenHash::of_secret(secret.as_bytes()),
            name,
            now,
            restrictions,
        ),
    };
    let decision = backend
        .import(
            &item.user,
            &item.request,
            &AuditTurn::alone(&SystemClock).acting_as(caller.user.clone()),
        )
        .map_err(|e| match e {
            BackendError::Import(ImportError::NamesExhausted { .. }) => {
                format!("A conflicting API token with the name “{name}” already exists.")
            }
            other => read_failed(&other),
        })?;
    let Decision::Write { entry, .. } = decision else {
        return Err("A token with this secret already exists.".to_owned());
    };
    let mut data = json!({
        "token": secret,
        "name": entry.name,
        "create_time": entry.create_time,
        "expires_at": entry.expires_at,
    });
    if let Some(acls) = &entry.acls {
        data["acls"] = json!(acls);
    }
    if let Some(list) = &entry.whitelist_ips {
        data["whitelist_ips"] = json!(list);
    }
    Ok(data)
}

/// A new token never holds more than the caller's own credential: its ACLs are ones the
/// caller may use (full access only from full access), it expires no later than the
/// caller's token, and its allow-list admits no address the caller's does not.
fn no_more_than_the_caller(caller: &Caller, new: &Restrictions) -> Result<(), String> {
    match &new.acls {
        None if !caller.full_access => {
            return Err(
                "A token with restricted privileges cannot create a full-access token.".to_owned(),
            );
        }
        Some(acls) => {
            if let Some(missing) = acls
                .iter()
                .find(|acl| !caller.acls.holds(acl) || !caller.account.holds(acl))
            {
                return Err(format!("You do not have the “{missing}” privilege."));
            }
        }
        None => {}
    }
    if let Some(limit) = caller.expires_at {
        match new.expires_at {
            None => {
                return Err(format!(
                    "Your token expires at {limit}: give the new token an “expires_at” no later."
                ));
            }
            Some(at) if at > limit => {
                return Err(format!(
                    "Your token expires at {limit}: the new token cannot expire later ({at})."
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(allowed) = &caller.allow_list {
        let allowed: Vec<IpNet> = allowed.iter().filter_map(|e| net(e)).collect();
        match &new.whitelist_ips {
            None => {
                return Err(
                    "Your token is limited to an allow-list: give the new token a “whitelist_ip” within it."
                        .to_owned(),
                );
            }
            Some(list) => {
                if let Some(wider) = list.iter().find(|entry| {
                    net(entry).is_none_or(|entry| !allowed.iter().any(|a| a.contains(&entry)))
                }) {
                    return Err(format!(
                        "Your token's allow-list does not include “{wider}”."
                    ));
                }
            }
        }
    }
    Ok(())
}

/// An allow-list entry as a network: an address, or a range.
fn net(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `api_token_revoke`: removes the tokens `token_name` (and `token_name-N`) names, each
/// once however often it is named. A
/// caller without full access may revoke only tokens whose privileges it holds. Each
/// revocation's `REVOKEAPITOKEN` line is written before the token is removed.
fn token_revoke(backend: &dyn Backend, caller: &Caller, params: &[(String, String)]) -> Outcome {
    let mut names = numbered(params, "token_name");
    if names.is_empty() {
        return Err("Provide the “token_name” parameter.".to_owned());
    }
    // A name given twice is one revocation, with one line.
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(*name));
    let tokens = backend.tokens(&caller.user).map_err(|e| read_failed(&e))?;
    for name in &names {
        let missing = || format!("The API token “{}” does not exist.", name.escape_debug());
        let (_, entry) = tokens
            .iter()
            .find(|(_, entry)| entry.name == *name)
            .ok_or_else(missing)?;
        if !caller.full_access {
            let needs = match &entry.acls {
                Some(acls) if !entry.has_full_access() => {
                    acls.iter().find(|acl| !caller.acls.holds(acl)).cloned()
                }
                _ => Some("all".to_owned()),
            };
            if let Some(acl) = needs {
                return Err(format!(
                    "You cannot revoke the API token “{}”: it holds the “{acl}” privilege, which your token does not.",
                    name.escape_debug()
                ));
            }
        }
    }
    for name in &names {
        backend
            .append_audit(&AuditEvent {
                time: SystemClock.now(),
                action: AuditAction::RevokeApiToken,
                actor: caller.user.clone(),
                user: caller.user.clone(),
                token_name: (*name).to_owned(),
            })
            .map_err(|e| read_failed(&e))?;
        // Another request may have revoked it since it was read: then it is gone all
        // the same, and its line says who asked.
        backend
            .revoke(&caller.user, name)
            .map_err(|e| read_failed(&e))?;
    }
    Ok(Value::Null)
}
