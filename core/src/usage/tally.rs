//! Counting uses as lines are read: per account, its access hash and each token, with the
//! clients apart. Memory is bounded whatever the logs hold: only the accounts asked about
//! are counted, at most [`MAX_CLIENTS`] clients are kept per credential, user agents are
//! kept to [`MAX_AGENT`] bytes, and every client kept comes out of one byte budget.

use std::collections::HashMap;

use super::report::{
    AccountUsage, CLIENTS_SHOWN, Client, Covered, CredentialUsage, TokenUsage, Use, Window, text_of,
};

/// Clients kept apart per credential.
pub(crate) const MAX_CLIENTS: usize = 1000;

/// Bytes of a user agent kept.
const MAX_AGENT: usize = 512;

/// Bytes all kept clients may take together.
const CLIENT_BUDGET: usize = 64 << 20;

#[derive(Debug)]
struct ClientStats {
    count: u64,
    refused: u64,
    last: i64,
}

/// One credential's counts.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    refused: u64,
    first: Option<i64>,
    last: Option<i64>,
    last_refused: Option<i64>,
    /// Indexes into `keys`/`stats` of the last accepted and refused requests' clients.
    last_use_client: Option<usize>,
    last_refusal_client: Option<usize>,
    index: HashMap<Box<[u8]>, usize>,
    keys: Vec<Box<[u8]>>,
    stats: Vec<ClientStats>,
    /// Clients beyond those kept.
    overflow: bool,
}

/// A client, as its key: the address, a 0xff byte, then 0 (no user agent) or 1 and the
/// user agent (cut to [`MAX_AGENT`] bytes).
fn key_into(scratch: &mut Vec<u8>, ip: &[u8], user_agent: Option<&[u8]>) {
    scratch.clear();
    scratch.extend_from_slice(ip);
    scratch.push(0xff);
    match user_agent {
        None => scratch.push(0),
        Some(agent) => {
            scratch.push(1);
            scratch.extend_from_slice(&agent[..agent.len().min(MAX_AGENT)]);
        }
    }
}

fn client_of(key: &[u8]) -> (String, Option<String>) {
    let split = key.iter().position(|b| *b == 0xff).unwrap_or(key.len());
    let ip = text_of(&key[..split]);
    let agent = match key.get(split + 1) {
        Some(1) => Some(text_of(&key[split + 2..])),
        _ => None,
    };
    (ip, agent)
}

impl Tally {
    fn count(&mut self, time: i64, ok: bool, key: &[u8], budget: &mut usize) {
        let client = match self.index.get(key) {
            Some(&i) => Some(i),
            None if self.keys.len() < MAX_CLIENTS && *budget >= key.len() + 64 => {
                *budget -= key.len() + 64;
                let i = self.keys.len();
                self.keys.push(key.into());
                self.index.insert(key.into(), i);
                self.stats.push(ClientStats {
                    count: 0,
                    refused: 0,
                    last: time,
                });
                Some(i)
            }
            None => {
                self.overflow = true;
                None
            }
        };
        if let Some(i) = client {
            let stats = &mut self.stats[i];
            stats.count += 1;
            stats.refused += u64::from(!ok);
            stats.last = stats.last.max(time);
        }
        if ok {
            self.ok += 1;
            self.first = Some(self.first.map_or(time, |f| f.min(time)));
            if self.last.is_none_or(|last| time >= last) {
                self.last = Some(time);
                self.last_use_client = client;
            }
        } else {
            self.refused += 1;
            if self.last_refused.is_none_or(|last| time >= last) {
                self.last_refused = Some(time);
                self.last_refusal_client = client;
            }
        }
    }

