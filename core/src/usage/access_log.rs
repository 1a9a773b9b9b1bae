//! One line of cpsrvd's `access_log`:
//!
//! ```text
//! IP PROXY USER [MM/DD/YYYY:HH:MM:SS -0000] "METHOD PATH HTTP/x" STATUS SIZE "REFERER" "USER-AGENT" "AUTH" "X-Forwarded-For: …"|"-" PORT
//! ```
//!
//! The request, the referer, the user agent and the forwarded-for value are chosen by the
//! client and may hold quotes, so the line is read from both ends: the address, proxy flag,
//! user and time from the start (cpsrvd's own), the port, the forwarded-for field and the
//! authentication letter from the end, and what is left in the middle must split into the
//! request, the status and size, the referer and the user agent in exactly one way. A line
//! with more than one reading (a user agent holding `" "a" "-" 2087`, a forwarded-for
//! value holding quotes) is not parsed: it is counted as unparsed, never guessed.

use std::net::IpAddr;

use memchr::memmem;

use super::time::access_log_time;

/// How the request authenticated: cpsrvd's one-letter field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `a`: the `Authorization: WHM user:…` header (an access hash or an API token).
    AccessKey,
    /// `b`: HTTP basic (a password).
    Basic,
    /// `s`: a session (a browser logged in).
    Session,
    /// `o`: OpenID Connect.
    OpenId,
    /// `-`: none.
    None,
}

impl Auth {
    fn from_letter(letter: u8) -> Option<Self> {
        Some(match letter {
            b'a' => Self::AccessKey,
            b'b' => Self::Basic,
            b's' => Self::Session,
            b'o' => Self::OpenId,
            b'-' => Self::None,
            _ => return None,
        })
    }
}

/// What a line is, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A request with the WHM header that the server accepted (status below 400): an access
    /// hash's or a token's use, told apart by `api_tokens_log`.
    AccessKey,
    /// A request with the WHM header that the server refused (status 400 or more).
    RefusedAccessKey,
    /// A browser session, a password, OpenID Connect, or no credential at all.
    Other,
}

/// cPanel's own ports (cpaneld, webmail): a request there is not WHM's.
const CPANEL_PORTS: [u16; 4] = [2082, 2083, 2095, 2096];

/// One parsed line; every field borrowed from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLine<'a> {
    pub ip: &'a [u8],
    /// `PROXY` was `proxy`: the request came through cPanel's proxy (on 80 or 443).
    pub proxied: bool,
    /// `-` when none.
    pub user: &'a [u8],
    /// Epoch seconds, UTC.
    pub time: i64,
    /// The whole request line, query string included: compared, never kept or shown.
    pub request: &'a [u8],
    pub status: u16,
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    pub auth: Auth,
    /// The value of the `X-Forwarded-For: …` field, when there is one.
    pub forwarded_for: Option<&'a [u8]>,
    pub port: u16,
}

impl AccessLine<'_> {
    pub fn class(&self) -> Class {
        match self.auth {
            Auth::AccessKey if CPANEL_PORTS.contains(&self.port) => Class::Other,
            Auth::AccessKey if self.status >= 400 => Class::RefusedAccessKey,
            Auth::AccessKey => Class::AccessKey,
            _ => Class::Other,
        }
    }

    /// Where the request came from: through cPanel's proxy, the last address of
    /// `X-Forwarded-For` (the one the proxy added; those before it are the client's to
    /// choose), when it is an address; else the connection's.
    pub fn source(&self) -> &[u8] {
        if self.proxied
            && let Some(forwarded) = self.forwarded_for
        {
            let last = forwarded
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if std::str::from_utf8(last).is_ok_and(|s| s.parse::<IpAddr>().is_ok()) {
                return last;
            }
        }
        self.ip
    }
}

const FORWARDED: &[u8] = b" \"X-Forwarded-For: ";

