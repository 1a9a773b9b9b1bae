//! What the retirement primitives exchange: a run's id, its journal and the records it is
//! made of, and what a backend read of an access hash or of the setting. Nothing here
//! reads or writes; nothing here imports the backend seam, which uses these types.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Zoned;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

pub use zeroize::Zeroizing;

/// The tweak setting that lets a `~/.accesshash` still authenticate API calls.
pub const ALLOW_DEPRECATED_ACCESSHASH: &str = "allow_deprecated_accesshash";

/// The prefix of the names the converter gives the tokens it makes.
pub const CONVERTED_NAME_PREFIX: &str = "accesshash-";

/// A run's id: its start time in UTC and four random characters,
/// `20261201T031500Z-k3x9`; ids sort by time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// A string that is not a run id; nothing of it is shown beyond its length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("“{shown}” is not a run id (like 20261201T031500Z-k3x9)")]
pub struct InvalidRunId {
    shown: String,
}

impl RunId {
    /// A new id for a run starting at `now`.
    pub fn new(now: &Zoned, rng: &mut impl rand::Rng) -> Self {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let suffix: String = (0..4)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        let utc = now.timestamp().strftime("%Y%m%dT%H%M%SZ");
        Self(format!("{utc}-{suffix}"))
    }

    /// Checks an id given on the command line or read from a store: 16 characters of
    /// time, `-`, 4 lowercase letters or digits. It is used in file names, so nothing else
    /// is accepted.
    pub fn parse(s: &str) -> Result<Self, InvalidRunId> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let ok = b.len() == 21
            && digits(0..8)
            && b[8] == b'T'
            && digits(9..15)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidRunId {
                shown: s
                    .chars()
                    .take(40)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0
    }
}

/// The lowercase SHA-512 hex of a file's exact content: how a journal identifies what it
/// backed up, without holding it.
pub fn content_sha512(content: &[u8]) -> String {
    format!("{:x}", Sha512::digest(content))
}

/// One change of a run, with what is needed to undo it exactly. Serialized as one JSON
/// object (a line of a journal file, a row of a journal table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// An access hash moved from its home into the run's backup.
    Accesshash(RetiredFile),
    /// A server setting changed.
    Setting(SettingChange),
}

/// An access hash as it was before it was retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredFile {
    pub user: String,
    /// Where it was (a file path; SQLite: `users.access_hash`).
    pub path: String,
    /// The SHA-512 of its exact content.
    pub sha512: String,
    pub size: u64,
    /// File metadata; `None` where the store has none (SQLite).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: Option<i64>,
    pub mtime_nsec: Option<u32>,
    /// Where its backup is (a file path; SQLite: the `backups` row).
    pub backup: String,
    /// The name it is given in its folder while it is checked once more before removal
    /// (files: `.accesshash.whmtoken-retiring-<run id>`), so that a crash meanwhile leaves
    /// it where restore finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<String>,
    /// Set when read back from a journal that records removals and has no record of this
    /// one's: its removal failed or was interrupted, so the run may not have removed it.
    #[serde(skip)]
    pub unconfirmed: bool,
}

/// A setting as it was and as the run left it; `None`: not set at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// The store's lines that set it before the run, byte for byte (files: every line of
    /// `cpanel.config` that set it, duplicates included, each with its line ending), for a
    /// restore to put back as they were; empty where a store keeps no lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

