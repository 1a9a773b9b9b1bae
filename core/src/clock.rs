//! Where the pipeline gets the time from, so tests can fix it.

use jiff::Zoned;
use jiff::tz::TimeZone;

/// A source of the current time in the server's local time zone.
pub trait Clock: Send + Sync {
    fn now(&self) -> Zoned;
}

/// A clock that always says the same instant (tests, reproducible fake servers).
#[derive(Clone, Debug)]
pub struct FixedClock(Zoned);

impl FixedClock {
    /// `epoch` seconds, shown in UTC.
    pub fn at(epoch: i64) -> Self {
        let ts = jiff::Timestamp::from_second(epoch).expect("epoch within jiff's range");
        Self(ts.to_zoned(TimeZone::UTC))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Zoned {
        self.0.clone()
    }
}
