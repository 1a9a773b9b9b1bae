//! The retire and restore decisions, pure functions over what a backend read, and the
//! statuses and messages they end in. Every backend gets the same answer for the same
//! state because none of them decides.

use std::fmt;

use crate::secret::AccessHash;
use crate::token::TokenSet;

use super::records::{CONVERTED_NAME_PREFIX, RetiredFile, SettingChange};

/// Where an account's access hash stands for retirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It has an access hash and a token under its key: it can be retired.
    Converted,
    /// It has an access hash and no token under its key (or an empty one): refused.
    NotConverted,
    /// No access hash, and a token the converter made (`accesshash-…`).
    AlreadyRetired,
    /// Neither.
    NoAccessHash,
}

/// Decides where an account stands from its access hash (`None`: it has none) and its
/// tokens. "Converted" is the audit's rule: a token stored under the SHA-512 of the access
/// hash. Without an access hash there is no key to look up, so a token named as the
/// converter names its tokens counts as the converted one.
pub fn decide(access_hash: Option<&AccessHash>, tokens: &TokenSet) -> Standing {
    match access_hash {
        Some(hash) => match hash.token_hash() {
            Some(key) if tokens.get(&key).is_some() => Standing::Converted,
            _ => Standing::NotConverted,
        },
        None if tokens
            .iter()
            .any(|(_, entry)| entry.name.starts_with(CONVERTED_NAME_PREFIX)) =>
        {
            Standing::AlreadyRetired
        }
        None => Standing::NoAccessHash,
    }
}

/// What became of an account, or of one change of a run being restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Retired (a dry run: would be).
    Retired,
    AlreadyRetired,
    NoAccessHash,
    /// Refused: its access hash is not converted.
    NotConverted,
    /// Put back as it was before the run (a dry run: would be).
    Restored,
    AlreadyRestored,
    /// It failed; the outcome says why.
    Failed,
}

impl Status {
    /// The statuses of a retire run, as its `--json` summary counts them.
    pub const RETIRE: [Status; 5] = [
        Self::Retired,
        Self::AlreadyRetired,
        Self::NoAccessHash,
        Self::NotConverted,
        Self::Failed,
    ];

    /// The statuses of a restore, as its `--json` summary counts them.
    pub const RESTORE: [Status; 3] = [Self::Restored, Self::AlreadyRestored, Self::Failed];

    /// Its name in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retired => "retired",
            Self::AlreadyRetired => "already_retired",
            Self::NoAccessHash => "no_accesshash",
            Self::NotConverted => "not_converted",
            Self::Restored => "restored",
            Self::AlreadyRestored => "already_restored",
            Self::Failed => "failed",
        }
    }
}

impl From<Standing> for Status {
    fn from(standing: Standing) -> Self {
        match standing {
            Standing::Converted => Self::Retired,
            Standing::NotConverted => Self::NotConverted,
            Standing::AlreadyRetired => Self::AlreadyRetired,
            Standing::NoAccessHash => Self::NoAccessHash,
        }
    }
}

/// Why an account or a change did not end as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Its access hash is not converted: retiring it would break its clients.
    NotConverted,
    /// A restore refused for safety; forcing it would go ahead.
    Refused(Refusal),
    /// Anything else, as one line (an error and its causes).
    Failed(String),
}

/// The message of [`Problem::NotConverted`].
pub const NOT_CONVERTED: &str = "access hash not converted; run convert_accesshash_to_token first";

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConverted => f.write_str(NOT_CONVERTED),
            Self::Refused(refusal) => refusal.fmt(f),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

/// A restore refused unless forced, where: its message names no command-line option; a
/// front end adds how to force it ([`Refusal::forcing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The backup no longer has the SHA-512 the journal recorded.
    BackupChanged { location: String },
    /// An access hash exists again, and it is not the one retired.
    AccessHashBack { location: String },
    /// The setting is neither what the run left nor what it found.
    SettingChanged {
        location: String,
        change: Box<SettingChange>,
        now: Option<String>,
    },
}