/// Reads one line, or `None` when it does not parse or has more than one reading.
pub fn parse(line: &[u8]) -> Option<AccessLine<'_>> {
    let (ip, rest) = split_space(line)?;
    let (proxy, rest) = split_space(rest)?;
    let (user, rest) = split_space(rest)?;
    if !is_address(ip) || user.contains(&b'"') {
        return None;
    }
    let proxied = match proxy {
        b"-" => false,
        b"proxy" => true,
        _ => return None,
    };
    let rest = rest.strip_prefix(b"[")?;
    let time = access_log_time(rest.get(..25)?)?;
    let middle = rest.get(25..)?.strip_prefix(b"] ")?;
    let (middle, tail) = split_tail(middle)?;
    let (request, status, referer, user_agent) = split_middle(middle)?;
    Some(AccessLine {
        ip,
        proxied,
        user,
        time,
        request,
        status,
        referer,
        user_agent,
        auth: tail.auth,
        forwarded_for: tail.forwarded_for,
        port: tail.port,
    })
}

/// The fields after the user agent, read from the end.
struct Tail<'a> {
    auth: Auth,
    forwarded_for: Option<&'a [u8]>,
    port: u16,
}

/// `(everything up to the user agent's closing quote, the fields after it)`.
fn split_tail(text: &[u8]) -> Option<(&[u8], Tail<'_>)> {
    let space = memchr::memrchr(b' ', text)?;
    let port = number(&text[space + 1..])?;
    let port = u16::try_from(port).ok()?;
    let rest = &text[..space];
    let (rest, forwarded_for) = if let Some(rest) = rest.strip_suffix(b" \"-\"") {
        (rest, None)
    } else {
        let start = memmem::rfind(rest, FORWARDED)?;
        let value = rest[start + FORWARDED.len()..].strip_suffix(b"\"")?;
        if value.contains(&b'"') {
            return None;
        }
        (&rest[..start], Some(value))
    };
    let [.., b' ', b'"', letter, b'"'] = rest else {
        return None;
    };
    let auth = Auth::from_letter(*letter)?;
    Some((
        &rest[..rest.len() - 4],
        Tail {
            auth,
            forwarded_for,
            port,
        },
    ))
}

/// The request, the status, the referer and the user agent.
type Middle<'a> = (&'a [u8], u16, &'a [u8], &'a [u8]);

/// `"REQUEST" STATUS SIZE "REFERER" "USER-AGENT"`, which must split in exactly one way:
/// one `" STATUS SIZE "` and, after it, one `" "` between the referer and the user agent.
fn split_middle(middle: &[u8]) -> Option<Middle<'_>> {
    if middle.len() < 2 || middle[0] != b'"' || middle[middle.len() - 1] != b'"' {
        return None;
    }
    let mut found = None;
    for quote in memchr::memchr_iter(b'"', &middle[1..]).map(|at| at + 1) {
        if let Some(candidate) = status_at(middle, quote) {
            if found.is_some() {
                return None;
            }
            found = Some((quote, candidate));
        }
    }
    let (quote, (status, after)) = found?;
    let quoted = &middle[after..];
    let mut separators = memmem::find_iter(quoted, b"\" \"");
    let separator = separators.next()?;
    if separators.next().is_some() {
        return None;
    }
    let referer = &quoted[1..separator];
    let user_agent = &quoted[separator + 3..quoted.len() - 1];
    Some((&middle[1..quote], status, referer, user_agent))
}

/// At `quote`: `" DDD SIZE "` (SIZE digits or `-`)? Then the status and where the
/// referer's opening quote is.
fn status_at(middle: &[u8], quote: usize) -> Option<(u16, usize)> {
    let after = middle.get(quote + 1..)?;
    let after = after.strip_prefix(b" ")?;
    let status = after.get(..3)?;
    if after.get(3) != Some(&b' ') {
        return None;
    }
    let status = u16::try_from(number(status)?).ok()?;
    let size_and_more = &after[4..];
    let size_len = memchr::memchr(b' ', size_and_more)?;
    let size = &size_and_more[..size_len];
    if size != b"-" && number(size).is_none() {
        return None;
    }
    if size_and_more.get(size_len + 1) != Some(&b'"') {
        return None;
    }
    Some((status, quote + 1 + 1 + 4 + size_len + 1))
}

/// Up to the first space, and what follows it.
fn split_space(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = memchr::memchr(b' ', text)?;
    Some((&text[..space], &text[space + 1..]))
}

/// 1 to 9 ASCII digits.
fn number(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    text.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// Looks like an IPv4 or IPv6 address (checked loosely: the characters).
fn is_address(text: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= 45
        && text
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
}

#[cfg(test)]
mod tests;
