//! A token file's text, read without rewriting what the converter does not change.
//!
//! The document is split into its members as raw text (`serde_json`'s [`RawValue`]): the
//! top-level keys and values, and the keys and entries of `tokens`. Only the entries are
//! parsed further, one at a time, into the [`TokenSet`] an import decides against. Writing
//! puts the raw text back verbatim and adds or replaces the one entry written: every
//! other entry and every unknown key keeps its exact text (numbers such as
//! `123456789012345678901234567890` or `1.0e2` included) and its place. Holding raw text
//! instead of a tree of values also keeps the memory a large file needs close to its size.
//!
//! A document with a key repeated within one object, at any depth, is refused as corrupt:
//! which of the values counts is anybody's guess, and writing would silently drop one.
//! That check is a pass of its own over the bytes that builds no tree.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};

use camino::Utf8Path;
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use whmtoken_core::{DocumentError, TokenEntry, TokenHash, TokenSet};

use crate::safe_fs::corrupt;

/// One `"key": value` member, both as written in the file (the key with its quotes).
type Member<'a> = (&'a RawValue, &'a RawValue);

/// The one change a rewrite makes to a token file.
#[derive(Debug)]
pub(crate) enum Edit {
    /// The entry stored under the key (an import).
    Put(TokenHash, TokenEntry),
    /// The entry under the key removed (a revoke).
    Remove(TokenHash),
}

/// A parsed token file that still holds its own text.
#[derive(Debug)]
pub(crate) struct Document<'a> {
    /// The top-level members in order; empty for an empty or `null` document.
    top: Vec<Member<'a>>,
    /// Which of `top` is `tokens`, when there is one.
    tokens_at: Option<usize>,
    /// The members of `tokens`, in the order of `set`.
    tokens: Vec<Member<'a>>,
    /// The entries, parsed.
    pub(crate) set: TokenSet,
}

impl<'a> Document<'a> {
    /// Reads `bytes` (the contents of the token file at `path`). Errors name the file and
    /// say what is wrong, never what a value holds.
    pub(crate) fn parse(path: &Utf8Path, bytes: &'a [u8]) -> Result<Self, crate::BackendError> {
        Self::parse_keeping(path, bytes, None)
    }

