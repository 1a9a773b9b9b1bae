//! Least-privilege restrictions for a newly written token: ACLs, an IP allow-list and an
//! expiry, validated and normalised as cPanel's writer stores them (reference 2.2, 2.4).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::acl::{ALL, BUILTIN_ACLS};

/// At most this many allow-list entries (cPanel's limit).
pub const MAX_ALLOW_IPS: usize = 100;

/// The units a span of time until expiry may take, as messages list them.
pub const EXPIRY_UNITS: &str = "m (minutes), h (hours), d (days) or w (weeks)";

/// Why restrictions cannot be put on a token. The messages speak of values, not of the
/// command-line options they came from: the command line adds those.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestrictionError {
    #[error(
        "“{}”: not an ACL name (lower-case letters, digits, - and _)",
        .0.escape_debug()
    )]
    InvalidAclName(String),
    #[error("“{}”: ACL names are lower case; did you mean “{}”?", .given.escape_debug(), .lower.escape_debug())]
    AclNotLowerCase { given: String, lower: String },
    #[error("“{}”: no such ACL", .0.escape_debug())]
    UnknownAcl(String),
    #[error("at least one ACL name is needed")]
    NoAclName,
    #[error("{given} allow-list entries given; at most {MAX_ALLOW_IPS} are allowed")]
    TooManyAllowIps { given: usize },
    #[error("“{}”: not an IP address or CIDR range", .0.escape_debug())]
    NotAnAddress(String),
    #[error("{given}: host bits are set in the range; did you mean {network}?")]
    HostBitsSet { given: String, network: String },
    #[error(
        "{}: expected epoch seconds, or a span from now: a whole number and a unit, {EXPIRY_UNITS}, such as 90d",
        .0.escape_debug()
    )]
    BadExpiry(String),
    #[error(
        "{}: “{}” is not a unit; a span takes {EXPIRY_UNITS}, such as 90d",
        .given.escape_debug(),
        .unit.escape_debug()
    )]
    UnknownExpiryUnit { given: String, unit: String },
    #[error("{}: a span counts forward from now and cannot be negative; such as 90d", .0.escape_debug())]
    NegativeExpiry(String),
    #[error("{}: a span of zero is not in the future", .0.escape_debug())]
    ZeroExpiry(String),
    #[error(
        "{given}: read as epoch seconds, that is {}, which is not in the future; for a span from now add a unit, such as 90d",
        utc(*.at)
    )]
    ExpiryNotInFuture { given: String, at: i64, now: i64 },
    #[error("{}: too far in the future", .0.escape_debug())]
    ExpiryTooFar(String),
}

/// An epoch time as people read it (`2023-11-14T22:13:20Z`).
fn utc(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch).map_or_else(|_| format!("{epoch} s"), |t| t.to_string())
}

/// Restrictions put on a token the converter writes. The default is full access, any
/// address, no expiry: what cPanel's script always writes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Restrictions {
    /// Sorted and de-duplicated; `None` is full access.
    pub acls: Option<Vec<String>>,
    /// Normalised allow-list; `None` is any address.
    pub whitelist_ips: Option<Vec<String>>,
    /// Epoch seconds.
    pub expires_at: Option<i64>,
}

