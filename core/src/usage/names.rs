//! Which files of a logs folder are cPanel's two logs, and which of them can hold lines of
//! a window: the current log, `<name>.1` (and `<name>.N`), `<name>.gz` (and
//! `<name>.N.gz`) left by other rotation tools, and cPanel's own monthly archives,
//! `archive/<name>-MM-YYYY.gz`. Backends list only the names [`LogName::parse`] accepts.

use std::cmp::Ordering;

use super::time::days_from_civil;

/// Which log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogKind {
    /// `access_log`: one line per request (every request).
    Access,
    /// `api_tokens_log`: one line per request an API token authenticated.
    ApiTokens,
}

impl LogKind {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Access => "access_log",
            Self::ApiTokens => "api_tokens_log",
        }
    }
}

/// Which copy of a log, from the oldest kind to the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// `archive/<name>-MM-YYYY.gz`: cPanel's archive of a month.
    Archive { year: i64, month: u32 },
    /// `<name>.N.gz`, `<name>.N` (N from 1): rotated N times ago.
    Numbered(u32),
    /// `<name>.gz`.
    Compressed,
    /// `<name>`: the log being written.
    Current,
}

/// A log file's name under the logs folder, understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogName {
    pub kind: LogKind,
    pub rotation: Rotation,
}

/// A day, in seconds: the slack given to a file's dates (time zones, a late write).
const DAY: i64 = 86_400;

impl LogName {
    /// `name` relative to the logs folder (`access_log.1`, `archive/access_log-11-2026.gz`),
    /// or `None` when it is not one of the two logs.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(archived) = name.strip_prefix("archive/") {
            return Self::archive(archived);
        }
        for kind in [LogKind::Access, LogKind::ApiTokens] {
            let Some(rest) = name.strip_prefix(kind.file_name()) else {
                continue;
            };
            let rotation = match rest {
                "" => Rotation::Current,
                ".gz" => Rotation::Compressed,
                _ => {
                    let rest = rest.strip_prefix('.')?;
                    let number = rest.strip_suffix(".gz").unwrap_or(rest);
                    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    Rotation::Numbered(number.parse().ok().filter(|n| *n > 0)?)
                }
            };
            return Some(Self { kind, rotation });
        }
        None
    }

    /// `<name>-MM-YYYY.gz`.
    fn archive(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".gz")?;
        let (kind, date) = [LogKind::Access, LogKind::ApiTokens]
            .into_iter()
            .find_map(|kind| {
                Some((
                    kind,
                    stem.strip_prefix(kind.file_name())?.strip_prefix('-')?,
                ))
            })?;
        let (month, year) = date.split_once('-')?;
        if month.len() != 2 || year.len() != 4 {
            return None;
        }
        let month: u32 = month.parse().ok().filter(|m| (1..=12).contains(m))?;
        let year: i64 = year.parse().ok()?;
        Some(Self {
            kind,
            rotation: Rotation::Archive { year, month },
        })
    }

    /// Whether the file can hold a line at or after `from`: not when it was last written a
    /// day before, nor when it is the archive of a month that ended a day before.
    pub fn may_reach(&self, modified: i64, from: i64) -> bool {
        if modified < from - DAY {
            return false;
        }
        match self.rotation {
            Rotation::Archive { year, month } => {
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1) * DAY + DAY >= from
            }
            _ => true,
        }
    }

    /// The order files are read in: oldest first (archives by month, then `.N` from the
    /// highest N, then `.gz`, then the current log).
    pub fn chronological(&self, other: &Self) -> Ordering {
        let rank = |r: Rotation| match r {
            Rotation::Archive { year, month } => (0, year * 12 + i64::from(month)),
            Rotation::Numbered(n) => (1, -i64::from(n)),
            Rotation::Compressed => (2, 0),
            Rotation::Current => (3, 0),
        };
        rank(self.rotation).cmp(&rank(other.rotation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_logs_and_their_rotations_are_recognized() {
        let name = |n: &str| LogName::parse(n);
        let access = |rotation| {
            Some(LogName {
                kind: LogKind::Access,
                rotation,
            })
        };
        assert_eq!(name("access_log"), access(Rotation::Current));
        assert_eq!(name("access_log.1"), access(Rotation::Numbered(1)));
        assert_eq!(name("access_log.3.gz"), access(Rotation::Numbered(3)));
        assert_eq!(name("access_log.gz"), access(Rotation::Compressed));
        assert_eq!(
            name("archive/access_log-11-2026.gz"),
            access(Rotation::Archive {
                year: 2026,
                month: 11
            })
        );
        assert_eq!(
            name("archive/api_tokens_log-01-2027.gz").map(|n| n.kind),
            Some(LogKind::ApiTokens)
        );
        for other in [
            "error_log",
            "access_log.0",
            "access_log.x",
            "access_log.1.bz2",
            "access_logs",
            "archive/access_log-13-2026.gz",
            "archive/access_log-11-2026",
            "archive/error_log-11-2026.gz",
            "archive/access_log",
            "incoming_http_requests.log",
        ] {
            assert_eq!(name(other), None, "{other}");
        }
    }

    #[test]
    fn files_that_end_before_the_window_are_left_out() {
        let from = 1_793_491_200; // 2026-11-01 00:00:00 UTC
        let october = LogName::parse("archive/access_log-10-2026.gz").unwrap();
        let september = LogName::parse("archive/access_log-09-2026.gz").unwrap();
        let current = LogName::parse("access_log").unwrap();
        assert!(
            october.may_reach(from + 100, from),
            "ends at the window's start"
        );
        assert!(!september.may_reach(from + 100, from));
        assert!(
            !current.may_reach(from - 2 * DAY, from),
            "untouched since before"
        );
        assert!(current.may_reach(from - DAY / 2, from));
    }

    #[test]
    fn files_are_read_oldest_first() {
        let mut names: Vec<LogName> = [
            "access_log",
            "access_log.1",
            "archive/access_log-02-2027.gz",
            "access_log.2.gz",
            "access_log.gz",
            "archive/access_log-12-2026.gz",
        ]
        .iter()
        .map(|n| LogName::parse(n).unwrap())
        .collect();
        names.sort_by(LogName::chronological);
        let rotations: Vec<Rotation> = names.iter().map(|n| n.rotation).collect();
        assert_eq!(
            rotations,
            [
                Rotation::Archive {
                    year: 2026,
                    month: 12
                },
                Rotation::Archive {
                    year: 2027,
                    month: 2
                },
                Rotation::Numbered(2),
                Rotation::Numbered(1),
                Rotation::Compressed,
                Rotation::Current,
            ]
        );
    }
}
