//! WHM API token entries and a user's set of them, in cPanel's JSON shape.
//!
//! A token database document is `{"tokens": {"<sha512 hex>": {entry}, ...}, ...}`
//! (reference 2.2). Parsing here is pure: backends hand in values and get domain types,
//! or an error saying what is wrong (never what a value holds).

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

/// Why a whole token database document cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the document is {0}, expected an object")]
    NotAnObject(&'static str),
    #[error("`tokens` is {0}, expected an object")]
    TokensNotAnObject(&'static str),
    #[error("token key {0}")]
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
        let name = match map.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(EntryError::NameNotAString(kind_of(other))),
            None => return Err(EntryError::NameMissing),
        };
        Ok(Self {
            name,
            create_time: epoch_field(map, "create_time")?,
            expires_at: epoch_field(map, "expires_at")?.filter(|t| *t != 0),
            whitelist_ips: string_list_field(map, "whitelist_ips")?,
            acls: string_list_field(map, "acls")?,
            extra: map
                .iter()
                .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// The entry as cPanel's writer stores it: `name`, `create_time`, `expires_at` (null when
    /// none), then `whitelist_ips` and `acls` only when present, then any other keys.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("name".into(), Value::from(self.name.clone()));
        if let Some(t) = self.create_time {
            map.insert("create_time".into(), Value::from(t));
        }
        map.insert(
            "expires_at".into(),
            self.expires_at.map_or(Value::Null, Value::from),
        );
        if let Some(ips) = &self.whitelist_ips {
            map.insert("whitelist_ips".into(), Value::from(ips.clone()));
        }
        if let Some(acls) = &self.acls {
            map.insert("acls".into(), Value::from(acls.clone()));
        }
        map.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(map)
    }

    /// Full access: no ACL list, or one that contains `all` (reference 2.5).
    pub fn has_full_access(&self) -> bool {
        self.acls
            .as_ref()
            .is_none_or(|acls| acls.iter().any(|a| a == "all"))
    }
}

fn epoch_field(map: &Map<String, Value>, key: &'static str) -> Result<Option<i64>, EntryError> {
    match map.get(key) {
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
    map: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<Vec<String>>, EntryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(EntryError::NotStrings {
                    key,
                    found: kind_of(other),
                }),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(EntryError::NotAList {
            key,
            found: kind_of(other),
        }),
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