    /// [`parse`](Self::parse), keeping whole only the entry under `whole` when it is given
    /// (an import's key): every entry is checked, but the others keep their name, all that
    /// an import's decision reads of them. A file of many entries then takes a fraction of
    /// the memory.
    pub(crate) fn parse_keeping(
        path: &Utf8Path,
        bytes: &'a [u8],
        keep_whole: Option<&TokenHash>,
    ) -> Result<Self, crate::BackendError> {
        let empty = Self {
            top: Vec::new(),
            tokens_at: None,
            tokens: Vec::new(),
            set: TokenSet::default(),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(empty);
        }
        check_unique_keys(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => corrupt(path, e.to_string()),
            _ => corrupt(path, format!("not valid JSON ({e})")),
        })?;
        let invalid = |e: serde_json::Error| corrupt(path, format!("not valid JSON ({e})"));
        let document = |e: DocumentError| corrupt(path, e.to_string());
        let whole: &RawValue = serde_json::from_slice(bytes).map_err(invalid)?;
        let top = match kind_of(whole) {
            "null" => return Ok(empty), // JSON::XS can write `null`: no tokens
            "an object" => members(whole).map_err(invalid)?,
            other => return Err(document(DocumentError::NotAnObject(other))),
        };
        let mut tokens_at = None;
        for (at, (key, _)) in top.iter().enumerate() {
            if key_text(key).map_err(invalid)? == "tokens" {
                tokens_at = Some(at);
            }
        }
        let tokens = match tokens_at.map(|at| top[at].1) {
            None => Vec::new(),
            Some(raw) => match kind_of(raw) {
                "null" => Vec::new(),
                "an object" => members(raw).map_err(invalid)?,
                other => return Err(document(DocumentError::TokensNotAnObject(other))),
            },
        };
        let mut entries = Vec::with_capacity(tokens.len());
        for (key, entry) in &tokens {
            let hash = TokenHash::parse(&key_text(key).map_err(invalid)?)
                .map_err(|e| document(DocumentError::BadKey(e)))?;
            let value: serde_json::Value = serde_json::from_str(entry.get()).map_err(invalid)?;
            let entry = TokenEntry::from_json(&value).map_err(|error| {
                document(DocumentError::BadEntry {
                    prefix: hash.prefix().to_owned(),
                    error,
                })
            })?;
            let entry = match keep_whole {
                Some(key) if *key != hash => TokenEntry {
                    name: entry.name,
                    ..TokenEntry::default()
                },
                _ => entry,
            };
            entries.push((hash, entry));
        }
        Ok(Self {
            top,
            tokens_at,
            tokens,
            set: TokenSet::new(entries),
        })
    }

    /// Writes the document's text to `out` with `edit` made.
    pub(crate) fn write(&self, edit: &Edit, out: &mut impl Write) -> io::Result<()> {
        match edit {
            Edit::Put(hash, entry) => self.write_with_entry(hash, entry, out),
            Edit::Remove(hash) => self.write_without(hash, out),
        }
    }

    /// Writes the document's text to `out` with `entry` stored under `hash`: in the
    /// place of the entry that holds `hash`, or after the last one. Everything else is
    /// written as it was read; only the white space between members is dropped, as
    /// cPanel's writer writes none. Written piece by piece: no second copy of a large
    /// file is made in memory.
    fn write_with_entry(
        &self,
        hash: &TokenHash,
        entry: &TokenEntry,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let entry = serde_json::to_string(entry).expect("an entry is always valid JSON");
        let replaced = self.set.iter().position(|(h, _)| h == hash);
        let write_tokens = |out: &mut dyn Write| -> io::Result<()> {
            out.write_all(b"{")?;
            for (i, (key, value)) in self.tokens.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                let value = if replaced == Some(i) {
                    &entry
                } else {
                    value.get()
                };
                write_member(out, key.get(), value)?;
            }
            if replaced.is_none() {
                if !self.tokens.is_empty() {
                    out.write_all(b",")?;
                }
                write_member(out, &format!("\"{}\"", hash.as_str()), &entry)?;
            }
            out.write_all(b"}")
        };
        out.write_all(b"{")?;
        for (i, (key, value)) in self.top.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            if self.tokens_at == Some(i) {
                out.write_all(key.get().as_bytes())?;
                out.write_all(b":")?;
                write_tokens(out)?;
            } else {
                write_member(out, key.get(), value.get())?;
            }
        }
        if self.tokens_at.is_none() {
            if !self.top.is_empty() {
                out.write_all(b",")?;
            }
            out.write_all(b"\"tokens\":")?;
            write_tokens(out)?;
        }
        out.write_all(b"}")
    }
}

impl Document<'_> {
    /// Writes the document's text to `out` without the entry under `hash` (a revoked
    /// token); everything else as [`write_with_entry`](Self::write_with_entry) writes it.
    fn write_without(&self, hash: &TokenHash, out: &mut impl Write) -> io::Result<()> {
        let removed = self.set.iter().position(|(h, _)| h == hash);
        out.write_all(b"{")?;
        for (i, (key, value)) in self.top.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            if self.tokens_at != Some(i) {
                write_member(out, key.get(), value.get())?;
                continue;
            }
            out.write_all(key.get().as_bytes())?;
            out.write_all(b":{")?;
            let kept = self
                .tokens
                .iter()
                .enumerate()
                .filter(|(at, _)| Some(*at) != removed);
            for (n, (_, (key, value))) in kept.enumerate() {
                if n > 0 {
                    out.write_all(b",")?;
                }
                write_member(out, key.get(), value.get())?;
            }
            out.write_all(b"}")?;
        }
        out.write_all(b"}")
    }
}

fn write_member(out: &mut dyn Write, key: &str, value: &str) -> io::Result<()> {
    out.write_all(key.as_bytes())?;
    out.write_all(b":")?;
    out.write_all(value.as_bytes())
}

/// How a raw value is described in error messages, from its first character.
fn kind_of(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A raw key's text, its escapes decoded.
fn key_text(raw: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.get();
    if text.contains('\\') {
        serde_json::from_str(text).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(&text[1..text.len() - 1]))
    }
}

/// The members of a raw object, in order.
fn members(object: &RawValue) -> Result<Vec<Member<'_>>, serde_json::Error> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<Member<'de>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(member) = map.next_entry::<&RawValue, &RawValue>()? {
                members.push(member);
            }
            Ok(members)
        }
    }
    serde_json::Deserializer::from_str(object.get()).deserialize_map(Members)
}

