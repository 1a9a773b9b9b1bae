//! Property tests: no input makes a parser panic, and what we write reads back the same.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::restrictions::Restrictions;
use crate::secret::{AccessHash, TokenHash};
use crate::token::{TokenEntry, TokenSet};
use crate::user::UserName;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn token_entry() -> impl Strategy<Value = TokenEntry> {
    (
        "[A-Za-z0-9_-]{1,50}",
        option::of(0i64..4_000_000_000),
        option::of(1i64..4_000_000_000),
        option::of(vec("[0-9.]{1,15}", 0..4)),
        option::of(vec("[a-z-]{1,20}", 0..4)),
        btree_map("x[a-z]{0,8}", json_value(), 0..3),
    )
        .prop_map(
            |(name, create_time, expires_at, whitelist_ips, acls, extra)| TokenEntry {
                name,
                create_time,
                expires_at,
                whitelist_ips,
                acls,
                extra: extra.into_iter().collect::<Map<_, _>>(),
            },
        )
}

proptest! {
    #[test]
    fn access_hash_parsing_never_panics(raw in vec(any::<u8>(), 0..2048)) {
        let stripped: Vec<u8> = raw.iter().copied().filter(|b| !b" \t\n\x0b\x0c\r".contains(b)).collect();
        let hash = AccessHash::from_bytes(raw).token_hash();
        prop_assert_eq!(hash, (!stripped.is_empty()).then(|| TokenHash::of_secret(&stripped)));
    }

    #[test]
    fn token_documents_of_any_shape_never_panic(doc in json_value()) {
        let _ = TokenSet::from_document(&doc);
        let _ = TokenSet::from_document(&serde_json::json!({"tokens": doc}));
    }

    #[test]
    fn entries_read_back_as_written(entry in token_entry()) {
        let text = serde_json::to_string(&entry.to_json()).unwrap();
        let back = TokenEntry::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        prop_assert_eq!(back, entry);
    }

    #[test]
    fn accepted_user_names_are_safe_path_components(name in any::<String>()) {
        if let Ok(user) = UserName::new(&name) {
            let s = user.as_str();
            prop_assert!(!s.contains('/') && !s.contains('\0') && !s.starts_with('.') && !s.starts_with('-'));
        }
    }

    #[test]
    fn restriction_parsers_never_panic(text in any::<String>(), now in any::<i64>()) {
        let _ = Restrictions::default().with_acls(&[&text]);
        let _ = Restrictions::default().with_allow_ips(&[&text]);
        let _ = Restrictions::default().with_expiry(&text, now);
    }
}
