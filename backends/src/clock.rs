//! The real clock: what the programs hand to core, which never reads the time itself.

use jiff::Zoned;
use whmtoken_core::Clock;

/// Now, in the server's local time zone (as accounting lines are written).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Zoned {
        Zoned::now()
    }
}
