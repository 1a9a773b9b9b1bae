//! The two time formats of cPanel's logs, read into epoch seconds (UTC) without a time-zone
//! database and without allocating: each line carries its own offset from UTC, so that a
//! line written on either side of a daylight-saving change is placed right.
//!
//! - `access_log`: `MM/DD/YYYY:HH:MM:SS -0000` (cpsrvd writes UTC);
//! - `api_tokens_log`: `YYYY-MM-DD HH:MM:SS -0600` (local time, with its offset).

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian), Howard Hinnant's
/// `days_from_civil`.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a count of days from 1970-01-01: (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `n` ASCII digits as a number.
fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A checked local date and time plus `±HHMM`, as epoch seconds in UTC.
fn epoch(
    (year, month, day): (u32, u32, u32),
    (hour, minute, second): (u32, u32, u32),
    offset: &[u8],
) -> Option<i64> {
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let local =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(local - offset_seconds(offset)?)
}

/// `MM/DD/YYYY:HH:MM:SS ±HHMM` (exactly 25 bytes), as in `access_log`.
#[cfg(test)]
pub(crate) fn access_log_time(text: &[u8]) -> Option<i64> {
    access_log_time_with(text, &mut Days::default())
}

/// The last date read and its day number: lines of one day share it, so that a log's
/// dates are worked out once a day, not once a line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Days {
    date: [u8; 10],
    days: Option<i64>,
}

/// [`access_log_time`], remembering the last date in `days`.
pub(crate) fn access_log_time_with(text: &[u8], days: &mut Days) -> Option<i64> {
    if text.len() != 25
        || text[2] != b'/'
        || text[5] != b'/'
        || text[10] != b':'
        || text[13] != b':'
        || text[16] != b':'
        || text[19] != b' '
    {
        return None;
    }
    let day = match days.days {
        Some(day) if days.date == text[..10] => day,
        _ => {
            let (year, month, day) = (
                digits(&text[6..10])?,
                digits(&text[0..2])?,
                digits(&text[3..5])?,
            );
            let year = i64::from(year);
            if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
                return None;
            }
            let number = days_from_civil(year, month, day);
            days.date.copy_from_slice(&text[..10]);
            days.days = Some(number);
            number
        }
    };
    let (hour, minute, second) = (
        digits(&text[11..13])?,
        digits(&text[14..16])?,
        digits(&text[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = offset_seconds(&text[20..])?;
    Some(day * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset)
}

/// `±HHMM` in seconds.
fn offset_seconds(offset: &[u8]) -> Option<i64> {
    let [sign, h1, h2, m1, m2] = offset else {
        return None;
    };
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits(&[*h1, *h2])?;
    let minutes = digits(&[*m1, *m2])?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 3600 + minutes * 60))
}

/// `YYYY-MM-DD HH:MM:SS ±HHMM` (exactly 25 bytes), as in `api_tokens_log`.
pub(crate) fn api_tokens_log_time(text: &[u8]) -> Option<i64> {
    if text.len() != 25
        || text[4] != b'-'
        || text[7] != b'-'
        || text[10] != b' '
        || text[13] != b':'
        || text[16] != b':'
        || text[19] != b' '
    {
        return None;
    }
    let date = (
        digits(&text[0..4])?,
        digits(&text[5..7])?,
        digits(&text[8..10])?,
    );
    let time = (
        digits(&text[11..13])?,
        digits(&text[14..16])?,
        digits(&text[17..19])?,
    );
    epoch(date, time, &text[20..])
}

/// Epoch seconds as `2026-12-03 21:19:22 UTC`.
pub fn utc_text(epoch: i64) -> String {
    let (year, month, day) = civil_from_days(epoch.div_euclid(86_400));
    let second_of_day = epoch.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_against_jiff() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let date = jiff::civil::date(y as i16, m as i8, d as i8);
            let jiff_days = date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second()
                / 86_400;
            assert_eq!(jiff_days, days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn the_access_logs_time_is_read_with_its_offset() {
        assert_eq!(
            access_log_time(b"08/16/2024:17:43:06 -0000"),
            Some(1_723_830_186)
        );
        assert_eq!(access_log_time(b"08/16/2024:17:43:06 -0000 "), None);
        assert_eq!(access_log_time(b"08/16/2024:17:43:06 -000"), None);
        assert_eq!(
            access_log_time(b"08/16/2024:19:43:06 +0200"),
            Some(1_723_830_186)
        );
        for bad in [
            &b"13/16/2024:17:43:06 +0000"[..],
            b"02/30/2024:17:43:06 +0000",
            b"08/16/2024:24:43:06 +0000",
            b"08/16/2024:17:43:06 *0000",
            b"08/16/2024:17:43:06 +0a00",
            b"08-16/2024:17:43:06 +0000",
        ] {
            assert_eq!(
                access_log_time(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(access_log_time(b"02/29/2024:00:00:00 +0000").is_some());
    }

    #[test]
    fn the_token_logs_local_time_becomes_utc_across_a_dst_change() {
        // 2026-11-01 in Chicago: 01:30 happens twice, CDT (-0500) then CST (-0600).
        let before = api_tokens_log_time(b"2026-11-01 01:30:00 -0500").unwrap();
        let after = api_tokens_log_time(b"2026-11-01 01:30:00 -0600").unwrap();
        assert_eq!(after - before, 3600);
        assert_eq!(utc_text(before), "2026-11-01 06:30:00 UTC");
        assert_eq!(
            api_tokens_log_time(b"2017-02-07 19:07:13 -0600"),
            api_tokens_log_time(b"2017-02-08 01:07:13 +0000")
        );
        assert_eq!(api_tokens_log_time(b"2017-02-07T19:07:13 -0600"), None);
    }

    #[test]
    fn times_are_shown_as_dates() {
        assert_eq!(utc_text(1_796_332_762), "2026-12-03 21:19:22 UTC");
    }
}