/// Fails on the first key repeated within one object, anywhere in the document; also on
/// anything that is not JSON.
fn check_unique_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Unique { at: Place::Top }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Where a value is, for the message about a repeated key. Token keys are hashes of
/// secrets, so only their first 12 characters are ever shown.
#[derive(Clone, Copy, Debug)]
enum Place<'p> {
    /// The document itself.
    Top,
    /// Under a top-level key other than `tokens`.
    Under(&'p str),
    /// The `tokens` object.
    Tokens,
    /// A token's entry, or anything in it.
    Entry(&'p str),
}

impl Place<'_> {
    fn describe(self, key: &str) -> String {
        match self {
            Place::Top => format!("duplicate key {} in the document", shown(key)),
            Place::Under(top) => format!("duplicate key {} in {}", shown(key), shown(top)),
            Place::Tokens => format!("duplicate token key {} in `tokens`", token(key)),
            Place::Entry(key_of_token) => {
                format!(
                    "duplicate key {} in token {}",
                    shown(key),
                    token(key_of_token)
                )
            }
        }
    }
}

/// A token key as a [`TokenHash`] shows itself, by its first 12 characters; nothing of a
/// key that is not a token hash, which may be a pasted secret.
fn token(key: &str) -> String {
    match TokenHash::parse(key) {
        Ok(hash) => format!("{}…", hash.prefix()),
        Err(_) => "(a key that is not a token hash)".to_owned(),
    }
}

/// Another key, quoted when short; a long one, which could hold anything, by its length.
fn shown(key: &str) -> String {
    match key.chars().count() {
        0..=32 => format!("{key:?}"),
        n => format!("of {n} characters"),
    }
}