/// A run, as its journal records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journal {
    pub id: RunId,
    /// When it started, in epoch seconds.
    pub started: i64,
    /// What started it (`retire`).
    pub command: String,
    /// Its changes, in the order they were made.
    pub changes: Vec<Change>,
    /// When it was restored (the last time), in epoch seconds.
    pub restored_at: Option<i64>,
    /// Whether the journal records each removal once it is complete ([`Record::Removed`]);
    /// when not (a store that journals and removes in one transaction), every access-hash
    /// change was completed.
    pub records_removals: bool,
    /// The accounts whose access hash's removal was recorded complete (by this run, or by
    /// a later one: see [`confirm_finished`]).
    pub removed: BTreeSet<String>,
    /// The removals of earlier runs that this run finished: (account, that run).
    pub finished: Vec<(String, RunId)>,
    /// The accounts as the run was given them ([`Record::Users`]; empty in journals
    /// older than it): `changes` lists their access hashes in this order.
    pub users: Vec<String>,
    /// What a restore that did not put back every change did put back: accounts and
    /// setting names ([`Record::RestoredAccount`], [`Record::RestoredSetting`]).
    pub restored_accounts: BTreeSet<String>,
    pub restored_settings: BTreeSet<String>,
    /// When its backups were removed ([`Record::Pruned`]): it can no longer put an
    /// access hash back.
    pub pruned_at: Option<i64>,
    /// The accounts whose replaced access hash a forced restore kept among the backups
    /// ([`Record::KeptReplaced`]).
    pub kept_replaced: BTreeSet<String>,
}

/// How much of a run was restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreState {
    NotRestored,
    /// A restore put back some of its changes, not all.
    PartlyRestored,
    Restored,
}

impl RestoreState {
    /// Its name in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRestored => "not_restored",
            Self::PartlyRestored => "partly_restored",
            Self::Restored => "restored",
        }
    }
}

/// Counts each removal that a later run finished ([`Record::Finished`]) as complete in
/// the journal of the run that began it.
pub fn confirm_finished(journals: &mut [Journal]) {
    let finished: Vec<(String, RunId)> = journals
        .iter()
        .flat_map(|j| j.finished.iter().cloned())
        .collect();
    for (user, run) in finished {
        for journal in journals.iter_mut().filter(|j| j.id == run) {
            journal.removed.insert(user.clone());
            for change in &mut journal.changes {
                if let Change::Accesshash(f) = change
                    && f.user == user
                {
                    f.unconfirmed = false;
                }
            }
        }
    }
}

impl Journal {
    /// The accounts whose access hash the run retired: backed up, journaled and removed.
    /// An access hash whose removal failed (or was interrupted) is not among them.
    pub fn retired_users(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Accesshash(f) if !f.unconfirmed => Some(f.user.as_str()),
                _ => None,
            })
            .collect()
    }

    /// How many access hashes the run retired.
    pub fn retired(&self) -> usize {
        self.retired_users().len()
    }

    /// How much of the run was restored.
    pub fn restore_state(&self) -> RestoreState {
        if self.restored_at.is_some() {
            RestoreState::Restored
        } else if self.restored_accounts.is_empty() && self.restored_settings.is_empty() {
            RestoreState::NotRestored
        } else {
            RestoreState::PartlyRestored
        }
    }

    /// Whether the access hash of `user` (or the setting `name`, with `setting`) is back.
    pub fn is_restored(&self, name: &str, setting: bool) -> bool {
        self.restored_at.is_some()
            || if setting {
                self.restored_settings.contains(name)
            } else {
                self.restored_accounts.contains(name)
            }
    }

    /// The setting changes the run made.
    pub fn settings(&self) -> impl Iterator<Item = &SettingChange> {
        self.changes.iter().filter_map(|c| match c {
            Change::Setting(s) => Some(s),
            Change::Accesshash(_) => None,
        })
    }
}

/// One record of a journal as stored: the run's header, a change, or the note that the
/// run was restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Header {
        run: RunId,
        started: i64,
        command: String,
        /// Whether a [`Record::Removed`] follows each completed removal.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        records_removals: bool,
    },
    Change(Change),
    Restored {
        restored_at: i64,
    },
    /// The access hash of `removed` (the account), journaled before, is now removed.
    Removed {
        removed: String,
    },
    /// This run finished the removal of `finished`'s access hash that run `run` journaled
    /// and was stopped before completing: a run's journal is appended by that run alone.
    Finished {
        finished: String,
        run: RunId,
    },
    /// The accounts the run was given, in that order (after the header, before any
    /// change): its lists follow this order whatever order the changes were made in.
    Users {
        users: Vec<String>,
    },
    /// A restore that did not put back every change put back this account's access hash.
    RestoredAccount {
        restored_account: String,
    },
    /// A restore that did not put back every change put back this setting.
    RestoredSetting {
        restored_setting: String,
    },
    /// The run's backups were removed (`whmtoken runs --prune`), recorded before they are.
    Pruned {
        pruned_at: i64,
    },
    /// A forced restore kept, among the run's backups, the access hash it replaced in this
    /// account's home: the only copy of it, which pruning keeps unless forced.
    KeptReplaced {
        kept_replaced: String,
    },
}

