//! One line of cpsrvd's `api_tokens_log`, written for every request an API token
//! authenticated:
//!
//! ```text
//! [2017-02-07 19:07:13 -0600] info [whostmgrd] HTTP Status: ['200'], User: ['bob'], Token Name: ['billing'], Request: ['GET /json-api/listaccts?api.version=1 HTTP/1.0']
//! ```
//!
//! Newer versions add `, Host: ['198.51.100.7']`. The time is local, with its offset. The
//! fields before the request are cpsrvd's own and are checked strictly; the request is the
//! client's, so the host is read from the end, and must be an address.

use std::net::IpAddr;

use memchr::memmem;

use super::time::api_tokens_log_time;

/// One parsed line; the request borrowed from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLine<'a> {
    /// Epoch seconds, UTC.
    pub time: i64,
    /// `whostmgrd` for WHM's tokens (`cpaneld` for cPanel users' own).
    pub service: &'a [u8],
    pub status: u16,
    pub user: &'a [u8],
    pub token: &'a [u8],
    /// The whole request line, query string included: compared, never kept or shown.
    pub request: &'a [u8],
    pub host: Option<IpAddr>,
}

impl TokenLine<'_> {
    /// A WHM token's line (not a cPanel user's).
    pub fn is_whm(&self) -> bool {
        self.service == b"whostmgrd"
    }
}

const HOST: &[u8] = b"'], Host: ['";

/// Reads one line, or `None` when it does not parse.
pub fn parse(line: &[u8]) -> Option<TokenLine<'_>> {
    let rest = line.strip_prefix(b"[")?;
    let time = api_tokens_log_time(rest.get(..25)?)?;
    let rest = rest.get(25..)?.strip_prefix(b"] ")?;
    let level_end = memchr::memchr(b' ', rest)?;
    if !rest[..level_end].iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    let rest = rest[level_end + 1..].strip_prefix(b"[")?;
    let service_end = memchr::memchr(b']', rest)?;
    let service = &rest[..service_end];
    if service.is_empty() || !service.iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    let rest = &rest[service_end + 1..];
    let (status, rest) = field(rest, b" HTTP Status: ['")?;
    let status = status_code(status)?;
    let (user, rest) = field(rest, b", User: ['")?;
    let (token, rest) = field(rest, b", Token Name: ['")?;
    if !is_user(user) || !is_token_name(token) {
        return None;
    }
    let rest = rest.strip_prefix(b", Request: ['")?;
    let (request, host) = match memmem::rfind(rest, HOST) {
        Some(at) => {
            let host = rest[at + HOST.len()..].strip_suffix(b"']")?;
            let host = std::str::from_utf8(host).ok()?.parse().ok()?;
            (&rest[..at], Some(host))
        }
        None => (rest.strip_suffix(b"']")?, None),
    };
    Some(TokenLine {
        time,
        service,
        status,
        user,
        token,
        request,
        host,
    })
}

/// `PREFIX value']` at the start of `text`: the value, and what follows its `']`.
fn field<'a>(text: &'a [u8], prefix: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let rest = text.strip_prefix(prefix)?;
    let end = memmem::find(rest, b"']")?;
    Some((&rest[..end], &rest[end + 2..]))
}

fn status_code(text: &[u8]) -> Option<u16> {
    match text {
        [a, b, c] if text.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// A user name as `UserName` accepts it: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with
/// `.` or `-`.
fn is_user(text: &[u8]) -> bool {
    (1..=64).contains(&text.len())
        && !matches!(text[0], b'.' | b'-')
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A token name as WHM accepts it: 1 to 50 of `[A-Za-z0-9_-]`.
fn is_token_name(text: &[u8]) -> bool {
    (1..=50).contains(&text.len())
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"[2017-02-07 19:07:13 -0600] info [whostmgrd] HTTP Status: ['200'], User: ['bob'], Token Name: ['billing'], Request: ['GET /json-api/listaccts?api.version=1 HTTP/1.0']";

    #[test]
    fn cpanels_sample_line_parses_with_its_time_in_utc() {
        let parsed = parse(SAMPLE).unwrap();
        assert_eq!(parsed.time, 1_486_516_033);
        assert!(parsed.is_whm());
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.user, b"bob");
        assert_eq!(parsed.token, b"billing");
        assert_eq!(
            parsed.request,
            b"GET /json-api/listaccts?api.version=1 HTTP/1.0"
        );
        assert_eq!(parsed.host, None);
    }

    #[test]
    fn the_host_of_newer_versions_is_read_from_the_end() {
        let mut line = SAMPLE.to_vec();
        line.extend(b", Host: ['198.51.100.7']");
        assert_eq!(parse(&line).unwrap().host, Some([198, 51, 100, 7].into()));
        // A request that holds the host's marker: the last one is the host.
        let forged = String::from_utf8(line)
            .unwrap()
            .replace("listaccts?", "x'], Host: ['10.0.0.1?");
        let parsed = parse(forged.as_bytes()).unwrap();
        assert_eq!(parsed.host, Some([198, 51, 100, 7].into()));
        assert_eq!(parsed.user, b"bob");
        assert_eq!(parsed.token, b"billing");
        // A host that is not an address: not parsed.
        let mut bad = SAMPLE.to_vec();
        bad.extend(b", Host: ['evil']");
        assert!(parse(&bad).is_none());
    }

    #[test]
    fn cpanel_users_tokens_and_malformed_lines_are_told_apart() {
        let cpanel = String::from_utf8(SAMPLE.to_vec())
            .unwrap()
            .replace("whostmgrd", "cpaneld");
        assert!(!parse(cpanel.as_bytes()).unwrap().is_whm());
        let text = String::from_utf8(SAMPLE.to_vec()).unwrap();
        for bad in [
            text.replace("['200']", "['20']"),
            text.replace("['bob']", "['b ob']"),
            text.replace("['billing']", "['bill'ing']"),
            text.replace("-0600", "CST"),
            text.replace(" info ", " "),
            text[..text.len() - 2].to_owned(),
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
