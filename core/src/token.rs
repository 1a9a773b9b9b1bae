//! WHM API token entries and a user's set of them, in cPanel's JSON shape.
//!
//! A token database document is `{"tokens": {"<sha512 hex>": {entry}, ...}, ...}`
//! (reference 2.2). Parsing here is pure: backends hand in values and get domain types,
//! or an error saying what is wrong (never what a value holds).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::secret::{InvalidTokenHash, TokenHash};

/// One token's stored data. Absent `acls` means full access; absent `whitelist_ips` means
/// any address.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TokenEntry {
    pub name: String,
    pub create_time: Option<i64>,
    pub expires_at: Option<i64>,
    pub whitelist_ips: Option<Vec<String>>,
    pub acls: Option<Vec<String>>,
    /// Every other per-token key, kept as it was.
    pub extra: Map<String, Value>,
}

/// Why a token entry cannot be read. Messages describe a value's type, never its contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the entry is {0}, expected an object")]
    NotAnObject(&'static str),
    #[error("`name` is missing")]
    NameMissing,
    #[error("`name` is {0}, expected a string")]
    NameNotAString(&'static str),
    #[error("`{key}` is {number}, expected whole epoch seconds")]
    NotWholeSeconds { key: &'static str, number: String },
    #[error("`{key}` is out of range")]
    OutOfRange { key: &'static str },
    #[error("`{key}` is {found}, expected epoch seconds")]
    NotEpochSeconds {
        key: &'static str,
        found: &'static str,
    },
    #[error("`{key}` holds {found}, expected strings")]
    NotStrings {
        key: &'static str,
        found: &'static str,
    },
    #[error("`{key}` is {found}, expected a list")]
    NotAList {
        key: &'static str,
        found: &'static str,
    },
}

/// Why an entry's JSON text cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EntryTextError {
    #[error("not valid JSON ({0})")]
    NotJson(serde_json::Error),
    #[error(transparent)]
    Entry(#[from] EntryError),
}

/// Why a whole token database document cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the document is {0}, expected an object")]
    NotAnObject(&'static str),
    #[error("`tokens` is {0}, expected an object")]
    TokensNotAnObject(&'static str),
    #[error("{0}")]
    BadKey(InvalidTokenHash),
    #[error("token {prefix}: {error}")]
    BadEntry { prefix: String, error: EntryError },
}

const KNOWN_KEYS: [&str; 5] = ["name", "create_time", "expires_at", "whitelist_ips", "acls"];

impl TokenEntry {
    /// Reads an entry. `create_time` and `expires_at` may be numbers or digit strings
    /// (cPanel stores what its API was given); `expires_at` of `0` or `null` means none.
    pub fn from_json(value: &Value) -> Result<Self, EntryError> {
        let Value::Object(map) = value else {
            return Err(EntryError::NotAnObject(kind_of(value)));
        };
        let extra = map
            .iter()
            .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::from_members(KNOWN_KEYS.map(|key| map.get(key).cloned()), extra)
    }

    /// Reads an entry from its JSON text as [`from_json`](Self::from_json) reads the value,
    /// without making the whole value first.
    pub fn from_json_text(text: &str) -> Result<Self, EntryTextError> {
        match serde_json::from_str::<Members>(text) {
            Ok(Members { known, extra }) => Ok(Self::from_members(known, extra)?),
            // Not an object, or not JSON: the value, when there is one, says which.
            Err(_) => {
                let value: Value = serde_json::from_str(text).map_err(EntryTextError::NotJson)?;
                Ok(Self::from_json(&value)?)
            }
        }
    }

    /// The entry whose known members are `known`, in the order of [`KNOWN_KEYS`], with
    /// `extra` for every other key.
    fn from_members(
        known: [Option<Value>; KNOWN_KEYS.len()],
        extra: Map<String, Value>,
    ) -> Result<Self, EntryError> {
        let [name, create_time, expires_at, whitelist_ips, acls] = known;
        let name = match name {
            Some(Value::String(s)) => s,
            Some(other) => return Err(EntryError::NameNotAString(kind_of(&other))),
            None => return Err(EntryError::NameMissing),
        };
        Ok(Self {
            name,
            create_time: epoch_field(create_time.as_ref(), "create_time")?,
            expires_at: epoch_field(expires_at.as_ref(), "expires_at")?.filter(|t| *t != 0),
            whitelist_ips: string_list_field(whitelist_ips, "whitelist_ips")?,
            acls: string_list_field(acls, "acls")?,
            extra,
        })
    }

    /// The entry as a JSON value, in the order [`Serialize`] writes it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an entry is always valid JSON")
    }

    /// Full access: no ACL list, or one that contains `all` (reference 2.5).
    pub fn has_full_access(&self) -> bool {
        self.acls
            .as_ref()
            .is_none_or(|acls| acls.iter().any(|a| a == "all"))
    }
}

/// The entry as cPanel's writer stores it: `name`, `create_time`, `expires_at` (null when
/// none), then `whitelist_ips` and `acls` only when present, then any other keys (a key of
/// `extra` that names one of those is left out: the field is what is written).
impl Serialize for TokenEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(time) = self.create_time {
            map.serialize_entry("create_time", &time)?;
        }
        map.serialize_entry("expires_at", &self.expires_at)?;
        if let Some(ips) = &self.whitelist_ips {
            map.serialize_entry("whitelist_ips", ips)?;
        }
        if let Some(acls) = &self.acls {
            map.serialize_entry("acls", acls)?;
        }
        for (key, value) in &self.extra {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

fn epoch_field(value: Option<&Value>, key: &'static str) -> Result<Option<i64>, EntryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| EntryError::NotWholeSeconds {
                key,
                number: n.to_string(),
            }),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(Some)
            .map_err(|_| EntryError::OutOfRange { key }),
        Some(other) => Err(EntryError::NotEpochSeconds {
            key,
            found: kind_of(other),
        }),
    }
}

fn string_list_field(
    value: Option<Value>,
    key: &'static str,
) -> Result<Option<Vec<String>>, EntryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(EntryError::NotStrings {
                    key,
                    found: kind_of(&other),
                }),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(EntryError::NotAList {
            key,
            found: kind_of(&other),
        }),
    }
}