impl Refusal {
    /// What forcing the restore does, to follow the option that forces it.
    pub fn forcing(&self) -> String {
        match self {
            Self::BackupChanged { .. } => "restores it as it is".to_owned(),
            Self::AccessHashBack { .. } => "keeps it in the run's backup and restores".to_owned(),
            Self::SettingChanged { change, .. } => {
                format!("sets it back to {}", shown(change.old.as_deref()))
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BackupChanged { location } => write!(
                f,
                "{location}: the backup no longer matches the journal's SHA-512"
            ),
            Self::AccessHashBack { location } => write!(
                f,
                "refusing to write {location}: an access hash exists again and differs from the one retired"
            ),
            Self::SettingChanged {
                location,
                change,
                now,
            } => write!(
                f,
                "refusing to write {location}: {} was changed since the run (it is {})",
                change.name,
                shown(now.as_deref())
            ),
        }
    }
}

/// A setting's value as messages show it.
fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("“{}”", v.escape_debug()),
        None => "unset".to_owned(),
    }
}

/// The message of an access hash that changed between its backup and its removal.
pub fn changed_while_retired(location: &str) -> String {
    format!("refusing to write {location}: it changed while being retired; left in place")
}

/// The message of a setting that changed between the decision and the write.
pub fn setting_changed_meanwhile(location: &str, name: &str) -> String {
    format!("refusing to write {location}: {name} changed while it was being set; left as it is")
}

/// What restoring one change is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// It is back already.
    Already,
    /// Put it back (over what is there now, kept in the run's backup, when `replacing`).
    Write { replacing: bool },
    /// Refused unless forced.
    Refuse(Refusal),
}

/// The first half of an access hash's restore, before its backup is read: `Some` when what
/// is in its home settles it. `present` is the SHA-512 of what is there now; `recovered`:
/// a set-aside copy was (or would be) put back.
pub fn restore_settled(
    present: Option<&str>,
    retired: &RetiredFile,
    recovered: bool,
) -> Option<Status> {
    if present == Some(retired.sha512.as_str()) {
        return Some(if recovered {
            Status::Restored
        } else {
            Status::AlreadyRestored
        });
    }
    // The run never removed it (its removal failed, or it changed meanwhile and was put
    // back): what is there is the account's, not the run's to undo.
    (present.is_some() && retired.unconfirmed).then_some(Status::AlreadyRestored)
}

/// The second half, once [`restore_settled`] settled nothing: `backup` is the SHA-512 of the
/// backup, `backup_at` and `home` where the backup and the access hash are.
pub fn decide_restore(
    present: Option<&str>,
    retired: &RetiredFile,
    backup: &str,
    (backup_at, home): (&str, &str),
    force: bool,
) -> Restore {
    // What the backup holds is home already (a forced restore of a changed backup put it
    // there): nothing to do, and nothing to refuse.
    if present == Some(backup) {
        return Restore::Already;
    }
    if backup != retired.sha512 && !force {
        return Restore::Refuse(Refusal::BackupChanged {
            location: backup_at.to_owned(),
        });
    }
    if present.is_some() && !force {
        return Restore::Refuse(Refusal::AccessHashBack {
            location: home.to_owned(),
        });
    }
    Restore::Write {
        replacing: present.is_some(),
    }
}

/// Whether a setting change is to be undone, given the setting's value now (read at
/// `location`): refused when it was changed since the run, unless `force`. A setting the
/// run turned off whose line was removed since is off still (cPanel's default): it is put
/// back.
pub fn decide_setting_restore(
    now: Option<&str>,
    change: &SettingChange,
    location: &str,
    force: bool,
) -> Restore {
    if now == change.old.as_deref() {
        return Restore::Already;
    }
    let removed_since = now.is_none() && !allows_access_hash(change.new.as_deref());
    if now != change.new.as_deref() && !removed_since && !force {
        return Restore::Refuse(Refusal::SettingChanged {
            location: location.to_owned(),
            change: Box::new(change.clone()),
            now: now.map(str::to_owned),
        });
    }
    Restore::Write { replacing: false }
}