    fn finish(self) -> CredentialUsage {
        let a_use = |time: Option<i64>, client: Option<usize>| {
            let time = time?;
            let (ip, user_agent) =
                client.map_or((String::new(), None), |i| client_of(&self.keys[i]));
            Some(Use {
                time,
                ip,
                user_agent,
            })
        };
        let last_use = a_use(self.last, self.last_use_client);
        let last_refusal = a_use(self.last_refused, self.last_refusal_client);
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_by(|a, b| {
            let (a, b) = (&self.stats[*a], &self.stats[*b]);
            b.last.cmp(&a.last).then(b.count.cmp(&a.count))
        });
        let kept = order.len();
        let clients = order
            .into_iter()
            .take(CLIENTS_SHOWN)
            .map(|i| {
                let (ip, user_agent) = client_of(&self.keys[i]);
                let stats = &self.stats[i];
                Client {
                    ip,
                    user_agent,
                    count: stats.count,
                    refused: stats.refused,
                    last: stats.last,
                }
            })
            .collect();
        let more_clients = kept.saturating_sub(CLIENTS_SHOWN) as u64 + u64::from(self.overflow);
        CredentialUsage {
            ok: self.ok,
            refused: self.refused,
            first: self.first,
            last: self.last,
            last_refused: self.last_refused,
            last_use,
            last_refusal,
            clients,
            more_clients,
        }
    }
}

/// A token of an account.
#[derive(Debug)]
struct TokenTally {
    name: String,
    stored: bool,
    created: Option<i64>,
    tally: Tally,
}

#[derive(Debug)]
struct AccountTally {
    user: String,
    accesshash: Tally,
    tokens: Vec<TokenTally>,
    token_index: HashMap<Box<[u8]>, usize>,
}

/// The counts of every account asked about.
#[derive(Debug)]
pub(crate) struct Ledger {
    window: Window,
    index: HashMap<Box<[u8]>, usize>,
    accounts: Vec<AccountTally>,
    budget: usize,
    scratch: Vec<u8>,
}