impl Restrictions {
    /// ACL names as given on the command line (each may be a comma-separated list): each
    /// one of WHM's built-in ACLs ([`BUILTIN_ACLS`]), or `all`, which means full access, as
    /// cPanel treats it.
    pub fn with_acls<S: AsRef<str>>(mut self, given: &[S]) -> Result<Self, RestrictionError> {
        let names: BTreeSet<String> = given
            .iter()
            .flat_map(|g| g.as_ref().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = names.iter().find(|n| !is_acl_name(n)) {
            let lower = bad.to_ascii_lowercase();
            return Err(if is_known_acl(&lower) {
                RestrictionError::AclNotLowerCase {
                    given: bad.clone(),
                    lower,
                }
            } else if is_acl_name(&lower) {
                RestrictionError::UnknownAcl(bad.clone())
            } else {
                RestrictionError::InvalidAclName(bad.clone())
            });
        }
        if let Some(unknown) = names.iter().find(|n| !is_known_acl(n)) {
            return Err(RestrictionError::UnknownAcl(unknown.clone()));
        }
        if given.is_empty() {
            return Ok(self);
        }
        if names.is_empty() {
            return Err(RestrictionError::NoAclName);
        }
        self.acls = (!names.contains(ALL)).then(|| names.into_iter().collect());
        Ok(self)
    }

    /// Addresses and CIDR ranges, normalised: de-duplicated, IPv4 before IPv6, in address
    /// order, single-host `/32` and `/128` suffixes dropped, IPv6 written fully expanded.
    pub fn with_allow_ips<S: AsRef<str>>(mut self, given: &[S]) -> Result<Self, RestrictionError> {
        if given.is_empty() {
            return Ok(self);
        }
        if given.len() > MAX_ALLOW_IPS {
            return Err(RestrictionError::TooManyAllowIps { given: given.len() });
        }
        let nets: BTreeSet<(u8, u128, u8)> = given
            .iter()
            .map(|g| parse_net(g.as_ref()))
            .collect::<Result<_, _>>()?;
        self.whitelist_ips = Some(nets.into_iter().map(format_net).collect());
        Ok(self)
    }

    /// An expiry as epoch seconds or a span from `now`: a whole number and a unit, `m`
    /// (minutes), `h` (hours), `d` (days) or `w` (weeks), such as `90d`. It must lie in the
    /// future.
    pub fn with_expiry(mut self, given: &str, now: i64) -> Result<Self, RestrictionError> {
        self.expires_at = Some(parse_expiry(given, now)?);
        Ok(self)
    }

    pub fn is_full_access(&self) -> bool {
        self.acls.is_none()
    }
}

fn is_known_acl(name: &str) -> bool {
    name == ALL || BUILTIN_ACLS.contains(&name)
}

fn is_acl_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_expiry(given: &str, now: i64) -> Result<i64, RestrictionError> {
    let text = given.trim();
    let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
    let unit = text[digits.len()..].trim_start();
    let count = digits.strip_prefix(['-', '+']).unwrap_or(digits);
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RestrictionError::BadExpiry(given.to_owned()));
    }
    if digits.starts_with('-') {
        return Err(RestrictionError::NegativeExpiry(given.to_owned()));
    }
    let too_far = || RestrictionError::ExpiryTooFar(given.to_owned());
    let count: i64 = count.parse().map_err(|_| too_far())?;
    if unit.is_empty() {
        return if count > now {
            Ok(count)
        } else {
            Err(RestrictionError::ExpiryNotInFuture {
                given: given.to_owned(),
                at: count,
                now,
            })
        };
    }
    let seconds_per_unit: i64 = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(RestrictionError::UnknownExpiryUnit {
                given: given.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    if count == 0 {
        return Err(RestrictionError::ZeroExpiry(given.to_owned()));
    }
    count
        .checked_mul(seconds_per_unit)
        .and_then(|span| now.checked_add(span))
        .ok_or_else(too_far)
}

/// (family order, network address, prefix length): sorts IPv4 first, then by address.
fn parse_net(given: &str) -> Result<(u8, u128, u8), RestrictionError> {
    let text = given.trim();
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(
            text.parse::<IpAddr>()
                .map_err(|_| RestrictionError::NotAnAddress(text.to_owned()))?,
        ),
    };
    if net.network() != net.addr() {
        return Err(RestrictionError::HostBitsSet {
            given: text.to_owned(),
            network: net.trunc().to_string(),
        });
    }
    Ok(match net {
        IpNet::V4(v4) => (4, u32::from(v4.addr()).into(), v4.prefix_len()),
        IpNet::V6(v6) => (6, u128::from(v6.addr()), v6.prefix_len()),
    })
}