/// An entry's members as read from its text, each known one in the place [`KNOWN_KEYS`]
/// gives it, before they are checked.
#[derive(Default)]
struct Members {
    known: [Option<Value>; KNOWN_KEYS.len()],
    extra: Map<String, Value>,
}

/// A member's key: the place in [`KNOWN_KEYS`] of a known one, or any other as written.
enum Key {
    Known(usize),
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Read;
        impl Visitor<'_> for Read {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match KNOWN_KEYS.iter().position(|known| *known == key) {
                    Some(at) => Key::Known(at),
                    None => Key::Other(key.to_owned()),
                })
            }
        }
        deserializer.deserialize_str(Read)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Read;
        impl<'de> Visitor<'de> for Read {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token entry object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Members::default();
                // A key given twice keeps its first place and its last value, as in a
                // `Value`.
                while let Some(key) = map.next_key::<Key>()? {
                    let value = map.next_value::<Value>()?;
                    match key {
                        Key::Known(at) => members.known[at] = Some(value),
                        Key::Other(key) => {
                            members.extra.insert(key, value);
                        }
                    }
                }
                Ok(members)
            }
        }
        deserializer.deserialize_map(Read)
    }
}

/// How a JSON value is described in error messages (never its contents).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A user's tokens, in the order the database holds them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TokenSet {
    entries: Vec<(TokenHash, TokenEntry)>,
}

impl TokenSet {
    pub fn new(entries: Vec<(TokenHash, TokenEntry)>) -> Self {
        Self { entries }
    }

    /// Parses a whole token database document. A `null` document or a missing `tokens`
    /// key is an empty set.
    pub fn from_document(doc: &Value) -> Result<Self, DocumentError> {
        let tokens = match doc {
            Value::Null => return Ok(Self::default()),
            Value::Object(top) => match top.get("tokens") {
                None | Some(Value::Null) => return Ok(Self::default()),
                Some(Value::Object(tokens)) => tokens,
                Some(other) => return Err(DocumentError::TokensNotAnObject(kind_of(other))),
            },
            other => return Err(DocumentError::NotAnObject(kind_of(other))),
        };
        let entries = tokens
            .iter()
            .map(|(key, value)| {
                let hash = TokenHash::parse(key).map_err(DocumentError::BadKey)?;
                let entry =
                    TokenEntry::from_json(value).map_err(|error| DocumentError::BadEntry {
                        prefix: hash.prefix().to_owned(),
                        error,
                    })?;
                Ok((hash, entry))
            })
            .collect::<Result<_, DocumentError>>()?;
        Ok(Self { entries })
    }