/// Visits a value to its end, checking that no object repeats a key. Builds nothing.
struct Unique<'p> {
    at: Place<'p>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = match self.at {
            Place::Tokens => Place::Under("tokens"),
            other => other,
        };
        while seq.next_element_seed(Unique { at })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(self.at.describe(&key)));
            }
            let at = match self.at {
                Place::Top if key == "tokens" => Place::Tokens,
                Place::Top => Place::Under(&key),
                Place::Tokens => Place::Entry(&key),
                other => other,
            };
            map.next_value_seed(Unique { at })?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// A key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> String {
        TokenHash::of_secret(&[n]).as_str().to_owned()
    }

    fn parse(text: &str) -> Result<Document<'_>, String> {
        Document::parse(Utf8Path::new("t.json"), text.as_bytes()).map_err(|e| e.to_string())
    }

    fn written(text: &str, n: u8) -> String {
        let doc = parse(text).unwrap();
        let entry = TokenEntry {
            name: format!("new-{n}"),
            create_time: Some(1),
            ..TokenEntry::default()
        };
        let hash = TokenHash::parse(&key(n)).unwrap();
        let mut out = Vec::new();
        doc.write_with_entry(&hash, &entry, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn untouched_members_keep_their_text_and_place() {
        let other = r#"{"name":"a", "big": 123456789012345678901234567890, "f": 1.0e2, "z": 1, "a": 2, "s": "\u00e9\/"}"#;
        let text = format!(
            r#"{{"zeta": [1.0e2, 1E300], "tokens": {{"{}": {other}}}, "alpha": {{"n": -0.0}}}}"#,
            key(1)
        );
        let new = r#"{"name":"new-2","create_time":1,"expires_at":null}"#;
        assert_eq!(
            written(&text, 2),
            format!(
                r#"{{"zeta":[1.0e2, 1E300],"tokens":{{"{}":{other},"{}":{new}}},"alpha":{{"n": -0.0}}}}"#,
                key(1),
                key(2)
            )
        );
    }

    #[test]
    fn an_entry_with_the_key_is_replaced_in_its_place() {
        let text = format!(
            r#"{{"tokens":{{"{}":{{"name":"a"}},"{}":{{"name":"b"}}}}}}"#,
            key(1),
            key(2)
        );
        let new = r#"{"name":"new-1","create_time":1,"expires_at":null}"#;
        assert_eq!(
            written(&text, 1),
            format!(
                r#"{{"tokens":{{"{}":{new},"{}":{{"name":"b"}}}}}}"#,
                key(1),
                key(2)
            )
        );
    }

    #[test]
    fn missing_null_and_empty_tokens_get_the_entry() {
        let new = format!(
            r#""{}":{{"name":"new-1","create_time":1,"expires_at":null}}"#,
            key(1)
        );
        for (text, want) in [
            ("", format!(r#"{{"tokens":{{{new}}}}}"#)),
            ("null", format!(r#"{{"tokens":{{{new}}}}}"#)),
            ("{}", format!(r#"{{"tokens":{{{new}}}}}"#)),
            (r#"{"x":1}"#, format!(r#"{{"x":1,"tokens":{{{new}}}}}"#)),
            (r#"{"tokens":null}"#, format!(r#"{{"tokens":{{{new}}}}}"#)),
            (
                r#" { "tokens" : { } } "#,
                format!(r#"{{"tokens":{{{new}}}}}"#),
            ),
        ] {
            assert_eq!(written(text, 1), want, "{text:?}");
        }
    }

    #[test]
    fn an_escaped_key_is_the_key_it_spells() {
        let escaped = key(1).replacen('a', "\\u0061", 1);
        assert_ne!(escaped, key(1), "the key has an `a` to escape");
        let text = format!(r#"{{"tok\u0065ns":{{"{escaped}":{{"name":"a"}}}}}}"#);
        let doc = parse(&text).unwrap();
        assert_eq!(doc.set.len(), 1);
        let new = r#"{"name":"new-1","create_time":1,"expires_at":null}"#;
        assert_eq!(
            written(&text, 1),
            format!(r#"{{"tok\u0065ns":{{"{escaped}":{new}}}}}"#)
        );
    }

    #[test]
    fn a_repeated_key_anywhere_is_corrupt_and_named_safely() {
        let k = key(1);
        let cases = [
            (
                r#"{"tokens":{},"tokens":{}}"#.to_owned(),
                r#"duplicate key "tokens" in the document"#.to_owned(),
            ),
            (
                format!(r#"{{"tokens":{{"{k}":{{"name":"a"}},"{k}":{{"name":"b"}}}}}}"#),
                format!("duplicate token key {}… in `tokens`", &k[..12]),
            ),
            (
                format!(r#"{{"tokens":{{"{k}":{{"name":"a","name":"b"}}}}}}"#),
                format!(r#"duplicate key "name" in token {}…"#, &k[..12]),
            ),
            (
                format!(r#"{{"tokens":{{"{k}":{{"name":"a","o":[{{"x":1,"x":2}}]}}}}}}"#),
                format!(r#"duplicate key "x" in token {}…"#, &k[..12]),
            ),
            (
                r#"{"other":{"a":{"b":1,"b":1}}}"#.to_owned(),
                r#"duplicate key "b" in "other""#.to_owned(),
            ),
            (
                r#"{"a":1,"\u0061":2}"#.to_owned(),
                r#"duplicate key "a" in the document"#.to_owned(),
            ),
            (
                format!(r#"{{"{k}":1,"{k}":2}}"#),
                "duplicate key of 128 characters in the document".to_owned(),
            ),
            (
                r#"{"tokens":{"secret-looking":{},"secret-looking":{}}}"#.to_owned(),
                "duplicate token key (a key that is not a token hash) in `tokens`".to_owned(),
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(
                err.starts_with(&format!("t.json: {want} at line 1 column ")),
                "{err}"
            );
            assert!(
                !err.contains(&k[12..]),
                "{err} shows more than a key's prefix"
            );
        }
    }

    #[test]
    fn other_shapes_are_described() {
        for (text, want) in [
            ("[]", "t.json: the document is an array, expected an object"),
            ("1", "t.json: the document is a number, expected an object"),
            (
                r#"{"tokens":"x"}"#,
                "t.json: `tokens` is a string, expected an object",
            ),
            ("{", "t.json: not valid JSON (EOF while parsing an object"),
            ("{} x", "t.json: not valid JSON (trailing characters"),
            (
                "{\"x\":1E400}",
                "t.json: not valid JSON (number out of range",
            ),
            (r#"{"tokens":{"ab":{}}}"#, "is not a token hash"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{err} does not say {want}");
        }
    }
}