impl Journal {
    /// Rebuilds a journal from its records, oldest first; the first must be the header.
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Result<Self, String> {
        let mut records = records.into_iter();
        let Some(Record::Header {
            run,
            started,
            command,
            records_removals,
        }) = records.next()
        else {
            return Err("it does not start with the run's header".to_owned());
        };
        let mut journal = Journal {
            id: run,
            started,
            command,
            changes: Vec::new(),
            restored_at: None,
            records_removals,
            removed: BTreeSet::new(),
            finished: Vec::new(),
            users: Vec::new(),
            restored_accounts: BTreeSet::new(),
            restored_settings: BTreeSet::new(),
            pruned_at: None,
            kept_replaced: BTreeSet::new(),
        };
        for record in records {
            match record {
                Record::Header { .. } => return Err("it has a second header".to_owned()),
                Record::Change(change) => journal.changes.push(change),
                Record::Restored { restored_at } => journal.restored_at = Some(restored_at),
                Record::Removed { removed } => {
                    journal.removed.insert(removed);
                }
                Record::Finished { finished, run } => journal.finished.push((finished, run)),
                Record::Users { users } => journal.users = users,
                Record::RestoredAccount { restored_account } => {
                    journal.restored_accounts.insert(restored_account);
                }
                Record::RestoredSetting { restored_setting } => {
                    journal.restored_settings.insert(restored_setting);
                }
                Record::Pruned { pruned_at } => journal.pruned_at = Some(pruned_at),
                Record::KeptReplaced { kept_replaced } => {
                    journal.kept_replaced.insert(kept_replaced);
                }
            }
        }
        journal.in_users_order();
        if journal.records_removals {
            for change in &mut journal.changes {
                if let Change::Accesshash(f) = change {
                    f.unconfirmed = !journal.removed.contains(&f.user);
                }
            }
        }
        Ok(journal)
    }
}

impl Journal {
    /// Orders the access-hash changes as the run's accounts were given (a stable sort:
    /// the setting changes, made last, stay last).
    fn in_users_order(&mut self) {
        if self.users.is_empty() {
            return;
        }
        let position: std::collections::HashMap<&str, usize> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut changes = std::mem::take(&mut self.changes);
        changes.sort_by_key(|c| match c {
            Change::Accesshash(f) => (
                0,
                position.get(f.user.as_str()).copied().unwrap_or(usize::MAX),
            ),
            Change::Setting(_) => (1, 0),
        });
        self.changes = changes;
    }
}

/// An access hash as a backend read it from its home, with its checks (files: never
/// through a symbolic link, owned by its account, nobody else can write it). Its content is
/// zeroized when dropped and never shown.
pub struct Held {
    /// Where it is (a file path; SQLite: `users.access_hash`).
    pub location: String,
    pub content: Zeroizing<Vec<u8>>,
    /// File metadata; `None` where the store has none.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<i64>,
    pub mtime_nsec: Option<u32>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("location", &self.location)
            .field("size", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// What `Retirement::remove_if_unchanged` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// It was what the backup holds, and it is gone.
    Removed,
    /// It was gone already (another run removed it).
    Gone,
    /// It changed since it was read: left in place, at `location`.
    Changed { location: String },
}

/// `allow_deprecated_accesshash` as a backend read it: its value (`None`: not set) and
/// where it is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub value: Option<String>,
    pub location: String,
    /// The lines that set it, byte for byte, line endings included (files); empty where a
    /// store keeps no lines.
    pub lines: Vec<String>,
}