    pub fn get(&self, hash: &TokenHash) -> Option<&TokenEntry> {
        self.entries.iter().find(|(h, _)| h == hash).map(|(_, e)| e)
    }

    /// Whether a token other than `except` already uses `name`.
    pub fn name_taken(&self, name: &str, except: Option<&TokenHash>) -> bool {
        self.entries
            .iter()
            .any(|(h, e)| e.name == name && Some(h) != except)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TokenHash, &TokenEntry)> {
        self.entries.iter().map(|(h, e)| (h, e))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> String {
        TokenHash::of_secret(&[n]).as_str().to_owned()
    }

    #[test]
    fn reads_numbers_and_digit_strings() {
        let e = TokenEntry::from_json(&json!({"name": "b", "create_time": "1700000000",
            "expires_at": "1900000000", "origin": {"x": 1}}))
        .unwrap();
        assert_eq!(e.create_time, Some(1_700_000_000));
        assert_eq!(e.expires_at, Some(1_900_000_000));
        assert_eq!(e.extra.get("origin"), Some(&json!({"x": 1})));
        let zero = TokenEntry::from_json(&json!({"name": "z", "expires_at": 0})).unwrap();
        assert_eq!(zero.expires_at, None);
    }

    #[test]
    fn text_reads_as_the_value_does() {
        let texts = [
            r#"{"name":"a","create_time":1700000000,"expires_at":null}"#,
            r#"{"z":1,"name":"b","acls":["list-accts"],"whitelist_ips":["10.0.0.1"],"a":{"x":[1]}}"#,
            r#"{"name":"c","create_time":"1700000000","expires_at":"0","name":"d"}"#,
            r#"{"x":1,"name":"e","x":2,"y":null}"#,
            r#"{"name":null}"#,
            r#"{"create_time":1}"#,
            r#"{"name":"f","create_time":1.5}"#,
            r#"{"name":"g","acls":"all"}"#,
            r#"{"name":"h","whitelist_ips":[1]}"#,
            r#"["name"]"#,
            r#""name""#,
            r#"{"name":"i"} x"#,
            r#"{"name":"#,
            "",
        ];
        for text in texts {
            let from_value = serde_json::from_str::<Value>(text)
                .map_err(|e| format!("not valid JSON ({e})"))
                .and_then(|value| TokenEntry::from_json(&value).map_err(|e| e.to_string()));
            let from_text = TokenEntry::from_json_text(text).map_err(|e| e.to_string());
            assert_eq!(from_text, from_value, "{text}");
            if let (Ok(entry), Ok(again)) = (from_text, from_value) {
                let keys = |entry: TokenEntry| -> Vec<String> {
                    entry
                        .to_json()
                        .as_object()
                        .unwrap()
                        .keys()
                        .cloned()
                        .collect()
                };
                let (keys, again) = (keys(entry), keys(again));
                assert_eq!(keys, again, "the order of {text}'s keys");
            }
        }
    }

    #[test]
    fn new_entries_have_cpanels_shape() {
        let e = TokenEntry {
            name: "accesshash-1".into(),
            create_time: Some(1),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&e.to_json()).unwrap(),
            r#"{"name":"accesshash-1","create_time":1,"expires_at":null}"#
        );
        assert!(e.has_full_access());
    }

    #[test]
    fn document_errors_name_the_problem() {
        let bad = [
            (json!({"tokens": []}), "`tokens` is an array"),
            (json!([1]), "the document is an array"),
            (
                json!({"tokens": {"abc": {"name": "x"}}}),
                "is not a token hash",
            ),
            (
                json!({"tokens": {key(1): {"name": 5}}}),
                "`name` is a number",
            ),
            (
                json!({"tokens": {key(1): {"name": "x", "acls": "all"}}}),
                "`acls` is a string",
            ),
        ];
        for (doc, want) in bad {
            let err = TokenSet::from_document(&doc).unwrap_err().to_string();
            assert!(err.contains(want), "{err} does not contain {want}");
        }
        assert!(TokenSet::from_document(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn name_lookup_can_exclude_one_key() {
        let set = TokenSet::from_document(&json!({"tokens": {key(1): {"name": "a"}}})).unwrap();
        let h = TokenHash::parse(&key(1)).unwrap();
        assert!(set.name_taken("a", None));
        assert!(!set.name_taken("a", Some(&h)));
    }
}