/// Whether `value` lets an access hash authenticate (`1`; anything else, or unset, is off).
pub fn allows_access_hash(value: Option<&str>) -> bool {
    value == Some("1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::TokenHash;
    use crate::token::TokenEntry;

    fn tokens_named(key: Option<&TokenHash>, name: &str) -> TokenSet {
        let key = key.cloned().unwrap_or_else(|| {
            AccessHash::from_bytes(b"other".to_vec())
                .token_hash()
                .expect("a key")
        });
        let entry = TokenEntry {
            name: name.to_owned(),
            ..TokenEntry::default()
        };
        TokenSet::new(vec![(key, entry)])
    }

    #[test]
    fn standing_follows_the_audits_rule() {
        let hash = AccessHash::from_bytes(b"abc\n".to_vec());
        let key = hash.token_hash().expect("a key");
        let none = TokenSet::new(Vec::new());
        assert_eq!(
            decide(Some(&hash), &tokens_named(Some(&key), "x")),
            Standing::Converted
        );
        assert_eq!(decide(Some(&hash), &none), Standing::NotConverted);
        let empty = AccessHash::from_bytes(b" \n".to_vec());
        assert_eq!(
            decide(Some(&empty), &tokens_named(None, "accesshash-1")),
            Standing::NotConverted
        );
        assert_eq!(
            decide(None, &tokens_named(None, "accesshash-1")),
            Standing::AlreadyRetired
        );
        assert_eq!(
            decide(None, &tokens_named(None, "billing")),
            Standing::NoAccessHash
        );
    }

    fn retired(sha: &str, unconfirmed: bool) -> RetiredFile {
        RetiredFile {
            user: "root".into(),
            path: "p".into(),
            sha512: sha.into(),
            size: 1,
            mode: None,
            uid: None,
            gid: None,
            mtime: None,
            mtime_nsec: None,
            backup: "b".into(),
            set_aside: None,
            unconfirmed,
        }
    }

    #[test]
    fn restore_refuses_what_changed_unless_forced() {
        let r = retired("aa", false);
        assert_eq!(
            restore_settled(Some("aa"), &r, false),
            Some(Status::AlreadyRestored)
        );
        assert_eq!(
            restore_settled(Some("aa"), &r, true),
            Some(Status::Restored)
        );
        assert_eq!(restore_settled(Some("bb"), &r, false), None);
        assert_eq!(
            restore_settled(Some("bb"), &retired("aa", true), false),
            Some(Status::AlreadyRestored)
        );
        let at = ("backup", "home");
        assert_eq!(
            decide_restore(None, &r, "aa", at, false),
            Restore::Write { replacing: false }
        );
        let refused = decide_restore(None, &r, "cc", at, false);
        assert_eq!(
            refused,
            Restore::Refuse(Refusal::BackupChanged {
                location: "backup".into()
            })
        );
        assert_eq!(
            decide_restore(None, &r, "cc", at, true),
            Restore::Write { replacing: false }
        );
        let Restore::Refuse(back) = decide_restore(Some("bb"), &r, "aa", at, false) else {
            panic!("refused")
        };
        assert_eq!(
            format!("{back}; --force {}", back.forcing()),
            "refusing to write home: an access hash exists again and differs from the one retired; --force keeps it in the run's backup and restores"
        );
        assert_eq!(
            decide_restore(Some("bb"), &r, "aa", at, true),
            Restore::Write { replacing: true }
        );
        // A changed backup once put back (forced) is home: again, forced or not, nothing.
        for force in [false, true] {
            assert_eq!(
                decide_restore(Some("cc"), &r, "cc", at, force),
                Restore::Already
            );
        }
    }

    #[test]
    fn a_setting_whose_line_was_removed_since_is_put_back() {
        let change = SettingChange {
            name: "allow_deprecated_accesshash".into(),
            old: Some("1".into()),
            new: Some("0".into()),
            lines: Vec::new(),
        };
        assert_eq!(
            decide_setting_restore(None, &change, "c", false),
            Restore::Write { replacing: false }
        );
        assert!(matches!(
            decide_setting_restore(Some(""), &change, "c", false),
            Restore::Refuse(_)
        ));
    }

    #[test]
    fn a_setting_is_restored_only_from_what_the_run_left() {
        let change = SettingChange {
            name: "allow_deprecated_accesshash".into(),
            old: None,
            new: Some("0".into()),
            lines: Vec::new(),
        };
        assert_eq!(
            decide_setting_restore(None, &change, "c", false),
            Restore::Already
        );
        assert_eq!(
            decide_setting_restore(Some("0"), &change, "c", false),
            Restore::Write { replacing: false }
        );
        let Restore::Refuse(refusal) = decide_setting_restore(Some("1"), &change, "c", false)
        else {
            panic!("refused")
        };
        assert_eq!(
            format!("{refusal}; --force {}", refusal.forcing()),
            "refusing to write c: allow_deprecated_accesshash was changed since the run (it is “1”); --force sets it back to unset"
        );
        assert_eq!(
            decide_setting_restore(Some("1"), &change, "c", true),
            Restore::Write { replacing: false }
        );
    }
}
