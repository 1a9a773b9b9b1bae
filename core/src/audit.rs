//! The audit record written for every token the converter stores.

use jiff::Zoned;

use crate::user::UserName;

/// One `CREATEAPITOKEN` event, as cPanel's `accounting.log` records it (reference 2.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: Zoned,
    pub user: UserName,
    /// The name actually stored (cPanel's script logs a different one; we do not).
    pub token_name: String,
}

impl AuditEvent {
    /// `<Perl scalar localtime>:CREATEAPITOKEN:root:<user>:not-applicable:<token name>`,
    /// without the line feed. The acting user is always root: only root runs the converter.
    pub fn accounting_line(&self) -> String {
        format!(
            "{}:CREATEAPITOKEN:root:{}:not-applicable:{}",
            self.time.strftime("%a %b %e %H:%M:%S %Y"),
            self.user,
            self.token_name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    #[test]
    fn matches_perls_scalar_localtime() {
        let event = AuditEvent {
            time: FixedClock::at(1_433_165_599).now(), // 2015-06-01 13:33:19 UTC
            user: UserName::new("res1").unwrap(),
            token_name: "accesshash-1433165599".into(),
        };
        assert_eq!(
            event.accounting_line(),
            "Mon Jun  1 13:33:19 2015:CREATEAPITOKEN:root:res1:not-applicable:accesshash-1433165599"
        );
    }
}
