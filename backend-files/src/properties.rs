//! Property tests: the passwd, resellers and token-file parsers never panic, and a token
//! file the backend writes reads back to the same entries.

use proptest::collection::vec;
use proptest::prelude::*;
use whmtoken_core::{
    AuditTurn, Decision, FixedClock, ImportRequest, Restrictions, TokenHash, TokenSet,
};

proptest! {
    #[test]
    fn passwd_and_resellers_parsers_never_panic(text in any::<String>()) {
        let (accounts, _) = crate::passwd::parse(&text);
        prop_assert!(accounts.values().all(|a| a.home.starts_with('/')));
        let (resellers, _) = crate::resellers::parse(&text);
        prop_assert!(resellers.keys().all(|name| !name.is_empty() && !name.contains(':')));
    }

    #[test]
    fn token_file_parser_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        let _ = crate::token_file::parse_for_tests(&bytes);
    }

    #[test]
    fn written_token_files_read_back_the_same(
        secrets in vec(any::<u64>(), 1..6),
        acls in proptest::option::of(vec("[a-z-]{1,12}", 1..4)),
        expires in proptest::option::of(2_000_000_000i64..3_000_000_000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("var/cpanel")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/bash\n").unwrap();
        let backend = crate::FilesBackend::open(&crate::FilesConfig { root: root.to_owned() }).unwrap();
        let user = whmtoken_core::UserName::root();
        let restrictions = Restrictions { acls, expires_at: expires, whitelist_ips: None };
        let mut written = Vec::new();
        for (i, secret) in secrets.iter().enumerate() {
            let hash = TokenHash::of_secret(&secret.to_le_bytes());
            let request = ImportRequest::new(hash.clone(), 1_700_000_000 + i as i64, restrictions.clone(), false, i as u64);
            use whmtoken_core::Backend as _;
            if let Decision::Write { entry, .. } = backend.import(&user, &request, &AuditTurn::alone(&FixedClock::at(0))).unwrap() {
                written.push((hash, entry));
            }
        }
        use whmtoken_core::Reads as _;
        prop_assert_eq!(backend.tokens(&user).unwrap(), TokenSet::new(written));
    }
}
