//! Finding a short needle in a log line: by its first byte with `memchr`, then comparing,
//! without building a substring searcher for every line (which costs more than the search
//! in lines of a few hundred bytes).

/// The first position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    memchr::memchr_iter(first, haystack).find(|&at| haystack[at..].starts_with(needle))
}

/// The last position of `needle` in `haystack`.
pub(crate) fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    memchr::memrchr_iter(first, haystack).find(|&at| haystack[at..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_are_found_from_either_end() {
        assert_eq!(find(b"a']b']", b"']"), Some(1));
        assert_eq!(rfind(b"a']b']", b"']"), Some(4));
        assert_eq!(find(b"abc", b"x"), None);
        assert_eq!(rfind(b"ab", b"abc"), None);
        assert_eq!(find(b"abc", b""), None);
    }
}