fn format_net((family, addr, prefix): (u8, u128, u8)) -> String {
    let (text, host_prefix) = if family == 4 {
        let v4 = std::net::Ipv4Addr::from(u32::try_from(addr).expect("IPv4 fits in 32 bits"));
        (v4.to_string(), 32)
    } else {
        let groups = std::net::Ipv6Addr::from(addr).segments();
        let expanded: Vec<String> = groups.iter().map(|g| format!("{g:04x}")).collect();
        (expanded.join(":"), 128)
    };
    if prefix == host_prefix {
        text
    } else {
        format!("{text}/{prefix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_are_sorted_deduplicated_and_all_means_full_access() {
        let r = Restrictions::default()
            .with_acls(&["list-accts,clustering", "list-accts"])
            .unwrap();
        assert_eq!(r.acls, Some(vec!["clustering".into(), "list-accts".into()]));
        let all = Restrictions::default().with_acls(&["all"]).unwrap();
        assert!(all.is_full_access());
        assert!(Restrictions::default().with_acls(&["Bad ACL"]).is_err());
        assert!(Restrictions::default().with_acls(&[","]).is_err());
    }

    #[test]
    fn allow_list_is_normalised_like_cpanels_writer() {
        let r = Restrictions::default()
            .with_allow_ips(&[
                "2001:db8::1",
                "192.0.2.1/32",
                "10.0.0.0/8",
                "::1/128",
                "192.0.2.1",
                "2001:db8::/32",
            ])
            .unwrap();
        assert_eq!(
            r.whitelist_ips.unwrap(),
            [
                "10.0.0.0/8",
                "192.0.2.1",
                "0000:0000:0000:0000:0000:0000:0000:0001",
                "2001:0db8:0000:0000:0000:0000:0000:0000/32",
                "2001:0db8:0000:0000:0000:0000:0000:0001",
            ]
        );
    }

    #[test]
    fn allow_list_rejects_bad_input() {
        for bad in ["10.0.0.0/33", "300.1.1.1", "example.com", "10.1.2.3/8", ""] {
            assert!(
                Restrictions::default().with_allow_ips(&[bad]).is_err(),
                "{bad}"
            );
        }
        let many: Vec<String> = (0..101).map(|i| format!("10.0.0.{i}")).collect();
        let err = Restrictions::default().with_allow_ips(&many).unwrap_err();
        assert_eq!(err, RestrictionError::TooManyAllowIps { given: 101 });
        let hundred = &many[..100];
        assert!(Restrictions::default().with_allow_ips(hundred).is_ok());
    }

    #[test]
    fn expiry_takes_epochs_and_spans_in_the_future() {
        let now = 1_700_000_000;
        let r = |s| {
            Restrictions::default()
                .with_expiry(s, now)
                .map(|r| r.expires_at.unwrap())
        };
        assert_eq!(r("90d"), Ok(now + 90 * 86_400));
        assert_eq!(r("12h"), Ok(now + 12 * 3600));
        assert_eq!(r("30m"), Ok(now + 30 * 60));
        assert_eq!(r("2w"), Ok(now + 14 * 86_400));
        assert_eq!(r("1900000000"), Ok(1_900_000_000));
        for bad in [
            "1600000000",
            "0d",
            "soon",
            "-5d",
            "99999999999999999999d",
            "1y",
            "45s",
        ] {
            assert!(r(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_mistakes_say_what_was_meant() {
        let message = |s| {
            Restrictions::default()
                .with_expiry(s, 1_700_000_000)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("5"),
            "5: read as epoch seconds, that is 1970-01-01T00:00:05Z, which is not in the future; \
             for a span from now add a unit, such as 90d"
        );
        assert_eq!(
            message("1y"),
            "1y: “y” is not a unit; a span takes m (minutes), h (hours), d (days) or w (weeks), such as 90d"
        );
        assert_eq!(
            message("-5d"),
            "-5d: a span counts forward from now and cannot be negative; such as 90d"
        );
        assert_eq!(
            message("soon"),
            "soon: expected epoch seconds, or a span from now: a whole number and a unit, \
             m (minutes), h (hours), d (days) or w (weeks), such as 90d"
        );
        assert_eq!(message("0d"), "0d: a span of zero is not in the future");
        assert_eq!(
            message("99999999999999999999d"),
            "99999999999999999999d: too far in the future"
        );
    }

    #[test]
    fn acls_must_be_builtin_and_lower_case() {
        let message = |s: &str| {
            Restrictions::default()
                .with_acls(&[s])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(message("list-accts,bogus"), "“bogus”: no such ACL");
        assert_eq!(message("BOGUS"), "“BOGUS”: no such ACL");
        assert_eq!(
            message("List-Accts"),
            "“List-Accts”: ACL names are lower case; did you mean “list-accts”?"
        );
        assert_eq!(
            message("ALL"),
            "“ALL”: ACL names are lower case; did you mean “all”?"
        );
        assert_eq!(
            message("Bad ACL"),
            "“Bad ACL”: not an ACL name (lower-case letters, digits, - and _)"
        );
        for name in crate::acl::BUILTIN_ACLS.iter().chain([&ALL]) {
            assert!(Restrictions::default().with_acls(&[name]).is_ok(), "{name}");
        }
    }
}