/// `<Perl scalar localtime>:<ACTION>:root:<user>:not-applicable:<run id>`, as cPanel's
/// `accounting.log` lines are made (without the line feed).
pub fn accounting_line(time: &Zoned, action: &str, user: &str, run: &RunId) -> String {
    format!(
        "{}:{action}:root:{user}:not-applicable:{run}",
        time.strftime("%a %b %e %H:%M:%S %Y")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    #[test]
    fn run_ids_sort_by_time_and_parse_back() {
        let mut rng = rand::rng();
        let a = RunId::new(&FixedClock::at(1_700_000_000).now(), &mut rng);
        let b = RunId::new(&FixedClock::at(1_700_000_001).now(), &mut rng);
        assert!(a < b);
        assert!(a.as_str().starts_with("20231114T221320Z-"), "{a}");
        assert_eq!(RunId::parse(a.as_str()).unwrap(), a);
        for bad in [
            "",
            "../../etc",
            "20231114T221320Z-ABCD",
            "20231114T221320Z-abc/",
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_journal_round_trips_through_its_records() {
        let id = RunId::parse("20261201T031500Z-ab12").unwrap();
        let change = Change::Setting(SettingChange {
            name: ALLOW_DEPRECATED_ACCESSHASH.into(),
            old: Some("1".into()),
            new: Some("0".into()),
            lines: Vec::new(),
        });
        let records = [
            Record::Header {
                run: id.clone(),
                started: 5,
                command: "retire".into(),
                records_removals: false,
            },
            Record::Change(change.clone()),
            Record::Restored { restored_at: 9 },
        ];
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(
            lines[1],
            r#"{"change":"setting","name":"allow_deprecated_accesshash","old":"1","new":"0"}"#
        );
        let parsed = lines
            .iter()
            .map(|l| serde_json::from_str::<Record>(l).unwrap());
        let journal = Journal::from_records(parsed).unwrap();
        assert_eq!(journal.id, id);
        assert_eq!(journal.changes, [change]);
        assert_eq!(journal.restored_at, Some(9));
    }

    #[test]
    fn only_removals_recorded_complete_count_as_retired() {
        let id = RunId::parse("20261201T031500Z-ab12").unwrap();
        let file = |user: &str| {
            Record::Change(Change::Accesshash(RetiredFile {
                user: user.into(),
                path: format!("home/{user}/.accesshash"),
                sha512: content_sha512(user.as_bytes()),
                size: 3,
                mode: None,
                uid: None,
                gid: None,
                mtime: None,
                mtime_nsec: None,
                backup: String::new(),
                set_aside: Some(".accesshash.whmtoken-retiring-x".into()),
                unconfirmed: false,
            }))
        };
        let header = |records_removals| Record::Header {
            run: id.clone(),
            started: 5,
            command: "retire".into(),
            records_removals,
        };
        let removed = Record::Removed {
            removed: "bob".into(),
        };
        let lines: Vec<String> = [header(true), file("ann"), file("bob"), removed.clone()]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(lines[3], r#"{"removed":"bob"}"#);
        let parsed = lines
            .iter()
            .map(|l| serde_json::from_str::<Record>(l).unwrap());
        let journal = Journal::from_records(parsed).unwrap();
        assert_eq!(journal.retired_users(), ["bob"]);
        assert!(matches!(&journal.changes[0], Change::Accesshash(f) if f.unconfirmed));
        // A journal that does not record removals (one transaction each) counts them all.
        let all = Journal::from_records([header(false), file("ann"), file("bob")]).unwrap();
        assert_eq!(all.retired(), 2);
    }

    #[test]
    fn accounting_lines_name_the_action_and_run() {
        let id = RunId::parse("20150601T133319Z-ab12").unwrap();
        assert_eq!(
            accounting_line(
                &FixedClock::at(1_433_165_599).now(),
                "RETIREACCESSHASH",
                "res1",
                &id
            ),
            "Mon Jun  1 13:33:19 2015:RETIREACCESSHASH:root:res1:not-applicable:20150601T133319Z-ab12"
        );
    }
}