impl Ledger {
    pub(crate) fn new(window: Window, covered: Vec<Covered>) -> Self {
        let mut index = HashMap::new();
        let accounts = covered
            .into_iter()
            .enumerate()
            .map(|(i, account)| {
                index.insert(account.user.as_bytes().into(), i);
                let tokens: Vec<TokenTally> = account
                    .tokens
                    .into_iter()
                    .map(|(name, created)| TokenTally {
                        name,
                        stored: true,
                        created,
                        tally: Tally::default(),
                    })
                    .collect();
                let token_index = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.name.as_bytes().into(), i))
                    .collect();
                AccountTally {
                    user: account.user,
                    accesshash: Tally::default(),
                    tokens,
                    token_index,
                }
            })
            .collect();
        Self {
            window,
            index,
            accounts,
            budget: CLIENT_BUDGET,
            scratch: Vec::new(),
        }
    }

    /// The account called `user`, when it is one asked about.
    pub(crate) fn account(&self, user: &[u8]) -> Option<u32> {
        self.index.get(user).map(|i| *i as u32)
    }

    /// The token called `name` of `account`, added when the account holds none by that
    /// name (a token revoked since, seen in the logs).
    pub(crate) fn token(&mut self, account: u32, name: &[u8]) -> u32 {
        let account = &mut self.accounts[account as usize];
        if let Some(i) = account.token_index.get(name) {
            return *i as u32;
        }
        let i = account.tokens.len();
        account.tokens.push(TokenTally {
            name: text_of(name),
            stored: false,
            created: None,
            tally: Tally::default(),
        });
        account.token_index.insert(name.into(), i);
        i as u32
    }

    /// A request the access hash made (`token: None`) or a token made, at `time`, from
    /// `ip` with `user_agent`; counted only within the window.
    pub(crate) fn count(
        &mut self,
        (account, token): (u32, Option<u32>),
        time: i64,
        ok: bool,
        (ip, user_agent): (&[u8], Option<&[u8]>),
    ) {
        if !self.window.contains(time) {
            return;
        }
        key_into(&mut self.scratch, ip, user_agent);
        let account = &mut self.accounts[account as usize];
        let tally = match token {
            None => &mut account.accesshash,
            Some(t) => &mut account.tokens[t as usize].tally,
        };
        tally.count(time, ok, &self.scratch, &mut self.budget);
    }

    pub(crate) fn finish(self) -> Vec<AccountUsage> {
        self.accounts
            .into_iter()
            .map(|account| {
                let mut tokens: Vec<TokenUsage> = account
                    .tokens
                    .into_iter()
                    .map(|t| TokenUsage {
                        name: t.name,
                        stored: t.stored,
                        created: t.created,
                        usage: t.tally.finish(),
                    })
                    .collect();
                tokens.sort_by(|a, b| b.stored.cmp(&a.stored).then(a.name.cmp(&b.name)));
                AccountUsage {
                    user: account.user,
                    accesshash: account.accesshash.finish(),
                    tokens,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        let covered = vec![Covered {
            user: "bob".to_owned(),
            tokens: vec![("billing".to_owned(), Some(5))],
        }];
        Ledger::new(
            Window {
                from: 100,
                to: 1000,
            },
            covered,
        )
    }

    #[test]
    fn uses_are_counted_per_credential_and_client_within_the_window() {
        let mut ledger = ledger();
        let bob = ledger.account(b"bob").unwrap();
        assert_eq!(ledger.account(b"eve"), None);
        let ua = Some(&b"curl/8"[..]);
        ledger.count((bob, None), 200, true, (b"192.0.2.1", ua));
        ledger.count((bob, None), 300, true, (b"192.0.2.1", ua));
        ledger.count((bob, None), 250, false, (b"192.0.2.9", Some(b"bot")));
        ledger.count((bob, None), 50, true, (b"192.0.2.1", ua));
        let revoked = ledger.token(bob, b"old");
        ledger.count((bob, Some(revoked)), 400, true, (b"192.0.2.2", None));
        let report = ledger.finish();
        let hash = &report[0].accesshash;
        assert_eq!((hash.ok, hash.refused), (2, 1));
        assert_eq!(
            (hash.first, hash.last, hash.last_refused),
            (Some(200), Some(300), Some(250))
        );
        assert_eq!(hash.clients.len(), 2);
        assert_eq!(hash.clients[0].ip, "192.0.2.1");
        assert_eq!(hash.clients[0].count, 2);
        assert_eq!(hash.clients[1].refused, 1);
        let last = hash.last_use.as_ref().unwrap();
        assert_eq!(
            (last.time, last.user_agent.as_deref()),
            (300, Some("curl/8"))
        );
        let tokens = &report[0].tokens;
        assert_eq!(tokens[0].name, "billing");
        assert!(tokens[0].stored && tokens[0].usage.is_empty());
        assert_eq!(tokens[1].name, "old");
        assert!(!tokens[1].stored);
        assert_eq!(tokens[1].usage.clients[0].user_agent, None);
    }

    #[test]
    fn clients_beyond_ten_are_counted_and_beyond_a_thousand_not_kept() {
        let mut ledger = ledger();
        let bob = ledger.account(b"bob").unwrap();
        for i in 0..1500u32 {
            let agent = format!("agent-{i}");
            ledger.count(
                (bob, None),
                200,
                true,
                (b"192.0.2.1", Some(agent.as_bytes())),
            );
        }
        let hash = &ledger.finish()[0].accesshash;
        assert_eq!(hash.ok, 1500);
        assert_eq!(hash.clients.len(), CLIENTS_SHOWN);
        assert_eq!(hash.more_clients, (MAX_CLIENTS - CLIENTS_SHOWN) as u64 + 1);
    }

    #[test]
    fn a_long_user_agent_is_kept_to_512_bytes() {
        let mut ledger = ledger();
        let bob = ledger.account(b"bob").unwrap();
        let agent = vec![b'x'; 10_000];
        ledger.count((bob, None), 200, true, (b"192.0.2.1", Some(&agent)));
        let hash = &ledger.finish()[0].accesshash;
        assert_eq!(
            hash.clients[0].user_agent.as_ref().unwrap().len(),
            MAX_AGENT
        );
    }
}
