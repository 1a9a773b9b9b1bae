//! Times as people read them: every date the commands print in text goes through
//! [`Dates`], `2026-12-03 21:19:22 UTC`, with how long ago or ahead where it helps
//! (`2026-11-30 21:19:22 UTC (3 days ago)`). JSON keeps epoch seconds and never comes here.
//!
//! "Now" is the one a [`Clock`] gave when the command began (or, in tests, any instant), so
//! every line of one report is relative to the same moment.

use whmtoken_core::Clock;

/// Formats times relative to one fixed "now".
#[derive(Clone, Copy, Debug)]
pub struct Dates {
    now: i64,
}

impl Dates {
    /// Relative to the time `clock` says now.
    pub fn new(clock: &dyn Clock) -> Self {
        Self::at(clock.now().timestamp().as_second())
    }

    /// Relative to `now`, in epoch seconds.
    pub fn at(now: i64) -> Self {
        Self { now }
    }

    /// The instant the report is relative to, in epoch seconds.
    pub fn now(self) -> i64 {
        self.now
    }

    /// `2026-12-03 21:19:22 UTC`.
    pub fn utc(self, epoch: i64) -> String {
        whmtoken_core::usage::utc_text(epoch)
    }

    /// `2026-12-03 21:19:22 UTC (3 hours ago)`, or `(in 2 days)` for a time ahead.
    pub fn when(self, epoch: i64) -> String {
        format!("{} ({})", self.utc(epoch), self.relative(epoch))
    }

    /// How far `epoch` is from now, in its largest whole unit: `just now`, `5 minutes ago`,
    /// `3 hours ago`, `12 days ago`, `4 months ago`, `2 years ago`; `in 3 days` ahead.
    pub fn relative(self, epoch: i64) -> String {
        let seconds = self.now.abs_diff(epoch);
        let (count, unit) = match seconds {
            0..60 => return "just now".to_owned(),
            60..3_600 => (seconds / 60, "minute"),
            3_600..86_400 => (seconds / 3_600, "hour"),
            86_400..MONTHS_FROM => (seconds / 86_400, "day"),
            MONTHS_FROM..YEARS_FROM => (seconds / MONTH, "month"),
            _ => (seconds / YEAR, "year"),
        };
        let plural = if count == 1 { "" } else { "s" };
        if epoch > self.now {
            format!("in {count} {unit}{plural}")
        } else {
            format!("{count} {unit}{plural} ago")
        }
    }
}

/// A month and a year, as rough spans: what "4 months ago" means.
const MONTH: u64 = 30 * 86_400;
const YEAR: u64 = 365 * 86_400;
/// Spans are told in days up to 60 days, in months up to two years, then in years.
const MONTHS_FROM: u64 = 60 * 86_400;
const YEARS_FROM: u64 = 2 * YEAR;

/// `1,997`: a count as people read it, with thousands separated.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use whmtoken_core::FixedClock;

    const NOW: i64 = 1_796_332_762; // 2026-12-03 21:19:22 UTC

    #[test]
    fn dates_are_utc_with_how_long_ago_or_ahead() {
        let dates = Dates::new(&FixedClock::at(NOW));
        assert_eq!(dates.now(), NOW);
        assert_eq!(dates.utc(NOW), "2026-12-03 21:19:22 UTC");
        assert_eq!(
            dates.when(NOW - 3 * 86_400),
            "2026-11-30 21:19:22 UTC (3 days ago)"
        );
        assert_eq!(
            dates.when(NOW + 2 * 3_600 + 5),
            "2026-12-03 23:19:27 UTC (in 2 hours)"
        );
        for (then, text) in [
            (NOW, "just now"),
            (NOW - 59, "just now"),
            (NOW + 59, "just now"),
            (NOW - 60, "1 minute ago"),
            (NOW - 7_200, "2 hours ago"),
            (NOW - 86_400, "1 day ago"),
            (NOW - 59 * 86_400, "59 days ago"),
            (NOW - 60 * 86_400, "2 months ago"),
            (NOW + 200 * 86_400, "in 6 months"),
            (NOW - 729 * 86_400, "24 months ago"),
            (NOW - 730 * 86_400, "2 years ago"),
            (1_602_831_655, "6 years ago"),
        ] {
            assert_eq!(dates.relative(then), text, "{then}");
        }
    }

    #[test]
    fn counts_have_thousands_separated() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (1_997, "1,997"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(count(n), text);
        }
    }
}
